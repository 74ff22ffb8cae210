from harness.sandbox.fixtures import redis_sandbox, sandbox_factory

__all__ = ["redis_sandbox", "sandbox_factory"]
