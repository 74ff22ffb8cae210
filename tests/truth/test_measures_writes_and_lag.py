"""RPO, lost writes and replication lag from known evidence; a derived measure always beats a
probe's stale figure."""

from __future__ import annotations

from dataclasses import replace

import pytest
from measure_records import Outage, canary_stream, fault, record, started

from harness import measures
from harness.model import Event, Measurement, Sample

RATE = 16.0


def _verified(region: str, kind: str = "redis", checked: int = 100, at: float = 29.0) -> Event:
    detail = {"checked": checked, "lost": 0, "interval_seconds": 0.05, "region": region, "kind": kind}
    return Event(at, "writes.verified", "canary", detail)


def _writes(events: list[Event]):
    canaries = [started("us-east-1", RATE, kind="redis"), started("eu-west-1", RATE, kind="postgres")]
    return record((), [fault(10.0, 20.0)], [*canaries, *events])


def test_every_verifiable_canary_verified_gives_rpo_and_lost_writes() -> None:
    lost = [
        Event(12.0, "write.lost", "canary", {"key": "k1"}),
        Event(12.5, "write.lost", "canary", {"key": "k2"}),
    ]
    complete = _writes([_verified("us-east-1"), _verified("eu-west-1", "postgres"), *lost])
    assert measures.measure(complete, "lost_writes_count").value == 2.0
    assert measures.measure(complete, "rpo_seconds").value == pytest.approx(0.55)


def test_one_canary_unverified_makes_rpo_and_lost_writes_unknown() -> None:
    unverified = Event(29.0, "writes.unverified", "canary",
                       {"error": "ConnectionError", "region": "eu-west-1", "kind": "postgres"})  # fmt: skip
    partial = _writes([_verified("us-east-1"), unverified])
    for name in ("rpo_seconds", "lost_writes_count"):
        measured = measures.measure(partial, name)
        assert measured.value is None
        assert (
            measured.evidence == "acknowledged writes not verified (postgres in eu-west-1: ConnectionError)"
        )


def test_a_verifiable_canary_without_verification_makes_rpo_unknown() -> None:
    partial = _writes([_verified("us-east-1")])
    rpo = measures.measure(partial, "rpo_seconds")
    assert rpo.value is None and rpo.evidence == "no writes.verified for the canary of postgres in eu-west-1"
    # A stale probe figure of 0 must not stand in for the missing verification.
    stale = replace(partial, measurements=(Measurement("rpo_seconds", 0.0, "seconds", "probe"),))
    assert measures.measure(stale, "rpo_seconds").value is None


def _lag(replica: str, at: float, value: float | None, ok: bool = True, error: str = "") -> Sample:
    return Sample("replication_lag", at, value, ok, replica, None, error)


def _lag_record(samples: list[Sample], replicas: list[str] | None = None, measurements=()):
    events = (
        [Event(0.0, "replication.replicas", "replication_lag", {"service": "redis", "replicas": replicas})]
        if replicas is not None
        else []
    )
    base = record(
        samples, [fault(10.0, 20.0, "harness.actions.network.partition_regions", "eu-west-1")], events
    )
    return replace(base, measurements=tuple(measurements))


def test_lag_is_the_worst_over_the_fault_window_not_the_last_reading() -> None:
    samples = [
        _lag("r1", 5.0, 3.0),  # seen at 8 s, before the fault: not this fault's doing
        _lag("r1", 11.0, 12.0),  # during the cut
        _lag("r2", 11.0, 0.2),
        _lag("r1", 22.0, 0.01),  # after the heal: the last reading
        _lag("r2", 22.0, 0.01),
    ]
    lag = measures.measure(_lag_record(samples, ["r1", "r2"]), "replication_lag_seconds")
    assert lag.value == 12.0 and lag.lower_bound is False
    assert lag.evidence.startswith("worst 12000.0 ms on r1 (marker at 11.000 s)")


def test_a_replica_never_read_in_the_window_makes_lag_unknown() -> None:
    samples = [_lag("r1", 11.0, 0.1), _lag("r2", 11.0, None, False, "unreachable: refused")]
    lag = measures.measure(_lag_record(samples, ["r1", "r2", "r3"]), "replication_lag_seconds")
    assert lag.value is None
    assert lag.evidence == "no lag reading of r2, r3 between 10.000 s to 11.000 s"


def test_a_marker_not_seen_within_the_timeout_is_a_lower_bound_that_can_fail() -> None:
    samples = [_lag("r1", 11.0, 5.0, False, "not seen within 5 s"), _lag("r1", 17.0, 0.1)]
    lag = measures.measure(_lag_record(samples, ["r1"]), "replication_lag_seconds")
    assert lag.value == 5.0 and lag.lower_bound is True
    assert "not seen within the probe's timeout (r1)" in lag.evidence


def test_without_lag_samples_the_worst_probe_reading_counts_never_the_last() -> None:
    reported = [
        Measurement("replication_lag_seconds", 12.0, "seconds", "marker", "during the cut"),
        Measurement("replication_lag_seconds", 0.01, "seconds", "marker", "after the heal"),
    ]
    lag = measures.measure(_lag_record([], measurements=reported), "replication_lag_seconds")
    assert lag.value == 12.0 and "during the cut" in lag.evidence
    with_missing = [*reported, Measurement("replication_lag_seconds", None, "seconds", "marker", "r3 down")]
    assert (
        measures.measure(_lag_record([], measurements=with_missing), "replication_lag_seconds").value is None
    )


def test_exporter_lag_is_a_second_witness_over_the_same_window() -> None:
    samples = [
        _lag("r1", 11.0, 0.5),
        _lag("r1", 22.0, 0.01),
        Sample("replication_lag_exporter", 5.0, 40.0, True, "r1"),  # outside the window
        Sample("replication_lag_exporter", 12.0, 3.0, True, "r1"),
        Sample("replication_lag_exporter", 21.0, 1.0, True, "r1"),
    ]
    exporter = measures.measure(_lag_record(samples, ["r1"]), "replication_lag_exporter_seconds")
    assert exporter.value == 3.0 and "r1" in exporter.evidence


def test_a_derived_measure_missing_its_evidence_beats_a_probes_figure() -> None:
    samples = canary_stream("us-east-1", [Outage(10.0, 11.0)], rate_hz=RATE, end=30.0)
    gap = [s for s in samples if not 12.0 < s.at_seconds < 20.0]
    base = record(gap, [fault(10.0, 25.0)], [started("us-east-1", RATE, kind="http")])
    probe = Measurement("failover_seconds", 1.0, "seconds", "failover-time", "probe's own canary")
    stale = replace(base, measurements=(probe,))
    failover = measures.measure(stale, "failover_seconds")
    assert failover.value is None and failover.evidence.startswith("us-east-1: no canary sample for 7.999 s")
    # A record with no canary evidence at all (a stored light copy) keeps the figure it was given.
    light = replace(base, samples=(), events=(), measurements=(probe,))
    assert measures.measure(light, "failover_seconds") == probe
