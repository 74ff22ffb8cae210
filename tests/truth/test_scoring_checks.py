"""check_target: the fields a check carries, missing evidence, missed_because, lower bounds and two
witnesses, each against a known truth."""

from __future__ import annotations

import pytest

from harness.model import Comparison, Measurement, Target, Verdict
from harness.scoring import check_target

FAILOVER = Target(
    "failover_time", "failover_seconds", 30.0, "seconds", Comparison.AT_MOST, True, None,
    "client-visible outage of the longest region", "seed 001 line 12: failover under 30 s",
)  # fmt: skip
THROUGHPUT = Target("throughput", "load_rps", 100.0, "rps", Comparison.AT_LEAST)
ERRORS = Target("error_rate", "slo_error_ratio", 0.05, "ratio", source="seed 002 line 3")
CANARY_ERRORS = Target("canary_errors", "error_ratio", 0.05, "ratio")
LAG = Target("replication_lag", "replication_lag_seconds", 5.0, "seconds")


def _m(name: str, value: float | None, *, lower_bound: bool = False, evidence: str = "", missed: str = ""):
    unit = {"ratio": "ratio", "rps": "rps"}.get(name.rsplit("_", 1)[-1], "seconds")
    return Measurement(name, value, unit, "test", evidence, lower_bound, missed)


def test_a_check_carries_the_targets_source_and_description() -> None:
    check = check_target(FAILOVER, _m("failover_seconds", 4.2))
    assert check.verdict is Verdict.PASS
    assert check.source == "seed 001 line 12: failover under 30 s"
    assert check.description == "client-visible outage of the longest region"
    assert (check.lower_bound, check.witnesses, check.missing) == (False, (), ())


def test_no_value_is_unknown_naming_the_missing_evidence() -> None:
    evidence = "no canary sample from eu-west-1 between 10.0 s and 18.0 s"
    check = check_target(FAILOVER, _m("failover_seconds", None, evidence=evidence))
    assert check.verdict is Verdict.UNKNOWN
    assert check.missing == (evidence,)
    bare = check_target(FAILOVER, _m("failover_seconds", None))
    assert bare.missing == ("no measurement of failover_seconds",)


def test_a_measure_the_run_did_not_produce_is_unknown_not_measured() -> None:
    check = check_target(FAILOVER, None)
    assert check.verdict is Verdict.UNKNOWN and check.measured is None
    assert check.missing and "not measured" in check.missing[0]


def test_missed_because_fails_whatever_the_value() -> None:
    reason = "no promotion: 127.0.0.1:6379 was still the primary when the fault was undone"
    check = check_target(FAILOVER, _m("failover_seconds", 2.0, missed=reason))
    assert check.verdict is Verdict.FAIL
    assert reason in check.evidence and check.measured == 2.0


def test_missed_because_fails_even_without_a_value() -> None:
    # No promotion is established by the events; the canary's figure may be missing too.
    reason = "no promotion: no new primary was named between 10.000 s and 20.000 s"
    check = check_target(FAILOVER, _m("failover_seconds", None, evidence="eu-west-1: gap", missed=reason))
    assert check.verdict is Verdict.FAIL and reason in check.evidence


def test_doubts_are_listed_as_missing_and_beat_missed_because() -> None:
    doubts = ("chaoslib status is 'aborted', not 'completed'",)
    check = check_target(FAILOVER, _m("failover_seconds", 2.0, missed="no promotion"), doubts)
    assert check.verdict is Verdict.UNKNOWN and check.missing == doubts


@pytest.mark.parametrize(
    ("target", "value", "expected"),
    [
        (FAILOVER, 45.0, Verdict.FAIL),  # at least 45 s against at most 30 s: certainly over
        (FAILOVER, 30.0, Verdict.UNKNOWN),  # at least 30 s: may be 30 (pass) or more (fail)
        (FAILOVER, 10.0, Verdict.UNKNOWN),  # at least 10 s: could still be over
        (THROUGHPUT, 150.0, Verdict.PASS),  # at least 150 rps against at least 100: certainly met
        (THROUGHPUT, 100.0, Verdict.PASS),  # at least 100 against at least 100: met
        (THROUGHPUT, 50.0, Verdict.UNKNOWN),  # at least 50: the true value may be above 100
    ],
)
def test_a_lower_bound_never_passes_an_at_most_target(target, value, expected) -> None:
    check = check_target(target, _m(target.measure, value, lower_bound=True))
    assert check.verdict is expected
    assert check.lower_bound is True and check.measured == value
    if expected is Verdict.UNKNOWN:
        assert any("lower bound" in m for m in check.missing)


