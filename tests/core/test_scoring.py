"""Scoring: table-driven verdicts, weights, critical failures and doubts."""

from __future__ import annotations

import pytest

from harness.model import (
    Comparison,
    ExperimentRef,
    FaultRecord,
    Measurement,
    RunRecord,
    Scenario,
    Target,
    Verdict,
)
from harness.scoring import check_target, exit_code, grade, overall_verdict, score


def _target(
    limit: float = 30.0, critical: bool = False, comparison=Comparison.AT_MOST, weight=None
) -> Target:
    return Target("failover_time", "failover_seconds", limit, "seconds", comparison, critical, weight)


def _measurement(value: float | None, lower_bound: bool = False) -> Measurement:
    return Measurement("failover_seconds", value, "seconds", "test", "", lower_bound)


@pytest.mark.parametrize(
    ("limit", "comparison", "value", "lower_bound", "expected"),
    [
        (30.0, Comparison.AT_MOST, 4.2, False, Verdict.PASS),
        (30.0, Comparison.AT_MOST, 30.0, False, Verdict.PASS),
        (30.0, Comparison.AT_MOST, 30.5, False, Verdict.FAIL),
        (0.99, Comparison.AT_LEAST, 0.995, False, Verdict.PASS),
        (0.99, Comparison.AT_LEAST, 0.95, False, Verdict.FAIL),
        (30.0, Comparison.AT_MOST, None, False, Verdict.UNKNOWN),
        (30.0, Comparison.AT_MOST, 45.0, True, Verdict.FAIL),  # at least 45 s: certainly over 30 s
        (30.0, Comparison.AT_MOST, 10.0, True, Verdict.UNKNOWN),  # at least 10 s: could still be over
    ],
)
def test_check_verdicts(limit, comparison, value, lower_bound, expected) -> None:
    check = check_target(_target(limit, comparison=comparison), _measurement(value, lower_bound))
    assert check.verdict is expected
    assert check.limit == limit


def test_missing_measurement_is_unknown_never_pass() -> None:
    check = check_target(_target(), None)
    assert check.verdict is Verdict.UNKNOWN
    assert "not measured" in check.evidence


def test_doubts_turn_a_pass_into_unknown() -> None:
    check = check_target(_target(), _measurement(1.0), doubts=["effect not observed"])
    assert check.verdict is Verdict.UNKNOWN
    assert "effect not observed" in check.evidence


def test_evidence_states_measured_and_target() -> None:
    check = check_target(_target(0.1), _measurement(4.21))
    assert check.verdict is Verdict.FAIL
    assert "measured 4.21 s" in check.evidence and "at most 100 ms" in check.evidence
    assert check.margin == pytest.approx(0.1 - 4.21)


@pytest.mark.parametrize(
    ("verdicts", "critical", "expected_score", "expected_verdict"),
    [
        ([Verdict.PASS, Verdict.PASS], [False, False], 100.0, Verdict.PASS),
        ([Verdict.PASS, Verdict.FAIL], [False, False], 50.0, Verdict.FAIL),
        ([Verdict.PASS, Verdict.UNKNOWN], [False, False], 50.0, Verdict.UNKNOWN),
        ([Verdict.PASS, Verdict.FAIL], [True, False], 75.0, Verdict.FAIL),  # weights 3 and 1
        ([Verdict.FAIL, Verdict.PASS], [True, False], 25.0, Verdict.FAIL),
        ([Verdict.UNKNOWN, Verdict.FAIL], [True, False], 0.0, Verdict.FAIL),
        ([], [], 0.0, Verdict.UNKNOWN),
    ],
)
def test_weighted_score_and_overall_verdict(verdicts, critical, expected_score, expected_verdict) -> None:
    checks = []
    for verdict, is_critical in zip(verdicts, critical, strict=True):
        value = {Verdict.PASS: 1.0, Verdict.FAIL: 99.0, Verdict.UNKNOWN: None}[verdict]
        checks.append(check_target(_target(critical=is_critical), _measurement(value)))
    assert score(checks) == pytest.approx(expected_score)
    assert overall_verdict(checks) is expected_verdict


def test_explicit_weight_overrides_default() -> None:
    check = check_target(_target(critical=True, weight=5), _measurement(1.0))
    assert check.weight == 5


@pytest.mark.parametrize(("verdict", "code"), [(Verdict.PASS, 0), (Verdict.FAIL, 1), (Verdict.UNKNOWN, 3)])
def test_exit_codes(verdict, code) -> None:
    assert exit_code(verdict) == code


def _record(**changes) -> RunRecord:
    base = dict(
        run_id="r1",
        scenario="s",
        experiment_title="t",
        experiment_path="experiments/x.yaml",
        harness_version="0",
        started_at="2026-01-01T00:00:00+00:00",
        duration_seconds=10.0,
        status="completed",
        steady_state_before=True,
        faults=(
            FaultRecord(
                "f1", "harness.actions.instances.stop_instance", "redis", 1.0, 5.0, True, "port refused"
            ),
        ),
        measurements=(Measurement("slo_p99_latency_seconds", 3.0, "seconds", "probe"),),
    )
    base.update(changes)
    return RunRecord(**base)


# A probe-reported measure: graded from the stored measurement, whatever harness.measures derives.
SCENARIO = Scenario(
    name="s",
    path="s.yaml",
    targets=(Target("latency", "slo_p99_latency_seconds", 30.0, "seconds", critical=True),),
    experiments=(ExperimentRef("experiments/x.yaml", targets=("latency",)),),
)


def test_grade_passes_a_clean_run() -> None:
    result = grade(_record(), SCENARIO)
    assert result.verdict is Verdict.PASS and result.score == 100.0 and result.reasons == ()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"steady_state_before": False}, "steady state did not hold"),
        ({"activity_errors": ("method kill: boom",)}, "activity failed"),
        (
            {"faults": (FaultRecord("f1", "a.stop", "redis", 1.0, None, False, "port still open"),)},
            "not observed",
        ),
        ({"faults": (FaultRecord("f1", "a.stop", "redis", 1.0, None, None, ""),)}, "not checked"),
        ({"status": "interrupted"}, "chaoslib status is 'interrupted'"),
    ],
)
def test_untrustworthy_runs_are_unknown(changes, reason) -> None:
    result = grade(_record(**changes), SCENARIO)
    assert result.verdict is Verdict.UNKNOWN
    assert any(reason in r for r in result.reasons)


def test_grade_is_pure_and_repeatable() -> None:
    record = _record()
    assert grade(record, SCENARIO) == grade(RunRecord.from_dict(record.to_dict()), SCENARIO)


def test_guardrail_crossing_fails_the_run() -> None:
    from harness.model import Event

    crossed = Event(
        3.0, "guardrail.crossed", "runner", {"reason": "canary error ratio 80% over the last 30 s"}
    )
    result = grade(_record(status="interrupted", events=(crossed,)), SCENARIO)
    assert result.verdict is Verdict.FAIL
    assert any("guardrail" in r and "80%" in r for r in result.reasons)
