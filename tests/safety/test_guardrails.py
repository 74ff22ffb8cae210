"""A guardrail crossed during a fault aborts the run and rolls back within 2 s; the verdict says why."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .trials import EXPERIMENTS, Estate, run_harness, wait_until_steady, write_scenario

ABORT_SECONDS = 2.0


def test_error_ratio_guardrail_aborts_a_frozen_primary_within_2_s(estate: Estate, tmp_path: Path) -> None:
    scenario = write_scenario(
        tmp_path / "guarded.yaml", "guardrails: {max_error_ratio: 20%, window: 2s, max_duration: 10min}\n"
    )
    out, state = tmp_path / "out", tmp_path / "state"
    started = time.monotonic()
    result = run_harness(
        estate, state, "run", str(EXPERIMENTS / "pause-primary.yaml"), "--scenario", str(scenario),
        "--endpoints", str(estate.endpoints_path), "--out", str(out),
    )  # fmt: skip
    wall_seconds = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert wall_seconds < 30, f"the run took {wall_seconds:.1f} s: the 60 s hold was not cut short"
    (run_file,) = out.glob("*/run.json")
    run = json.loads(run_file.read_text())
    record, grade = run["record"], run["grade"]
    (crossed,) = [e for e in record["events"] if e["kind"] == "guardrail.crossed"]
    (fault,) = record["faults"]
    assert fault["effect_proven"] is True
    assert fault["undone_at_seconds"] is not None
    abort_seconds = fault["undone_at_seconds"] - crossed["at_seconds"]
    assert 0 <= abort_seconds <= ABORT_SECONDS, f"undone {abort_seconds:.2f} s after the crossing"
    assert "error ratio" in crossed["detail"]["reason"]
    assert grade["verdict"] == "fail"
    assert any("guardrail" in reason and "error ratio" in reason for reason in grade["reasons"])
    assert wait_until_steady(estate, state) == []


def test_duration_guardrail_aborts_a_fault_held_too_long(estate: Estate, tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "short.yaml", "guardrails: {max_duration: 1s}\n")
    out, state = tmp_path / "out", tmp_path / "state"
    result = run_harness(
        estate, state, "run", str(EXPERIMENTS / "pause-replica.yaml"), "--scenario", str(scenario),
        "--endpoints", str(estate.endpoints_path), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    (run_file,) = out.glob("*/run.json")
    run = json.loads(run_file.read_text())
    (crossed,) = [e for e in run["record"]["events"] if e["kind"] == "guardrail.crossed"]
    (fault,) = run["record"]["faults"]
    assert "max_duration" in crossed["detail"]["reason"]
    assert 1.0 <= crossed["at_seconds"] - fault["applied_at_seconds"] <= 1.0 + ABORT_SECONDS
    assert 0 <= fault["undone_at_seconds"] - crossed["at_seconds"] <= ABORT_SECONDS
    assert any("max_duration" in reason for reason in run["grade"]["reasons"])
    assert wait_until_steady(estate, state) == []
