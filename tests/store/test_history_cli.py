"""`harness history`: stored runs with scores, key measurements and regressions."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from store_processes import grade_for, record_for

from harness.model import Measurement
from harness.store import open_store

STABLE_RUNS, SLOW_RUNS = 22, 5


@pytest.fixture
def history_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A history of the shop's failover: stable near 2 s, then the last runs near 4 s."""
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_STORE", url)
    with open_store(url) as store:
        for index in range(STABLE_RUNS + SLOW_RUNS):
            failover = 2.0 + (index % 4) * 0.05 if index < STABLE_RUNS else 4.0 + (index % 3) * 0.05
            measurements = (
                Measurement("failover_seconds", failover, "seconds"),
                Measurement("replication_lag_seconds", 0.5, "seconds"),
                Measurement("lost_writes_count", 0.0, "count"),
            )
            record = replace(record_for(index, samples=5), measurements=measurements)
            store.save(record, grade_for(record))
        other = replace(record_for(999, samples=1), scenario="bank", run_id="bank-run")
        store.save(other, replace(grade_for(other), scenario="bank"))
    return url


def test_history_lists_newest_runs_with_measurements_and_flags_the_regression(
    history_url: str, run_cli
) -> None:
    result = run_cli("history", "--scenario", "shop", "--limit", "8")
    assert result.exit_code == 0, result
    lines = result.stdout.splitlines()
    header = "started (UTC)  scenario  experiment  verdict  score  failover  lag  rto  lost"
    assert lines[0].split() == header.split()
    rows = [line for line in lines[1:] if not line.startswith("  ^")]
    assert len(rows) == 8
    newest = record_for(STABLE_RUNS + SLOW_RUNS - 1, samples=0)
    assert rows[0].startswith(newest.started_at.replace("T", " ")[:16])
    assert "shop" in rows[0] and "pass" in rows[0] and "100.0" in rows[0]
    assert "4.05 s" in rows[0] or "4.00 s" in rows[0] or "4.10 s" in rows[0]
    assert "500 ms" in rows[0] and rows[0].rstrip().endswith("0")
    flags = [line for line in lines if line.startswith("  ^")]
    assert len(flags) == 1
    assert flags[0].startswith("  ^ REGRESSION failover_seconds: median 4.")
    assert "vs 2." in flags[0] and "(p=" in flags[0]
    # The flag sits under one of the slow runs, never under a stable one.
    flagged_row = lines[lines.index(flags[0]) - 1]
    assert any(f"{v:.2f} s" in flagged_row for v in (4.0, 4.05, 4.1))


def test_history_json(history_url: str, run_cli) -> None:
    result = run_cli("history", "--json", "--limit", "40")
    runs = json.loads(result.stdout)
    assert len(runs) == STABLE_RUNS + SLOW_RUNS + 1  # both scenarios
    assert runs[0]["run_id"] == "bank-run"  # started last
    shop = [run for run in runs if run["scenario"] == "shop"]
    assert shop[-1]["measurements"] == {
        "failover_seconds": 2.0,
        "replication_lag_seconds": 0.5,
        "rto_seconds": None,
        "lost_writes_count": 0.0,
    }
    flagged = [run for run in shop if run["regressions"]]
    assert len(flagged) == 1
    (regression,) = flagged[0]["regressions"]
    assert regression["measure"] == "failover_seconds"
    assert regression["recent_median"] > 1.5 * regression["baseline_median"]
    assert regression["p_value"] < 0.01
    assert flagged[0]["measurements"]["failover_seconds"] >= 4.0


def test_history_of_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("history", "--store", f"sqlite:///{tmp_path / 'empty.db'}", "--scenario", "shop")
    assert (result.exit_code, result.stdout) == (0, "no stored runs of shop\n")


def test_history_bad_store_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("history", "--store", "redis://127.0.0.1:1/0")
    assert result.exit_code == 2
    assert result.stderr.startswith("harness: HARNESS_STORE: expected sqlite:///PATH")
    assert len(result.stderr.splitlines()) == 1


def test_history_unreachable_postgres_is_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("history", "--store", "postgresql://harness:pw@127.0.0.1:1/history?connect_timeout=2")
    assert result.exit_code == 3
    assert result.stderr.startswith(
        "harness: cannot connect to the history at postgresql://harness:***@127.0.0.1:1"
    )
    assert "pw@" not in result.stderr
