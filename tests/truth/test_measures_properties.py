"""Properties of the outage window over random outages of known truth: the measured outage is never
shorter than the injected one (so a target it passes, the truth passes), and is at most one canary
interval longer; samples removed at random never make it shorter, only unknown or longer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from measure_records import ANSWER_SECONDS, Outage, canary_stream, fault, record, started

from harness import measures
from harness.model import Event, FaultRecord, Sample

REGION = "us-east-1"


@st.composite
def outages(draw: st.DrawFn) -> tuple[float, float, Outage, float, float]:
    rate = draw(st.sampled_from([10.0, 16.0, 20.0, 50.0]))
    timeout = draw(st.sampled_from([0.5, 1.0]))
    frozen = draw(st.booleans())
    start = draw(st.floats(5.0, 10.0))
    # A kill shorter than the interval can fall between two requests, and a freeze shorter than
    # the timeout plus the interval can be answered late but in time: then the canary sees no
    # failure (unknown, tested apart), so every outage here is longer.
    length = draw(st.floats((timeout if frozen else 0.0) + 1.0 / rate + 0.01, 6.0))
    phase = draw(st.floats(0.0, 1.0 / rate, exclude_max=True))
    return rate, timeout, Outage(start, start + length, frozen), phase, 30.0


def _record(rate: float, timeout: float, outage: Outage, phase: float, end: float, keep=None):
    samples = canary_stream(REGION, [outage], rate_hz=rate, timeout=timeout, end=end, phase=phase)
    if keep is not None:
        samples = [s for i, s in enumerate(samples) if keep(i)]
    # The fault is the outage's cause, never undone within the run: no censoring at an undo.
    return record(samples, [fault(outage.start, None)], [started(REGION, rate, timeout, "http")], end)


@settings(max_examples=300, deadline=None)
@given(outages())
def test_the_measured_outage_is_never_shorter_than_the_truth(case) -> None:
    rate, timeout, outage, phase, end = case
    failover = measures.measure(_record(rate, timeout, outage, phase, end), "failover_seconds")
    truth = outage.end - outage.start
    assert failover.value is not None, failover.evidence
    assert failover.lower_bound is False
    assert failover.value >= truth
    assert failover.value <= truth + 1.0 / rate + 2 * ANSWER_SECONDS + 1e-9


@settings(max_examples=300, deadline=None)
@given(outages(), st.sets(st.integers(0, 600), max_size=60))
def test_samples_removed_never_shorten_the_outage(case, removed) -> None:
    rate, timeout, outage, phase, end = case
    truth = outage.end - outage.start
    full = measures.measure(_record(rate, timeout, outage, phase, end), "failover_seconds")
    partial = measures.measure(
        _record(rate, timeout, outage, phase, end, keep=lambda i: i not in removed), "failover_seconds"
    )
    if partial.value is not None:
        assert partial.value >= truth
        assert partial.value >= full.value - 1e-9 or partial.lower_bound


_TIMES = st.floats(0.0, 60.0)
_DETAIL_VALUES = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.text(max_size=8),
                           st.lists(st.text(max_size=4), max_size=3))  # fmt: skip
_SAMPLES = st.builds(
    Sample,
    probe=st.sampled_from(["canary", "replication_lag", "replication_lag_exporter", "other"]),
    at_seconds=_TIMES,
    value=st.one_of(st.none(), st.floats(0.0, 30.0)),
    ok=st.booleans(),
    region=st.sampled_from(["a", "b", ""]),
    latency_seconds=st.one_of(st.none(), st.floats(0.0, 5.0)),
    error=st.sampled_from(["", "timeout: x", "not seen within 1 s", "unreachable: x", "refused"]),
)
_EVENTS = st.builds(
    Event,
    at_seconds=_TIMES,
    kind=st.sampled_from(
        [
            "canary.started",
            "sentinel.+odown",
            "sentinel.+switch-master",
            "patroni.leader-lost",
            "patroni.promoted",
            "postgres.promoted",
            "writes.verified",
            "writes.unverified",
            "write.lost",
            "replication.replicas",
        ]
    ),
    source=st.just("x"),
    detail=st.dictionaries(
        st.sampled_from(
            [
                "region",
                "kind",
                "rate_hz",
                "timeout_seconds",
                "old_primary",
                "new_primary",
                "exact",
                "poll_interval_seconds",
                "checked",
                "interval_seconds",
                "replicas",
                "between_polls",
            ]
        ),
        _DETAIL_VALUES,
        max_size=6,
    ),
)
_FAULTS = st.builds(
    FaultRecord,
    fault_id=st.just("f"),
    action=st.sampled_from(
        ["harness.actions.instances.stop_instance", "harness.actions.load.start_load", "x.partition"]
    ),
    target=st.sampled_from(["redis-primary", "a", "us-east-1"]),
    applied_at_seconds=_TIMES,
    undone_at_seconds=st.one_of(st.none(), _TIMES),
    effect_proven=st.just(True),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_SAMPLES, max_size=40), st.lists(_EVENTS, max_size=12), st.lists(_FAULTS, max_size=3))
def test_odd_records_never_raise_and_a_value_is_never_negative(samples, events, faults) -> None:
    odd = record(samples, faults, events, duration=60.0)
    for name in measures.DERIVED:
        measured = measures.measure(odd, name)
        if measured is not None and measured.value is not None:
            assert measured.value >= 0, (name, measured)
