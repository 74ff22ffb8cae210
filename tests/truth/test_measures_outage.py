"""Outage measures (failover, RTO, error ratio, canary p99) against records of known truth.

Every record comes from a simulated canary (tests/truth/measure_records.py) against a server whose
outages are given exactly; 16 Hz keeps every send time a binary-exact number.
"""

from __future__ import annotations

import random

import pytest
from measure_records import ANSWER_SECONDS, Outage, canary_stream, fault, record, started

from harness import measures
from harness.model import Event, Measurement

RATE = 16.0  # 62.5 ms between requests: exact in binary
EAST, WEST = "us-east-1", "eu-west-1"


def _stream(region: str, *outages: Outage, end: float = 30.0, phase: float = 0.0) -> list:
    return canary_stream(region, outages, rate_hz=RATE, end=end, phase=phase)


def _started(*regions: str) -> list[Event]:
    return [started(r, RATE, kind="http") for r in regions]


def test_a_frozen_server_reads_the_whole_freeze_not_up_to_the_send_of_the_late_answer() -> None:
    # SIGSTOP at 10 s, SIGCONT at 14.5 s; 1 s client timeout: the request sent at 14.0 s is
    # answered at 14.501 s. The window ends at that answer, not at its send (which read 4.0 s).
    samples = _stream(EAST, Outage(10.0, 14.5, frozen=True), end=20.0)
    (window,) = measures.outage_windows(samples, fault_at=10.0)
    assert window.start_seconds == 10.0
    assert window.end_seconds == pytest.approx(14.5 + ANSWER_SECONDS)
    assert window.duration_seconds >= 4.5

    # A freeze that ended by itself (the fault still applied): the exact figure.
    lasting = record(
        samples, [fault(10.0, None, "harness.actions.instances.pause_instance")], _started(EAST), 20.0
    )
    failover = measures.measure(lasting, "failover_seconds")
    assert failover.value == pytest.approx(4.5 + ANSWER_SECONDS)
    assert failover.lower_bound is False
    assert "us-east-1" in failover.evidence and "recovered at 14.501 s" in failover.evidence


def test_a_window_still_open_at_the_undo_is_a_lower_bound_to_the_undo() -> None:
    samples = _stream(EAST, Outage(10.0, 14.5, frozen=True), end=20.0)
    undone_by_resume = record(samples, [fault(10.0, 14.5)], _started(EAST), 20.0)
    for name in ("failover_seconds", "rto_seconds"):
        measured = measures.measure(undone_by_resume, name)
        assert measured.value == pytest.approx(4.5)
        assert measured.lower_bound is True
        assert "still failing when the fault was undone at 14.500 s" in measured.evidence
        assert "undo's doing" in measured.evidence


def test_still_failing_at_the_run_end_is_a_lower_bound_to_the_last_sample() -> None:
    samples = _stream(EAST, Outage(10.0, 99.0), end=20.0)
    never_undone = record(samples, [fault(10.0, None)], _started(EAST), 20.0)
    last_answer = max(measures.answer_seconds(s) for s in samples)
    failover = measures.measure(never_undone, "failover_seconds")
    assert failover.value == pytest.approx(last_answer - 10.0)
    assert failover.lower_bound is True
    assert "still failing at the last sample" in failover.evidence
    rto = measures.measure(never_undone, "rto_seconds")
    assert rto.value == pytest.approx(last_answer - 10.0) and rto.lower_bound is True


def test_samples_that_stop_before_the_undo_bound_the_outage_at_the_last_sample() -> None:
    # A probe's own canary stopped at 15 s while still failing; the fault was undone at 20 s.
    samples = _stream(EAST, Outage(10.0, 99.0), end=15.0)
    window = record(samples, [fault(10.0, 20.0)], _started(EAST), 15.0)
    last_answer = max(measures.answer_seconds(s) for s in samples)
    for name in ("failover_seconds", "rto_seconds"):
        measured = measures.measure(window, name)
        assert measured.value == pytest.approx(last_answer - 10.0), name
        assert measured.lower_bound is True
        assert f"still failing at the last sample ({last_answer:.3f} s)" in measured.evidence


def test_a_request_in_flight_when_the_fault_began_opens_the_window_at_the_fault() -> None:
    # The request sent at 10.0 s is still in flight when the server dies at 10.0005 s.
    samples = _stream(EAST, Outage(10.0005, 12.0), end=20.0)
    assert samples[160].at_seconds == 10.0 and not samples[160].ok
    killed = record(samples, [fault(10.0005, 15.0)], _started(EAST), 20.0)
    failover = measures.measure(killed, "failover_seconds")
    assert failover.value == pytest.approx(12.0 + ANSWER_SECONDS - 10.0005)
    assert failover.lower_bound is False
    assert "in flight at the fault (10.001 s) failed" in failover.evidence


