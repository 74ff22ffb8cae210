"""One history for a team: several runner processes write to one PostgreSQL at once and nothing
is lost or doubled; the gate and the report read the runs back from it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from store_processes import grade_for, record_for

from harness.store import open_store

HERE = Path(__file__).parent
RUNNERS, RUNS_EACH, SHARED = 3, 15, 5


def test_parallel_runner_processes_store_every_run_once(postgres_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    runners = [
        subprocess.Popen(
            [sys.executable, str(HERE / "store_processes.py"), "team", postgres_url,
             str(1000 * (i + 1)), str(RUNS_EACH), str(SHARED), str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(RUNNERS)
    ]  # fmt: skip
    try:
        go.touch()  # all at once, on a database none of them has created the schema in yet
        outcomes = [runner.communicate(timeout=120) for runner in runners]
    finally:
        for runner in runners:
            runner.kill()
    assert [r.returncode for r in runners] == [0] * RUNNERS, outcomes
    with open_store(postgres_url) as history:
        stored = history.runs("shop")
    ids = [record.run_id for record, _ in stored]
    expected = {f"run-{1000 * (i + 1) + k:05d}" for i in range(RUNNERS) for k in range(RUNS_EACH)}
    expected |= {f"run-{90_000 + k:05d}" for k in range(SHARED)}  # every runner saved these: kept once
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == expected
    for record, grade in stored:  # each one whole, as its runner built it
        index = int(record.run_id.removeprefix("run-"))
        assert record == record_for(index, samples=20) and grade == grade_for(record)


SHOP = """\
name: shop
regions: [{name: us-east-1, primary: true}, {name: eu-west-1}]
targets:
  failover_time: {measure: failover_seconds, at_most: 30s, critical: true}
  replication_lag: {measure: replication_lag_seconds, at_most: 5s, critical: true}
experiments:
  - {path: experiments/redis-failover.json, cadence: daily, targets: [failover_time, replication_lag]}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "shop.yaml").write_text(SHOP)
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "redis-failover.json").write_text('{"title": "x", "method": []}')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / ".harness"))
    return tmp_path


def test_the_gate_and_the_report_read_the_team_history(postgres_url: str, project: Path, run_cli) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    fresh = replace(record_for(1, samples=5), run_id="runner-a-1", started_at=now.isoformat())
    old = replace(record_for(2, samples=5), run_id="runner-b-1", started_at="2020-01-01T02:00:00+00:00")
    with open_store(postgres_url) as history:
        for record in (fresh, old):
            history.save(record, grade_for(record))
    gate = run_cli("gate", "--scenario", "shop", "--from-store", "--store", postgres_url, "--max-age", "1d")
    # The fresh stored run is graded again (the scenario wants lag and lost writes it lacks: unknown);
    # the old one is outside --max-age and never read.
    assert gate.exit_code == 3, gate
    assert "runner-a-1" in gate.stdout and "runner-b-1" not in gate.stdout
    assert "replication_lag_seconds not measured" in gate.stdout + gate.stderr, gate
    report = run_cli("report", "--scenario", "shop", "--store", postgres_url, "--out", str(project / "site"))
    assert report.exit_code == 0, report
    assert "2 stored run(s) of shop" in report.stderr + report.stdout
