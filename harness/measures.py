"""Measurements derived from a RunRecord's raw history: pure functions, no I/O.

Scoring calls these so that re-grading an old record with a better formula needs no rerun.
Each returns a Measurement, or None when the record lacks the evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from harness.model import Event, FaultRecord, Measurement, RunRecord, Sample

CANARY = "canary"


@dataclass(frozen=True, slots=True)
class Window:
    """A run of failed canary requests: first failure to first success after it."""

    region: str
    start_seconds: float
    end_seconds: float | None  # None: still failing when the run ended
    failed_requests: int

    @property
    def duration_seconds(self) -> float | None:
        return None if self.end_seconds is None else self.end_seconds - self.start_seconds


def canary_samples(record: RunRecord, region: str | None = None) -> list[Sample]:
    samples = [s for s in record.samples if s.probe == CANARY and (region is None or s.region == region)]
    return sorted(samples, key=lambda s: s.at_seconds)


def outage_windows(samples: Sequence[Sample]) -> list[Window]:
    """Failure windows per region, in time order; samples must be canary samples."""
    windows: list[Window] = []
    by_region: dict[str, list[Sample]] = {}
    for sample in sorted(samples, key=lambda s: s.at_seconds):
        by_region.setdefault(sample.region, []).append(sample)
    for region, region_samples in by_region.items():
        start, failed = None, 0
        for sample in region_samples:
            if not sample.ok:
                if start is None:
                    start, failed = sample.at_seconds, 0
                failed += 1
            elif start is not None:
                windows.append(Window(region, start, sample.at_seconds, failed))
                start = None
        if start is not None:
            windows.append(Window(region, start, None, failed))
    return sorted(windows, key=lambda w: w.start_seconds)


def first_fault(record: RunRecord) -> FaultRecord | None:
    return min(record.faults, key=lambda f: f.applied_at_seconds, default=None)


def _after_fault(record: RunRecord) -> tuple[FaultRecord | None, list[Sample]]:
    fault = first_fault(record)
    if fault is None:
        return None, []
    return fault, [s for s in canary_samples(record) if s.at_seconds >= fault.applied_at_seconds]


def failover_seconds(record: RunRecord) -> Measurement | None:
    """First failed canary request after the fault → first success after it (the longest region)."""
    fault, samples = _after_fault(record)
    if fault is None or not samples:
        return None
    windows = outage_windows(samples)
    if not windows:
        return Measurement(
            "failover_seconds",
            0.0,
            "seconds",
            "canary",
            f"no failed request among {len(samples)} canary requests after the fault",
        )
    open_windows = [w for w in windows if w.end_seconds is None]
    if open_windows:
        last = max(s.at_seconds for s in samples)
        window = open_windows[0]
        return Measurement(
            "failover_seconds",
            last - window.start_seconds,
            "seconds",
            "canary",
            f"{window.region}: requests still failing when the run ended, "
            f"{window.failed_requests} failed since {window.start_seconds:.3f} s",
            lower_bound=True,
        )
    first_start = windows[0].start_seconds
    recovered = max(w.end_seconds for w in windows)  # type: ignore[type-var]
    failed = sum(w.failed_requests for w in windows)
    return Measurement(
        "failover_seconds",
        recovered - first_start,
        "seconds",
        "canary",
        f"first failure at {first_start:.3f} s, recovered at {recovered:.3f} s; "
        f"{failed} failed requests in {len(windows)} window(s)",
    )


def rto_seconds(record: RunRecord) -> Measurement | None:
    """Fault start → every canary green again."""
    fault, samples = _after_fault(record)
    if fault is None or not samples:
        return None
    windows = outage_windows(samples)
    if any(w.end_seconds is None for w in windows):
        last = max(s.at_seconds for s in samples)
        return Measurement(
            "rto_seconds",
            last - fault.applied_at_seconds,
            "seconds",
            "canary",
            "not every region recovered before the run ended",
            lower_bound=True,
        )
    recovered = max((w.end_seconds for w in windows), default=fault.applied_at_seconds)
    return Measurement(
        "rto_seconds",
        recovered - fault.applied_at_seconds,
        "seconds",
        "canary",
        f"fault at {fault.applied_at_seconds:.3f} s, all canaries green from {recovered:.3f} s",
    )


def _first_event(events: Sequence[Event], kinds: tuple[str, ...], after: float) -> Event | None:
    matching = [e for e in events if e.kind in kinds and e.at_seconds >= after]
    return min(matching, key=lambda e: e.at_seconds, default=None)


def detection_seconds(record: RunRecord) -> Measurement | None:
    """Fault start → the failure is agreed (Sentinel +odown, or Patroni noticing the leader gone)."""
    fault = first_fault(record)
    if fault is None:
        return None
    detected = _first_event(
        record.events, ("sentinel.+odown", "patroni.leader-lost"), fault.applied_at_seconds
    )
    if detected is None:
        return None
    return Measurement(
        "detection_seconds",
        detected.at_seconds - fault.applied_at_seconds,
        "seconds",
        detected.source or "events",
        f"{detected.kind} at {detected.at_seconds:.3f} s",
    )


def promotion_seconds(record: RunRecord) -> Measurement | None:
    """Detection → a new primary is named (Sentinel +switch-master, or a promotion event)."""
    fault = first_fault(record)
    if fault is None:
        return None
    detected = _first_event(
        record.events, ("sentinel.+odown", "patroni.leader-lost"), fault.applied_at_seconds
    )
    promoted = _first_event(
        record.events,
        ("sentinel.+switch-master", "postgres.promoted", "patroni.promoted"),
        fault.applied_at_seconds,
    )
    if promoted is None:
        return None
    start = detected.at_seconds if detected else fault.applied_at_seconds
    return Measurement(
        "promotion_seconds",
        promoted.at_seconds - start,
        "seconds",
        promoted.source or "events",
        f"{promoted.kind} at {promoted.at_seconds:.3f} s ({promoted.detail.get('new_primary', '')})",
    )


def _verified_writes(record: RunRecord) -> tuple[list[Event], list[Event]]:
    verified = [e for e in record.events if e.kind == "writes.verified"]
    return verified, [e for e in record.events if e.kind == "write.lost"]


def lost_writes_count(record: RunRecord) -> Measurement | None:
    """Acknowledged writes the primary no longer has after recovery (every verified canary)."""
    verified, lost = _verified_writes(record)
    if not verified:
        return None
    checked = sum(e.detail.get("checked", 0) for e in verified)
    return Measurement(
        "lost_writes_count",
        float(len(lost)),
        "count",
        "canary",
        f"{len(lost)} of {checked} acknowledged writes lost",
    )


def rpo_seconds(record: RunRecord) -> Measurement | None:
    """The span of acknowledged writes lost: first lost acknowledgement → last (0 when none)."""
    verified, lost = _verified_writes(record)
    if not verified:
        return None
    if not lost:
        return Measurement("rpo_seconds", 0.0, "seconds", "canary", "no acknowledged write lost")
    times = sorted(e.at_seconds for e in lost)
    interval = max(e.detail.get("interval_seconds", 0.0) for e in verified)
    return Measurement(
        "rpo_seconds",
        times[-1] - times[0] + interval,
        "seconds",
        "canary",
        f"{len(lost)} writes acknowledged between {times[0]:.3f} s and {times[-1]:.3f} s were lost",
    )


def error_ratio(record: RunRecord) -> Measurement | None:
    """Failed share of canary requests from the first fault until it was undone (or the run ended)."""
    fault, samples = _after_fault(record)
    if fault is None or not samples:
        return None
    end = fault.undone_at_seconds if fault.undone_at_seconds is not None else float("inf")
    window = [s for s in samples if s.at_seconds <= end]
    if not window:
        return None
    failed = sum(1 for s in window if not s.ok)
    return Measurement(
        "error_ratio", failed / len(window), "ratio", "canary", f"{failed} of {len(window)} requests failed"
    )


def canary_p99_latency_seconds(record: RunRecord) -> Measurement | None:
    """99th percentile latency of successful canary requests over the run."""
    latencies = sorted(
        s.latency_seconds for s in canary_samples(record) if s.ok and s.latency_seconds is not None
    )
    if not latencies:
        return None
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    return Measurement(
        "canary_p99_latency_seconds", p99, "seconds", "canary", f"{len(latencies)} successful requests"
    )


DERIVED: dict[str, Callable[[RunRecord], Measurement | None]] = {
    "failover_seconds": failover_seconds,
    "rto_seconds": rto_seconds,
    "detection_seconds": detection_seconds,
    "promotion_seconds": promotion_seconds,
    "lost_writes_count": lost_writes_count,
    "rpo_seconds": rpo_seconds,
    "error_ratio": error_ratio,
    "canary_p99_latency_seconds": canary_p99_latency_seconds,
}


def measure(record: RunRecord, name: str) -> Measurement | None:
    """A measurement by name: derived from the full history when it can be (so re-grading uses the
    current formula), else the reading a probe reported."""
    derived = DERIVED[name](record) if name in DERIVED else None
    return derived or record.measurement(name)


def with_derived(record: RunRecord) -> RunRecord:
    """The record with every derivable measurement added to its measurements (last wins on lookup),
    so summaries and histories that drop the raw samples keep the figures."""
    derived = tuple(m for derive in DERIVED.values() if (m := derive(record)) is not None)
    return replace(record, measurements=record.measurements + derived)