def test_a_lone_success_inside_an_outage_does_not_end_it() -> None:
    # Refusing 10-11 s, one request answered at 11.0-11.06 s, refusing again until 13 s.
    samples = _stream(EAST, Outage(10.0, 11.0), Outage(11.0625, 13.0), end=20.0)
    flapping = record(samples, [fault(10.0, 15.0)], _started(EAST), 20.0)
    failover = measures.measure(flapping, "failover_seconds")
    assert failover.value == pytest.approx(13.0 + ANSWER_SECONDS - 10.0)
    assert f"first of {measures.RECOVERY_SUCCESSES} consecutive successes" in failover.evidence


def test_failover_is_the_longest_region_not_the_span_across_regions() -> None:
    samples = _stream(EAST, Outage(10.0, 12.0), end=30.0) + _stream(WEST, Outage(20.0, 22.0), end=30.0)
    two = record(samples, [fault(10.0, 25.0, "harness.actions.network.partition_regions", "eu-west-1")],
                 _started(EAST, WEST))  # fmt: skip
    failover = measures.measure(two, "failover_seconds")
    # eu-west-1 was last served by the request answered at 19.9385 s, refused from 20 s to 22 s.
    assert failover.value == pytest.approx(22.0 + ANSWER_SECONDS - (19.9375 + ANSWER_SECONDS))  # not 12 s
    assert failover.evidence.startswith("longest region eu-west-1: ")
    assert "the last success, answered at 19.939 s" in failover.evidence
    assert "; us-east-1 2.001 s" in failover.evidence
    # RTO: until every region is green again (the later region), from the fault.
    assert measures.measure(two, "rto_seconds").value == pytest.approx(12.0 + ANSWER_SECONDS)


def test_no_failure_after_a_proven_fault_is_unknown_not_zero() -> None:
    quiet = record(_stream(EAST, end=20.0), [fault(10.0, 15.0)], _started(EAST), 20.0)
    for name in ("failover_seconds", "rto_seconds"):
        measured = measures.measure(quiet, name)
        assert measured.value is None
        assert measured.evidence.startswith("the canary saw no failure after the fault: ")
        assert "us-east-1" in measured.evidence


def test_a_gap_in_a_regions_samples_makes_the_outage_unknown() -> None:
    # No sample from 12 s to 20 s (8 s) while the fault was applied: whatever happened is unseen.
    samples = [s for s in _stream(EAST, end=30.0) if not 12.0 < s.at_seconds < 20.0]
    gap = record(samples, [fault(10.0, 25.0)], _started(EAST))
    for name in ("failover_seconds", "rto_seconds", "error_ratio", "canary_p99_latency_seconds"):
        measured = measures.measure(gap, name)
        assert measured.value is None, name
        assert measured.evidence.startswith(
            "us-east-1: no canary sample for 7.999 s (nothing in flight from 12.001 s to 20.000 s), "
            "longer than the 1.125 s"
        )


def test_a_region_that_started_a_canary_and_has_no_samples_is_unknown() -> None:
    samples = _stream(EAST, Outage(10.0, 11.0), end=30.0) + _stream(WEST, end=9.0)
    missing = record(samples, [fault(10.0, 25.0)], _started(EAST, WEST))
    failover = measures.measure(missing, "failover_seconds")
    assert failover.value is None
    assert failover.evidence == "eu-west-1: no canary sample between 10.000 s and 25.500 s"


def test_without_canary_started_the_baseline_regions_must_cover_the_window() -> None:
    samples = _stream(EAST, Outage(10.0, 11.0), end=30.0) + _stream(WEST, end=9.0)
    missing = record(samples, [fault(10.0, 25.0)])
    failover = measures.measure(missing, "failover_seconds")
    assert failover.value is None and "eu-west-1: no canary sample between" in failover.evidence
    complete = record(_stream(EAST, Outage(10.0, 11.0), end=30.0), [fault(10.0, 25.0)])
    assert measures.measure(complete, "failover_seconds").value == pytest.approx(1.0 + ANSWER_SECONDS)


