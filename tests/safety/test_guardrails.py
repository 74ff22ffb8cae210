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


def test_error_ratio_guardrail_fires_before_its_first_window_is_full(estate: Estate, tmp_path: Path) -> None:
    """The window (20 s) is longer than the fault (a 6 s freeze): crossed once the failures so far
    exceed 10 % of a full window's requests (2 s of them), long before the window is full."""
    experiment = tmp_path / "short-freeze.yaml"
    experiment.write_text((EXPERIMENTS / "pause-primary.yaml").read_text().replace("after: 60", "after: 6"))
    scenario = write_scenario(
        tmp_path / "long-window.yaml",
        "guardrails: {max_error_ratio: 10%, window: 20s, max_duration: 10min}\n",
        experiments=[experiment],
    )
    out, state = tmp_path / "out", tmp_path / "state"
    result = run_harness(
        estate, state, "run", str(experiment), "--scenario", str(scenario),
        "--endpoints", str(estate.endpoints_path), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    (run_file,) = out.glob("*/run.json")
    run = json.loads(run_file.read_text())
    (crossed,) = [e for e in run["record"]["events"] if e["kind"] == "guardrail.crossed"]
    (fault,) = run["record"]["faults"]
    assert "error ratio" in crossed["detail"]["reason"] and "full 20 s window" in crossed["detail"]["reason"]
    assert crossed["at_seconds"] - fault["applied_at_seconds"] < 6, "it fired only after the fault ended"
    assert 0 <= fault["undone_at_seconds"] - crossed["at_seconds"] <= ABORT_SECONDS
    assert run["grade"]["verdict"] == "fail"
    assert any("guardrail" in reason for reason in run["grade"]["reasons"])
    assert wait_until_steady(estate, state) == []


def _samples(oks: list[bool], start: float = 0.0, step: float = 0.05) -> list[dict]:
    return [{"at_monotonic": start + i * step, "ok": ok} for i, ok in enumerate(oks)]


def test_error_ratio_is_judged_over_the_requests_so_far_then_the_sliding_window() -> None:
    from harness.runner import GUARD_MIN_SAMPLES, error_ratio_crossing

    # Fewer requests than the minimum: never judged, even all failed.
    few = _samples([False] * (GUARD_MIN_SAMPLES - 1))
    assert error_ratio_crossing(few, 0.0, 1.0, 60.0, 0.2) == ""
    # Young run (1.2 s of a 60 s window): every request so far counts.
    young = _samples([True] * 10 + [False] * 14)
    reason = error_ratio_crossing(young, 0.0, 1.2, 60.0, 0.2)
    assert "58%" in reason and "first 1.2 s" in reason and "24 requests" in reason
    # Old run: only the last window counts; failures before it are forgotten.
    old = _samples([False] * 40, start=0.0) + _samples([True] * 40, start=10.0)
    assert error_ratio_crossing(old, 0.0, 12.0, 5.0, 0.2) == ""
    assert "last 11 s" in error_ratio_crossing(old, 0.0, 12.0, 11.0, 0.2)


def test_a_young_window_is_judged_against_the_requests_a_full_window_holds() -> None:
    from harness.runner import error_ratio_crossing

    # aeon-nova: 50 % over 2 min, three canaries at 20 Hz. A Redis failover: 1 s healthy, then
    # 3 s of failures. The 2-minute window cannot end above 50 % yet: no abort.
    failover = _samples([True] * 60, step=1 / 60) + _samples([False] * 180, start=1.0, step=1 / 60)
    assert error_ratio_crossing(failover, 0.0, 4.0, 120.0, 0.5, requests_per_second=60.0) == ""
    # The case: 1 % over 10 s, one canary at 20 Hz, 94 % failing: crossed within a second
    # of the first failures, although the window is far from full.
    burst = _samples([True] * 20) + _samples([False, False, False, True] * 5, start=1.0)
    reason = error_ratio_crossing(burst, 0.0, 2.0, 10.0, 0.01, requests_per_second=20.0)
    assert "full 10 s window" in reason and "15 of 200 requests failed" in reason
    # A whole window's worth of failures later, the sliding window judges alone.
    old = _samples([False] * 200, start=0.0) + _samples([True] * 200, start=10.0)
    assert error_ratio_crossing(old, 0.0, 20.1, 10.0, 0.01, requests_per_second=20.0) == ""


def test_a_timed_out_request_counts_for_the_requests_it_held_up() -> None:
    from harness.runner import error_ratio_crossing

    # 40 quick successes, then 2 timeouts of 1 s at 20 Hz: 40 requests' worth of failures.
    samples = _samples([True] * 40) + [
        {"at_monotonic": 2.0 + i, "ok": False, "weight": 20.0} for i in range(2)
    ]
    assert "50%" in error_ratio_crossing(samples, 0.0, 4.0, 60.0, 0.2)
