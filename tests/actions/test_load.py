"""harness.actions.load: Locust subprocesses (one process, a master and workers, or an attached master)
against the sandbox's real regional APIs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness import ledger
from harness.actions.load import LOCUSTFILE, start_load, stop_load
from harness.errors import ConfigError
from harness.model import Event, RunRecord
from harness.sandbox import Sandbox, down, up
from harness.sandbox.examples import example_scenario
from harness.sandbox.ports import free_ports
from harness.scoring import run_doubts

SEED_004_RATES = {"us-east-1": 1000, "eu-west-1": 800, "ap-southeast-1": 600}  # requests per minute


@pytest.fixture(scope="module")
def api_estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    directory = tmp_path_factory.mktemp("api-sandbox")
    try:
        yield up(example_scenario(3), directory, components={"redis", "api"})
    finally:
        down(directory)


@pytest.fixture
def api_configuration(api_estate: Sandbox, tmp_path: Path) -> dict[str, Any]:
    return {
        **api_estate.endpoints,
        "harness_state_dir": str(tmp_path / "state"),
        "run_dir": str(tmp_path / "run"),
    }


def _measure(output: dict[str, Any], name: str) -> float:
    (value,) = [m["value"] for m in output["measurements"] if m["name"] == name]
    return value


def test_load_runs_at_the_scenario_rates_and_stops(api_configuration: dict[str, Any]) -> None:
    started = start_load(60, SEED_004_RATES, workers=0, configuration=api_configuration)
    try:
        assert started["effect_proven"] is True, started["evidence"]
        assert [t["region"] for t in started["targets"]] == list(SEED_004_RATES)
        assert psutil.pid_exists(started["pid"])
        time.sleep(4)
    finally:
        output = stop_load(configuration=api_configuration)
    assert output["stopped"] is True
    assert (
        not psutil.pid_exists(started["pid"])
        or psutil.Process(started["pid"]).status() == psutil.STATUS_ZOMBIE
    )
    assert 20 <= _measure(output, "load_rps") <= 60  # 2400 requests per minute is 40 per second
    assert _measure(output, "load_failure_ratio") < 0.1  # a read may reach a replica before the write does
    assert 0 < _measure(output, "load_p99_latency_seconds") < 2
    by_name = {s["name"]: s["requests"] for s in output["stats"]}
    assert by_name["us-east-1 write"] > by_name["ap-southeast-1 write"]  # 1000 vs 600 per minute
    assert ledger.open_faults(ledger.state_dir(api_configuration)) == []
    assert stop_load(configuration=api_configuration)["stopped"] is False  # twice is safe
    assert json.loads(Path(f"{started['stats_prefix']}.json").read_text())


def test_recover_stops_a_load_left_running(api_configuration: dict[str, Any]) -> None:
    started = start_load(60, {"eu-west-1": 300}, workers=0, configuration=api_configuration)
    results = ledger.recover(ledger.state_dir(api_configuration))
    assert [r.is_undone for r in results] == [True]
    assert (
        not psutil.pid_exists(started["pid"])
        or psutil.Process(started["pid"]).status() == psutil.STATUS_ZOMBIE
    )


def test_bad_rates_name_the_field(api_configuration: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"arguments:requests_per_minute\.mars-1"):
        start_load(10, {"mars-1": 100}, configuration=api_configuration)
    with pytest.raises(ConfigError, match=r"arguments:requests_per_minute\.eu-west-1: expected 0 < rate"):
        start_load(10, {"eu-west-1": "fast"}, configuration=api_configuration)
    with pytest.raises(ConfigError, match="no scenario_path"):
        start_load(10, configuration=api_configuration)
    assert ledger.open_faults(ledger.state_dir(api_configuration)) == []


def _locust_processes(prefix: str) -> list[int]:
    state = json.loads(Path(f"{prefix}.locust.json").read_text())
    return [p["pid"] for p in state["processes"] if psutil.pid_exists(p["pid"])
            and psutil.Process(p["pid"]).status() != psutil.STATUS_ZOMBIE]  # fmt: skip


def _master_stats(started: dict[str, Any]) -> dict[str, Any]:
    with urllib.request.urlopen(f"{started['master']}/harness/stats", timeout=5) as response:
        return json.loads(response.read())


def _eventually(predicate: Any, timeout_seconds: float) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def test_master_and_two_workers_aggregate_and_a_killed_worker_is_reported(
    api_configuration: dict[str, Any],
) -> None:
    started = start_load(
        60, {"us-east-1": 1200, "eu-west-1": 600}, workers=2, configuration=api_configuration
    )
    try:
        assert started["effect_proven"] is True, started["evidence"]
        assert started["workers"] == 2 and "with 2 workers" in started["evidence"]
        # Both workers have reported requests to the master (a worker reports every 3 s).
        assert _eventually(
            lambda: sum(1 for n in _master_stats(started)["requests_by_worker"].values() if n) == 2, 10
        ), _master_stats(started)
        state = json.loads(Path(f"{started['stats_prefix']}.locust.json").read_text())
        victim = next(p["pid"] for p in state["processes"] if p["role"] == "worker")
        os.kill(victim, signal.SIGKILL)
        assert _eventually(lambda: Path(f"{started['stats_prefix']}.workers.jsonl").exists(), 5)
    finally:
        output = stop_load(configuration=api_configuration)
    assert _locust_processes(started["stats_prefix"]) == []  # master and the surviving worker gone
    by_worker = output["requests_by_worker"]
    assert len(by_worker) == 2 and all(n > 0 for n in by_worker.values())
    # The master's statistics are the workers' reports, aggregated by Locust: nothing else counts.
    assert _measure(output, "load_requests_total_count") == sum(by_worker.values())
    assert _measure(output, "load_workers_count") == 2
    assert _measure(output, "load_workers_lost_count") == 1
    assert {s["name"] for s in output["stats"]} >= {"us-east-1 write", "eu-west-1 read"}
    assert all(s["p99_seconds"] is not None for s in output["stats"])
    (lost,) = output["events"]
    assert lost["kind"] == "load.worker_lost" and f"worker pid {victim} exited" in lost["detail"]["what"]
    (rps,) = [m for m in output["measurements"] if m["name"] == "load_rps"]
    assert "1 worker(s) lost mid-run" in rps["evidence"] and f"pid {victim}" in rps["evidence"]
    assert ledger.open_faults(ledger.state_dir(api_configuration)) == []


def test_a_lost_load_worker_is_a_run_doubt() -> None:
    clean = RunRecord("r", "s", "t", "e.yaml", "0", "2026-01-01T00:00:00+00:00", 10.0, "completed")
    lost = Event(4.0, "load.worker_lost", "stop-load", {"what": "worker pid 7 exited (code -9)", "pid": 7})
    doubts = run_doubts(RunRecord(**{**clean.to_dict(), "events": (lost,)}))
    assert "load worker lost mid-run: worker pid 7 exited (code -9)" in doubts
    assert not any("load worker" in d for d in run_doubts(clean))


@pytest.fixture
def remote_master(api_estate: Sandbox, tmp_path: Path) -> Iterator[str]:
    """A Locust master and one worker someone else runs (here: on loopback, started by the test)."""
    web, bus = free_ports(2)
    rates = {"us-east-1": 600, "eu-west-1": 300}
    targets = [
        {"region": r, "url": api_estate.endpoints["regions"][r]["api_url"], "requests_per_second": rpm / 60,
         "users": 1}
        for r, rpm in rates.items()
    ]  # fmt: skip
    environment = {**os.environ, "HARNESS_LOAD_TARGETS": json.dumps(targets)}
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
    log = open(tmp_path / "remote.log", "wb")  # noqa: SIM115
    processes = [
        subprocess.Popen(
            [*base, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(bus),
             "--web-host", "127.0.0.1", "--web-port", str(web)],
            env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    ]  # fmt: skip
    try:
        processes.append(
            subprocess.Popen(
                [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(bus)],
                env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        )  # fmt: skip
        yield f"127.0.0.1:{web}"
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=10)
        log.close()


def test_attaching_to_a_running_master_drives_its_workers(
    api_configuration: dict[str, Any], remote_master: str
) -> None:
    configuration = {**api_configuration, "locust_master": remote_master}
    started = start_load(60, {"us-east-1": 600, "eu-west-1": 300}, configuration=configuration)
    try:
        assert started["effect_proven"] is True, started["evidence"]
        assert started["pid"] is None and started["workers"] == 1
    finally:
        output = stop_load(configuration=configuration)
    assert output["stopped"] is True
    assert _measure(output, "load_workers_count") == 1 and _measure(output, "load_workers_lost_count") == 0
    assert _measure(output, "load_requests_total_count") > 0
    stats = _master_stats({"master": f"http://{remote_master}"})
    assert stats["state"] in ("stopped", "ready") and stats["worker_count"] == 1  # stopped, not killed
    with pytest.raises(ConfigError, match="configuration:locust_master: expected HOST:PORT"):
        start_load(10, {"us-east-1": 60}, configuration={**api_configuration, "locust_master": "nowhere"})
    with pytest.raises(ConfigError, match="arguments:workers: expected a whole number"):
        start_load(10, {"us-east-1": 60}, workers=-1, configuration=api_configuration)


def test_scenario_load_workers_is_read_and_checked(tmp_path: Path) -> None:
    from harness.actions.load import _worker_count
    from harness.loading import load_scenario, read_document, resolve_scenario_path

    document = read_document(resolve_scenario_path("aeon-nova"))
    good = tmp_path / "good.yaml"
    good.write_text(json.dumps({**document, "load": {"workers": 3}}))
    assert load_scenario(good).load_workers == 3
    assert _worker_count(None, {"scenario_path": str(good)}) == 3
    assert _worker_count(1, {"scenario_path": str(good)}) == 1  # the experiment's argument wins
    assert _worker_count(None, {"locust_workers": "2", "scenario_path": str(good)}) == 2
    assert _worker_count(None, {}) == len(os.sched_getaffinity(0))  # one per core
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({**document, "load": {"workers": -1}}))
    with pytest.raises(ConfigError, match=r"bad\.yaml.*load\.workers"):
        load_scenario(bad)