def test_the_boundary_itself_passes_an_exact_value() -> None:
    assert check_target(FAILOVER, _m("failover_seconds", 30.0)).verdict is Verdict.PASS
    assert check_target(FAILOVER, _m("failover_seconds", 30.001)).verdict is Verdict.FAIL


def test_a_non_finite_value_is_unknown() -> None:
    check = check_target(FAILOVER, _m("failover_seconds", float("nan")))
    assert check.verdict is Verdict.UNKNOWN and "not a finite number" in check.missing[0]


# ---------------------------------------------------------------- two witnesses


def test_a_partition_seen_by_the_canary_and_not_by_prometheus_is_unknown() -> None:
    check = check_target(ERRORS, _m("slo_error_ratio", 0.0), (), _m("error_ratio", 0.40))
    assert check.verdict is Verdict.UNKNOWN
    assert check.witnesses == (("slo_error_ratio", 0.0), ("error_ratio", 0.40))
    assert "disagree" in check.missing[0]
    mirrored = check_target(CANARY_ERRORS, _m("error_ratio", 0.40), (), _m("slo_error_ratio", 0.0))
    assert mirrored.verdict is Verdict.UNKNOWN
    assert mirrored.witnesses == (("error_ratio", 0.40), ("slo_error_ratio", 0.0))


def test_agreeing_witnesses_grade_the_worse_and_show_both() -> None:
    # 1 % and 4 %: within 5 points of each other; the canary's 4 % is graded (still within 5 %).
    check = check_target(ERRORS, _m("slo_error_ratio", 0.01), (), _m("error_ratio", 0.04))
    assert check.verdict is Verdict.PASS and check.measured == 0.04
    assert check.witnesses == (("slo_error_ratio", 0.01), ("error_ratio", 0.04))
    # Prometheus 3 % passes alone, but the canary's 7 % is within tolerance and over the limit.
    missed = check_target(ERRORS, _m("slo_error_ratio", 0.03), (), _m("error_ratio", 0.07))
    assert missed.verdict is Verdict.FAIL and missed.measured == 0.07


def test_one_witness_alone_is_graded_and_the_absent_one_shown() -> None:
    check = check_target(ERRORS, _m("slo_error_ratio", 0.01), (), None)
    assert check.verdict is Verdict.PASS
    assert check.witnesses == (("slo_error_ratio", 0.01), ("error_ratio", None))


@pytest.mark.parametrize(
    ("marker", "marker_bound", "exporter", "expected", "graded"),
    [
        (0.8, False, 1.0, Verdict.PASS, 1.0),  # agree: the worse (1.0 s) is graded
        (0.8, False, 12.0, Verdict.UNKNOWN, None),  # 11.2 s apart > 2 s + 25 % of 12 s
        (3.5, False, 6.0, Verdict.FAIL, 6.0),  # agree within 3.5 s; exporter 6 s over 5 s
        (10.0, True, 0.5, Verdict.UNKNOWN, None),  # exporter 0.5 s contradicts "at least 10 s"
        (10.0, True, 11.0, Verdict.FAIL, 11.0),  # consistent; exporter 11 s certainly over
        (3.0, True, 2.5, Verdict.UNKNOWN, 3.0),  # consistent; "at least 3 s" cannot pass
        (3.0, True, 4.0, Verdict.UNKNOWN, 4.0),  # exporter 4 s passes, but the marker says only "≥ 3 s"
    ],
)
def test_replication_lag_witnesses(marker, marker_bound, exporter, expected, graded) -> None:
    check = check_target(
        LAG,
        _m("replication_lag_seconds", marker, lower_bound=marker_bound),
        (),
        _m("replication_lag_exporter_seconds", exporter),
    )
    assert check.verdict is expected, check.evidence
    assert check.witnesses == (
        ("replication_lag_seconds", marker),
        ("replication_lag_exporter_seconds", exporter),
    )
    if graded is not None:
        assert check.measured == graded
