"""The traffic canary and balancer watcher against the sandbox's real HAProxy (known truth).

One sandbox for the module (Redis, the regional APIs and the balancer; two regions), health checks
every i = 0.2 s with fall f = 3, rise 2. A region's API is killed at a known instant (the fault
ledger's), a region is drained, and a residency rule the balancer does not enforce is violated on
purpose; the measures are checked against the issue's bounds and against the raw samples.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness import ledger
from harness.actions import instances
from harness.actions import traffic as traffic_actions
from harness.model import HealthCheck, TrafficSettings
from harness.probes import traffic
from harness.sandbox import Sandbox, down, up
from harness.sandbox.examples import example_scenario

INTERVAL, FALL, RISE = 0.2, 3, 2
EAST, WEST = "us-east-1", "eu-west-1"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    directory = tmp_path_factory.mktemp("traffic") / "sandbox"
    health = HealthCheck("/health", INTERVAL, 0.1, FALL, RISE)
    scenario = replace(example_scenario(2), traffic=TrafficSettings(health=health))
    try:
        yield up(scenario, directory, components={"redis", "api", "balancer"})
    finally:
        down(directory)


def _configuration(sandbox: Sandbox, tmp_path: Path, **traffic_overrides: Any) -> dict[str, Any]:
    return {
        **sandbox.endpoints,
        "traffic": {**sandbox.endpoints["traffic"], **traffic_overrides},
        "harness_state_dir": str(tmp_path / "state"),
        "run_dir": str(tmp_path / "run"),
        "run_id": "traffic-test",
    }


def _in_background(configuration: Mapping[str, Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: out.update(traffic.traffic_canary(30, 20.0, 1.0, configuration=configuration))
    )
    thread.start()
    time.sleep(1.0)  # the steady state: every client region served at home
    return thread, out


def _finish(
    thread: threading.Thread, configuration: Mapping[str, Any], out: dict[str, Any]
) -> dict[str, Any]:
    traffic.stop_traffic_canary(configuration)
    thread.join(timeout=10)
    assert not thread.is_alive()
    return {m["name"]: m for m in out["measurements"]}


def test_a_killed_region_api_fails_over_within_fall_times_interval(sandbox: Sandbox, tmp_path: Path) -> None:
    configuration = _configuration(sandbox, tmp_path)
    thread, out = _in_background(configuration)
    try:
        instances.stop_instance(f"api-{EAST}", configuration=configuration)
        assert traffic.wait_for_balancer(EAST, "down", 10, configuration=configuration)["reached"]
        time.sleep(1.0)
    finally:
        instances.start_instance(f"api-{EAST}", configuration=configuration)
    assert traffic.wait_for_balancer(EAST, "up", 10, configuration=configuration)["reached"]
    time.sleep(0.5)
    measured = _finish(thread, configuration, out)

    failover = measured["traffic_failover_seconds"]
    low, high = FALL * INTERVAL - INTERVAL, FALL * INTERVAL + INTERVAL + 1.0
    assert low <= failover["value"] <= high, failover
    assert not failover["lower_bound"]
    assert "served again by eu-west-1" in failover["evidence"]
    assert f"no failure seen for {WEST}" in failover["evidence"]
    assert measured["failback_seconds"]["value"] <= RISE * INTERVAL + INTERVAL + 1.0
    assert measured["traffic_error_ratio"]["value"] > 0
    # Both witnesses counted the same failures (the balancer's own 503s) in the window.
    assert (
        abs(measured["traffic_balancer_error_ratio"]["value"] - measured["traffic_error_ratio"]["value"])
        <= 0.05
    )
    kinds = [e["kind"] for e in out["events"] if e["detail"].get("region") == EAST]
    assert (
        kinds.index("traffic.check_failed")
        < kinds.index("traffic.server_down")
        < kinds.index("traffic.server_up")
    )
    assert all(e["detail"]["polled"] for e in out["events"] if e["kind"].startswith("traffic.server"))
    # The balancer's own answers name no region; every success names the one that served it.
    assert all(s["served_by"] for s in out["samples"] if s.get("probe") == "traffic" and s["ok"])


def test_a_drain_evacuates_within_a_second_and_a_residency_violation_is_counted_exactly(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # On purpose: the record's rule keeps us-east-1's clients at home, the balancer does not.
    configuration = _configuration(sandbox, tmp_path, residency={EAST: [EAST]})
    thread, out = _in_background(configuration)
    try:
        result = traffic_actions.drain_region(EAST, configuration=configuration)
        assert result.get("fault_id")
        time.sleep(1.5)
    finally:
        traffic_actions.restore_region(EAST, configuration=configuration)
    time.sleep(1.0)
    measured = _finish(thread, configuration, out)

    evacuation = measured["evacuation_seconds"]
    assert 0 <= evacuation["value"] <= 1.0 and not evacuation["lower_bound"], evacuation
    served_elsewhere = [
        s
        for s in out["samples"]
        if s.get("probe") == "traffic" and s["region"] == EAST and s["served_by"] == WEST
    ]
    assert served_elsewhere  # the drain moved them
    violations = measured["residency_violations_count"]
    assert violations["value"] == len(served_elsewhere), violations
    assert f"{EAST}: {len(served_elsewhere)} ({len(served_elsewhere)} by {WEST})" in violations["evidence"]
    assert measured["failback_seconds"]["value"] <= 1.0
    assert not ledger.open_faults(Path(configuration["harness_state_dir"]))


def test_waiting_for_a_region_the_balancer_does_not_have_is_refused_at_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    from harness.errors import ConfigError

    started = time.monotonic()
    with pytest.raises(ConfigError, match="us-east-9"):
        traffic.wait_for_balancer("us-east-9", "down", 30, configuration=_configuration(sandbox, tmp_path))
    assert time.monotonic() - started < 5
    assert traffic.traffic_served_at_home(configuration=_configuration(sandbox, tmp_path))
