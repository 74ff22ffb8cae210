"""pytest fixtures: sandboxes brought up for a test session and always brought down.

``sandbox_factory(scenario, components=...)`` starts a sandbox in a fresh temporary directory
and tears every one it started down at the end of the session, also when a start fails
half-way. ``redis_sandbox`` is a Redis-only sandbox (primary, two replicas, three Sentinels)
of the built-in three-region scenario.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import pytest

from harness.model import Scenario
from harness.sandbox.examples import example_scenario
from harness.sandbox.lifecycle import Sandbox, down, up

SandboxFactory = Callable[..., Sandbox]


@pytest.fixture(scope="session")
def sandbox_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxFactory]:
    """Start sandboxes on demand; all of them go down when the session ends."""
    directories: list[Path] = []

    def start(scenario: Scenario, *, components: Collection[str] | None = None) -> Sandbox:
        directory = tmp_path_factory.mktemp(f"sandbox-{scenario.name}")
        directories.append(directory)  # registered before anything starts: cleaned up whatever happens
        return up(scenario, directory, components=components)

    try:
        yield start
    finally:
        for directory in directories:
            down(directory)


@pytest.fixture(scope="session")
def redis_sandbox(sandbox_factory: SandboxFactory) -> Sandbox:
    """A Redis-only sandbox of the built-in three-region scenario (down after 1 s, failover timeout 3 s)."""
    return sandbox_factory(example_scenario(3), components={"redis"})