def test_outages_are_timed_from_the_first_disruptive_fault_not_the_load() -> None:
    samples = _stream(EAST, Outage(15.0, 17.0), end=30.0)
    load = fault(5.0, 28.0, "harness.actions.load.start_load", "locust")
    partition = fault(15.0, 25.0, "harness.actions.network.partition_regions", "eu-west-1")
    loaded = record(samples, [load, partition], _started(EAST))
    assert measures.first_fault(loaded) == partition
    assert measures.measure(loaded, "rto_seconds").value == pytest.approx(2.0 + ANSWER_SECONDS)  # not 12 s
    only_load = record(samples, [load], _started(EAST))
    failover = measures.measure(only_load, "failover_seconds")
    assert failover.value is None and "only load: harness.actions.load.start_load" in failover.evidence


def test_error_ratio_is_the_worst_region_over_the_fault_window() -> None:
    # eu-west-1 is cut for the whole fault window [10 s, 20 s]; us-east-1 never fails.
    samples = _stream(EAST, end=30.0) + _stream(WEST, Outage(10.0, 20.0), end=30.0)
    cut = record(samples, [fault(10.0, 20.0, "harness.actions.network.partition_regions", "eu-west-1")],
                 _started(EAST, WEST))  # fmt: skip
    ratio = measures.measure(cut, "error_ratio")
    # Requests overlapping [10 s, 20 s]: sent 10.0 .. 20.0 s; the one sent at 20.0 s succeeded.
    assert ratio.value == 160 / 161
    assert ratio.evidence == "worst region eu-west-1: 160 of 161 requests failed; all regions: 160 of 322"


def test_error_ratio_counts_a_request_in_flight_at_the_fault() -> None:
    samples = _stream(EAST, Outage(10.0005, 12.0), end=20.0)
    killed = record(samples, [fault(10.0005, 12.0)], _started(EAST), 20.0)
    ratio = measures.measure(killed, "error_ratio")
    # Requests overlapping [10.0005, 12]: the one sent at 10.0 s (in flight) and 10.0625 .. 12.0.
    assert ratio.evidence.startswith("worst region us-east-1: 32 of 33 requests failed")
    assert ratio.value == pytest.approx(32 / 33)


def test_canary_p99_covers_the_fault_window_with_timeouts_as_a_lower_bound() -> None:
    samples = _stream(EAST, Outage(10.0, 14.5, frozen=True), end=30.0)
    frozen = record(samples, [fault(10.0, 14.5, "harness.actions.instances.pause_instance")], _started(EAST))
    p99 = measures.measure(frozen, "canary_p99_latency_seconds")
    assert p99.value == pytest.approx(1.0)  # the timeout, not the healthy 1 ms of the whole run
    assert p99.lower_bound is True
    assert "timeout" in p99.evidence and "us-east-1" in p99.evidence


def test_shuffled_samples_measure_the_same() -> None:
    samples = _stream(EAST, Outage(10.0, 12.0), end=30.0) + _stream(WEST, Outage(11.0, 14.0), end=30.0)
    shuffled = list(samples)
    random.Random(7).shuffle(shuffled)
    faults = [fault(10.0, 25.0)]
    for name in ("failover_seconds", "rto_seconds", "error_ratio", "canary_p99_latency_seconds"):
        ordered = measures.measure(record(samples, faults, _started(EAST, WEST)), name)
        assert measures.measure(record(shuffled, faults, _started(EAST, WEST)), name) == ordered


def test_a_boundary_outage_measures_exactly() -> None:
    # 2 s refused: the figure is 2 s plus the one answer that ends it, never less than the truth.
    samples = _stream(EAST, Outage(10.0, 12.0), end=20.0)
    killed = record(samples, [fault(10.0, 15.0)], _started(EAST), 20.0)
    measured = measures.measure(killed, "failover_seconds")
    assert measured.value == pytest.approx(2.0 + ANSWER_SECONDS)
    assert measured == Measurement(
        "failover_seconds",
        measured.value,
        "seconds",
        "canary",
        "longest region us-east-1: first failed request sent at 10.000 s, counted from the fault at "
        "10.000 s, recovered at 12.001 s (answer of the first of 3 consecutive successes); "
        "32 failed requests",
    )


def test_percentile_is_numpy_higher_and_refuses_nothing_to_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert measures.percentile(values, 0.99) == 100.0
    assert measures.percentile(values, 0.5) == 51.0
    assert measures.percentile([3.0], 0.95) == 3.0
    with pytest.raises(ValueError, match="no values"):
        measures.percentile([], 0.5)
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        measures.percentile(values, 99)
