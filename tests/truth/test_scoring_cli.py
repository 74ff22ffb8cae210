"""`harness score` grades a stored run again without ever rewriting it: it prints the grade, and
writes a graded copy only where --out says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.model import FaultRecord, Grade, Measurement, RunRecord, Verdict

SCENARIO = """\
name: shop
regions: [{name: us-east-1, primary: true}]
targets:
  latency: {measure: slo_p99_latency_seconds, at_most: 500ms, source: "seed 1 line 2"}
experiments:
  - {path: experiments/x.yaml, targets: [latency]}
"""


def _stored_run(directory: Path, latency: float) -> Path:
    record = RunRecord(
        run_id="run-1",
        scenario="shop",
        experiment_title="t",
        experiment_path="experiments/x.yaml",
        harness_version="0",
        started_at="2026-01-01T00:00:00+00:00",
        duration_seconds=10.0,
        status="completed",
        steady_state_before=True,
        faults=(
            FaultRecord("f1", "harness.actions.network.add_latency", "link", 1.0, 5.0, True, "rtt +100 ms"),
        ),
        measurements=(Measurement("slo_p99_latency_seconds", latency, "seconds", "prometheus"),),
    )
    old_grade = Grade("run-1", "shop", "t", Verdict.FAIL, 0.0, ())
    folder = directory / "reports" / "run-1"
    folder.mkdir(parents=True)
    path = folder / "run.json"
    path.write_text(json.dumps({"record": record.to_dict(), "grade": old_grade.to_dict()}))
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "shop.yaml").write_text(SCENARIO)
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "x.yaml").write_text("title: x\nmethod: []\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_score_prints_and_never_rewrites_the_stored_run(project: Path, run_cli) -> None:
    stored = _stored_run(project, 0.1)
    before = stored.read_bytes()
    listing = sorted(p.relative_to(project) for p in project.rglob("*"))
    result = run_cli("score", str(stored), "--scenario", "scenarios/shop.yaml")
    assert result.exit_code == 0, result
    assert "PASS" in result.stderr + result.stdout
    assert stored.read_bytes() == before
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == listing


def test_score_json_shows_each_checks_source(project: Path, run_cli) -> None:
    stored = _stored_run(project, 0.9)
    result = run_cli("score", str(stored), "--scenario", "scenarios/shop.yaml", "--json")
    assert result.exit_code == 1, result
    check = json.loads(result.stdout)["checks"][0]
    assert (check["verdict"], check["source"]) == ("fail", "seed 1 line 2")


def test_score_out_writes_a_graded_copy_elsewhere_and_says_where(project: Path, run_cli) -> None:
    stored = _stored_run(project, 0.1)
    before = stored.read_bytes()
    result = run_cli("score", str(stored), "--scenario", "scenarios/shop.yaml", "--out", "regraded")
    assert result.exit_code == 0, result
    copy = project / "regraded" / "run-1" / "run.json"
    assert json.loads(copy.read_text())["grade"]["verdict"] == "pass"
    assert str(Path("regraded") / "run-1") in result.stderr + result.stdout
    assert stored.read_bytes() == before


def test_score_refuses_to_write_over_the_stored_run(project: Path, run_cli) -> None:
    stored = _stored_run(project, 0.1)
    before = stored.read_bytes()
    result = run_cli("score", str(stored), "--scenario", "scenarios/shop.yaml", "--out", "reports")
    assert result.exit_code == 2, result
    assert len(result.stderr.strip().splitlines()) == 1 and "overwrite" in result.stderr
    assert stored.read_bytes() == before
