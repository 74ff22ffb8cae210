"""Fixtures shared by the action and probe tests, and the session-wide guard: no test may leave a
server process behind."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.faultproxy import FaultProxy
from harness.sandbox import Sandbox, down, up
from harness.sandbox.examples import example_scenario

SERVER_NAMES = (
    "redis-server",
    "redis-sentinel",
    "postgres",
    "prometheus",
    "etcd",
    "patroni",
    "locust",
    "chromium",
    "haproxy",
)


def _descendants() -> list[psutil.Process]:
    try:
        return psutil.Process(os.getpid()).children(recursive=True)
    except psutil.Error:
        return []


def _ours(basetemp: str) -> list[str]:
    """Server processes that belong to this test session: our children, or running from its temp dir."""
    found = {p.pid: p for p in _descendants()}
    for process in psutil.process_iter(["pid", "cmdline", "cwd"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        # The working folder too: a Sentinel rewrites its title to "redis-sentinel HOST:PORT [sentinel]".
        if basetemp in cmdline or basetemp in (process.info["cwd"] or ""):
            found[process.pid] = process
    described = []
    for process in found.values():
        try:
            cmdline = " ".join(process.cmdline())
        except psutil.Error:
            continue
        if process.status() != psutil.STATUS_ZOMBIE and (
            any(name in cmdline for name in SERVER_NAMES) or "harness" in cmdline
        ):
            described.append(f"pid {process.pid}: {cmdline[:160]}")
    return described


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After every fixture is torn down, fail the session if a server process is still running."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None or session.config.option.collectonly:
        return
    left = _ours(str(factory.getbasetemp()))
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter:
            reporter.write_line("processes left behind by the tests:\n  " + "\n  ".join(left), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def redis_estate(tmp_path: Path) -> Iterator[Sandbox]:
    """A Redis-only three-region sandbox (primary, two replicas, three Sentinels) of this test alone."""
    directory = tmp_path / "sandbox"
    try:
        yield up(example_scenario(3), directory, components={"redis"})
    finally:
        down(directory)


@pytest.fixture
def configuration(redis_estate: Sandbox, tmp_path: Path) -> dict[str, Any]:
    """What an experiment would receive: the sandbox's endpoints plus private ledger and run directories."""
    return {
        **redis_estate.endpoints,
        "harness_state_dir": str(tmp_path / "state"),
        "run_dir": str(tmp_path / "run"),
        "run_id": "test-run",
    }


@pytest.fixture
def fault_proxy() -> Iterator[FaultProxy]:
    """The project's fault proxy, in this process, on a free loopback port."""
    server = FaultProxy()
    try:
        yield server.start()
    finally:
        server.stop()


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `harness ARGS` in-process through the real entry point; returns exit code and output."""
    import harness.cli

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["harness", *args])
        with pytest.raises(SystemExit) as exit_info:
            harness.cli.main()
        captured = capsys.readouterr()
        return CliResult(int(exit_info.value.code or 0), captured.out, captured.err)

    return invoke
