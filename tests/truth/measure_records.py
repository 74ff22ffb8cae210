"""Records with known truth for harness.measures: a simulated canary against a server whose
state over time is given exactly (up, refusing, or frozen), so every figure is known in advance."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.model import Event, FaultRecord, RunRecord, Sample

ANSWER_SECONDS = 0.001  # a healthy server's round trip


@dataclass(frozen=True, slots=True)
class Outage:
    """The server of a region refuses (a kill: fails at once) or is frozen (SIGSTOP: answers late,
    or the client times out) from `start` to `end`."""

    start: float
    end: float
    frozen: bool = False


def canary_stream(
    region: str,
    outages: Sequence[Outage] = (),
    rate_hz: float = 20.0,
    timeout: float = 1.0,
    start: float = 0.0,
    end: float = 30.0,
    phase: float = 0.0,
) -> list[Sample]:
    """What the harness canary loop records against that server: one request per tick, the next
    sent at once after a slow one, every request with its send time and latency."""
    samples = []
    interval = 1.0 / rate_hz
    tick = start + phase
    while tick < end:
        sent = tick
        ok, answered, error = _outcome(sent, outages, timeout)
        samples.append(Sample("canary", sent, answered - sent if ok else None, ok, region,
                              answered - sent, error))  # fmt: skip
        tick += interval
        if answered > tick:
            tick = answered  # the loop does not burst to catch up
    return samples


def _outcome(sent: float, outages: Sequence[Outage], timeout: float) -> tuple[bool, float, str]:
    answered = sent + ANSWER_SECONDS
    for outage in outages:
        if not (sent < outage.end and answered > outage.start):
            continue
        if not outage.frozen:
            failed = max(sent, outage.start) + ANSWER_SECONDS
            return False, failed, "ConnectionError: Connection refused"
        late = outage.end + ANSWER_SECONDS
        if late - sent <= timeout:
            return True, late, ""
        return False, sent + timeout, "timeout: TimeoutError: timed out"
    return True, answered, ""


def started(region: str, rate_hz: float = 20.0, timeout: float = 1.0, kind: str = "redis") -> Event:
    detail = {"region": region, "kind": kind, "rate_hz": rate_hz, "timeout_seconds": timeout}
    return Event(0.0, "canary.started", "runner", detail)


def fault(
    applied: float,
    undone: float | None,
    action: str = "harness.actions.instances.stop_instance",
    target: str = "redis-us-east-1",
) -> FaultRecord:
    return FaultRecord(f"f-{applied:g}", action, target, applied, undone, True, "port refuses")


def record(
    samples: Iterable[Sample] = (),
    faults: Sequence[FaultRecord] = (),
    events: Iterable[Event] = (),
    duration: float = 30.0,
    environment: dict | None = None,
    journal: dict | None = None,
) -> RunRecord:
    return RunRecord(
        run_id="truth",
        scenario="s",
        experiment_title="t",
        experiment_path="experiments/x.yaml",
        harness_version="0",
        started_at="2026-01-01T00:00:00+00:00",
        duration_seconds=duration,
        status="completed",
        steady_state_before=True,
        events=tuple(sorted(events, key=lambda e: e.at_seconds)),
        samples=tuple(samples),
        faults=tuple(faults),
        environment=environment or {},
        journal=journal or {},
    )
