"""Pieces of the runner and suite that need no target: component choice, DSNs, watchers, selection."""

from __future__ import annotations

import json
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from harness import measures
from harness.canary import writable_dsn
from harness.errors import ConfigError
from harness.model import Event, ExperimentRef, FaultRecord, PostgresSettings, RunRecord, Scenario
from harness.runner import with_failover_manager
from harness.suite import select_experiments
from harness.watchers import PatroniWatcher


def test_postgres_runs_under_patroni_when_the_scenario_asks() -> None:
    automatic = Scenario("s", "s.yaml", postgres=PostgresSettings("patroni"))
    manual = Scenario("s", "s.yaml", postgres=PostgresSettings("manual"))
    assert with_failover_manager(automatic, ["redis", "postgres"]) == {"redis", "patroni"}
    assert with_failover_manager(manual, ["redis", "postgres"]) == {"redis", "postgres"}
    assert with_failover_manager(automatic, None) is None


def test_writable_dsn_lists_every_server_for_libpq_failover() -> None:
    dsn = writable_dsn(["postgresql://harness@127.0.0.1:5001/db", "postgresql://harness@127.0.0.1:5002/db"])
    assert dsn == "postgresql://harness@127.0.0.1:5001,127.0.0.1:5002/db?target_session_attrs=read-write"


def test_suite_selects_by_cadences_in_scenario_order() -> None:
    scenario = Scenario(
        "s",
        "s.yaml",
        experiments=(
            ExperimentRef("a.yaml", "daily"),
            ExperimentRef("b.yaml", "weekly"),
            ExperimentRef("c.yaml", "monthly"),
        ),
    )
    assert [r.path for r in select_experiments(scenario, ["weekly", "daily"])] == ["a.yaml", "b.yaml"]
    assert len(select_experiments(scenario, None)) == 3
    # The refusal says which cadences the scenario does list, so the user can pick one.
    lists = r"no quarterly experiment listed \(it lists daily, weekly, monthly"
    with pytest.raises(ConfigError, match=lists):
        select_experiments(scenario, ["quarterly"])
    with pytest.raises(ConfigError, match="expected one of daily"):
        select_experiments(scenario, ["hourly"])


def _cluster(leader: str | None) -> str:
    members = [{"name": n, "role": "leader" if n == leader else "replica"} for n in ("pg-a", "pg-b")]
    return json.dumps({"members": members})


def test_patroni_watcher_sees_the_leader_lost_and_the_promotion(httpserver: HTTPServer) -> None:
    states = iter([_cluster("pg-a")] * 4 + [_cluster(None)] * 4 + [_cluster("pg-b")] * 100)
    httpserver.expect_request("/cluster").respond_with_handler(
        lambda request: Response(next(states), content_type="application/json")
    )
    watcher = PatroniWatcher([httpserver.url_for("/")], poll_seconds=0.02, max_duration_seconds=10).start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(watcher.events()) < 2:
        time.sleep(0.02)
    events = watcher.stop()
    assert [e["kind"] for e in events] == ["patroni.leader-lost", "patroni.promoted"]
    assert events[1]["detail"] == {
        "old_primary": "pg-a",
        "new_primary": "pg-b",
        "exact": False,
        "poll_interval_seconds": 0.02,
    }
    assert events[0]["at_monotonic"] < events[1]["at_monotonic"]


def test_detection_and_promotion_from_patroni_events() -> None:
    record = RunRecord(
        run_id="r",
        scenario="s",
        experiment_title="t",
        experiment_path="p.yaml",
        harness_version="0",
        started_at="2026-01-01T00:00:00+00:00",
        duration_seconds=30.0,
        status="completed",
        faults=(
            FaultRecord("f", "harness.actions.instances.stop_instance", "patroni-us-east-1", 2.0, 25.0, True),
        ),
        events=(
            # From a watch on the DCS leader key (exact): polled times could not split 0.5 s.
            Event(21.5, "patroni.leader-lost", "etcd watch", {"old_primary": "pg-a", "exact": True}),
            Event(
                22.0,
                "patroni.promoted",
                "etcd watch",
                {"old_primary": "pg-a", "new_primary": "pg-b", "exact": True},
            ),
        ),
    )
    assert measures.detection_seconds(record).value == pytest.approx(19.5)
    assert measures.promotion_seconds(record).value == pytest.approx(0.5)


def test_patroni_watcher_infers_the_leader_lost_between_two_polls(httpserver: HTTPServer) -> None:
    states = iter([_cluster("pg-a")] * 4 + [_cluster("pg-b")] * 100)
    httpserver.expect_request("/cluster").respond_with_handler(
        lambda request: Response(next(states), content_type="application/json")
    )
    watcher = PatroniWatcher([httpserver.url_for("/")], poll_seconds=0.02, max_duration_seconds=10).start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(watcher.events()) < 2:
        time.sleep(0.02)
    lost, promoted = watcher.stop()
    assert (lost["kind"], promoted["kind"]) == ("patroni.leader-lost", "patroni.promoted")
    assert lost["detail"]["between_polls"] is True
