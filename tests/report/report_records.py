"""Builders of fixed RunRecords and Grades for the report tests."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from harness.model import (
    Check,
    Comparison,
    Event,
    FaultRecord,
    Grade,
    Measurement,
    RunRecord,
    Sample,
    Verdict,
    combine,
)

SCRIPT_TITLE = "<script>alert(1)</script>"
IMG_EVIDENCE = '"><img src=x onerror=alert(1)>'
REGIONS = ("us-east-1", "eu-west-1", "ap-south-1")
START = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)


def make_record(
    run_id: str = "run-pass",
    *,
    scenario: str = "aeon-nova",
    title: str = "Redis primary failover",
    started_at: datetime = START,
    outage: tuple[float, float] | None = (20.0, 24.21),
    failover_seconds: float | None = 4.21,
    lag_seconds: float | None = 0.8,
    evidence: str = "canary: first failure t+20.00 s, first success t+24.21 s",
    with_samples: bool = True,
) -> RunRecord:
    """A 60 s run: fault at t+20 s undone at t+40 s, canaries at 10 Hz in three regions."""
    samples: list[Sample] = []
    events: list[Event] = [Event(20.0, "fault.applied", "harness", {"target": "redis-primary"})]
    if with_samples:
        for index, region in enumerate(REGIONS):
            for tick in range(600):
                at = tick / 10 + index * 0.01
                down = outage is not None and outage[0] <= at < outage[1]
                latency = 0.002 + 0.001 * index + 0.0005 * math.sin(tick / 7)
                samples.append(
                    Sample(
                        probe="canary",
                        at_seconds=at,
                        value=None if down else latency,
                        ok=not down,
                        region=region,
                        latency_seconds=None if down else latency,
                        error="ConnectionError: refused" if down else "",
                    )
                )
        for tick in range(60):
            lag = (lag_seconds or 0.0) * (1.0 if 20 <= tick < 30 else 0.1)
            for region in REGIONS[1:]:
                samples.append(
                    Sample(probe="replication_lag", at_seconds=float(tick), value=lag, region=region)
                )
        events += [
            Event(
                25.0 if outage is None else outage[0] + 1.1,
                "sentinel.+odown",
                "sentinel-1",
                {"quorum": "2/2"},
            ),
            Event(
                28.0 if outage is None else outage[1] - 0.3,
                "sentinel.+switch-master",
                "sentinel-2",
                {"old_primary": "127.0.0.1:6379", "new_primary": "127.0.0.1:6380", "exact": True},
            ),
        ]
    events.append(Event(40.0, "fault.undone", "harness", {}))
    measurements = [
        Measurement("failover_seconds", failover_seconds, "seconds", "canary", evidence),
        Measurement("detection_seconds", 1.1, "seconds", "sentinel", "+odown after 1.10 s"),
        Measurement("promotion_seconds", 2.9, "seconds", "sentinel", "+switch-master"),
        Measurement("rto_seconds", (failover_seconds or 0.0) + 1.0, "seconds", "slo", "all probes green"),
        Measurement("rpo_seconds", 0.35, "seconds", "ledger", "3 writes in 350 ms"),
        Measurement("lost_writes_count", 3, "count", "ledger", "3 acknowledged writes missing"),
        Measurement("load_requests_total_count", 12000, "count", "locust", ""),
        Measurement("load_p99_latency_seconds", 0.045, "seconds", "locust", ""),
        Measurement("load_failure_ratio", 0.004, "ratio", "locust", ""),
    ]
    if lag_seconds is not None:
        measurements.append(
            Measurement("replication_lag_seconds", lag_seconds, "seconds", "lag", "worst of 120")
        )
    return RunRecord(
        run_id=run_id,
        scenario=scenario,
        experiment_title=title,
        experiment_path="experiments/redis-primary-failover.yaml",
        harness_version="0.1.0",
        started_at=started_at.isoformat(),
        duration_seconds=60.0,
        status="completed",
        steady_state_before=True,
        steady_state_after=True,
        events=tuple(events),
        samples=tuple(samples),
        faults=(
            FaultRecord(
                "f-1",
                "harness.actions.instances.stop_instance",
                "redis-primary",
                20.0,
                40.0,
                True,
                "connection refused",
            ),
        ),
        measurements=tuple(measurements),
        environment={
            "python": "3.11.9",
            "redis": "7.0.15",
            "postgres_dsn": "postgresql://harness:hunter2@127.0.0.1:5432/harness",
            "load": {"users": 20, "spawn_rate": 5},
        },
    )


TARGET_CITATIONS = {
    "failover_time": (
        "Redis primary failover completes within the limit",
        "seeds/aeon-nova.md §4.2 Failover",
    ),
    "replication_lag": ("Replicas stay close to the primary", "seeds/aeon-nova.md §4.3 Replication"),
    "rpo": ("Acknowledged writes lost in a failover", "seeds/aeon-nova.md §5 Data loss"),
}


def make_grade(record: RunRecord, *, failover_limit: float = 30.0, lag_limit: float = 5.0) -> Grade:
    """Grades failover (critical), lag and RPO the way scoring does: worst verdict wins; each check
    cites its target's description and source as scoring fills them."""
    checks = []
    for target, measure, limit, critical in (
        ("failover_time", "failover_seconds", failover_limit, True),
        ("replication_lag", "replication_lag_seconds", lag_limit, False),
        ("rpo", "rpo_seconds", 60.0, False),
    ):
        measurement = record.measurement(measure)
        measured = measurement.value if measurement else None
        if measured is None:
            verdict, evidence = Verdict.UNKNOWN, "no measurement: probe failed"
        else:
            verdict = Verdict.PASS if measured <= limit else Verdict.FAIL
            evidence = measurement.evidence
        checks.append(
            Check(
                target=target,
                measure=measure,
                verdict=verdict,
                measured=measured,
                limit=limit,
                unit="seconds",
                comparison=Comparison.AT_MOST,
                weight=3 if critical else 1,
                critical=critical,
                evidence=evidence,
                description=TARGET_CITATIONS[target][0],
                source=TARGET_CITATIONS[target][1],
                missing=("no failover_seconds measurement",)
                if measured is None and measure == "failover_seconds"
                else (),
            )
        )
    total = sum(c.weight for c in checks)
    score = 100.0 * sum(c.weight for c in checks if c.verdict is Verdict.PASS) / total
    return Grade(
        run_id=record.run_id,
        scenario=record.scenario,
        experiment_title=record.experiment_title,
        verdict=combine(c.verdict for c in checks),
        score=score,
        checks=tuple(checks),
    )


def make_history(count: int, *, scenario: str = "aeon-nova", step_at: int | None = None) -> list[tuple]:
    """`count` daily runs without samples; failover jumps from ~4 s to ~12 s at run `step_at`."""
    history = []
    for index in range(count):
        failover = (
            4.0 + 0.5 * math.sin(index * 1.7) + (8.0 if step_at is not None and index >= step_at else 0.0)
        )
        record = make_record(
            f"{scenario}-{index:04d}",
            scenario=scenario,
            started_at=START + timedelta(days=index),
            failover_seconds=failover,
            lag_seconds=0.5 + 0.1 * math.cos(index),
            with_samples=False,
        )
        history.append((record, make_grade(record, failover_limit=10.0)))
    return history


def passing_pair() -> tuple[RunRecord, Grade]:
    record = make_record("run-pass")
    return record, make_grade(record)


def failing_pair() -> tuple[RunRecord, Grade]:
    """Failover 45.2 s against 30 s, lag 7.5 s against 5 s; canaries still failing at the end."""
    record = make_record(
        "run-fail",
        outage=(20.0, 65.0),
        failover_seconds=45.2,
        lag_seconds=7.5,
        evidence="canary: first failure t+20.00 s, no success before t+65.2 s",
    )
    return record, make_grade(record)


def unknown_pair() -> tuple[RunRecord, Grade]:
    """No samples, no failover or lag measurement."""
    record = make_record("run-unknown", failover_seconds=None, lag_seconds=None, with_samples=False)
    return record, make_grade(record)


def hostile_pair() -> tuple[RunRecord, Grade]:
    """A record whose title and probe evidence try to inject markup."""
    record = make_record("run-hostile", title=SCRIPT_TITLE, evidence=IMG_EVIDENCE, failover_seconds=31.0)
    return record, make_grade(record)


def truth_pair() -> tuple[RunRecord, Grade]:
    """A run whose checks show every kind of evidence: a censored failover that fails, an error
    ratio whose two witnesses disagree (unknown), and an RTO unknown for want of a region's samples."""
    record = make_record("run-truth", outage=(20.0, 65.0), failover_seconds=45.2, with_samples=True)
    checks = (
        Check(
            target="failover_time",
            measure="failover_seconds",
            verdict=Verdict.FAIL,
            measured=39.9,
            limit=30.0,
            unit="seconds",
            comparison=Comparison.AT_MOST,
            weight=3,
            critical=True,
            evidence="us-east-1: requests still failing when the run ended",
            lower_bound=True,
            description="Redis primary failover completes within the limit",
            source="seeds/aeon-nova.md §4.2 Failover",
        ),
        Check(
            target="error_budget",
            measure="slo_error_ratio",
            verdict=Verdict.UNKNOWN,
            measured=0.0,
            limit=0.01,
            unit="ratio",
            comparison=Comparison.AT_MOST,
            weight=1,
            critical=False,
            evidence="canary and prometheus disagree by more than 0.5 points",
            description="Errors during a failover",
            source="seeds/aeon-nova.md §6 SLOs",
            witnesses=(("canary", 0.125), ("prometheus", 0.0)),
            missing=("agreement of the two witnesses within 0.5 points",),
        ),
        Check(
            target="recovery_time",
            measure="rto_seconds",
            verdict=Verdict.UNKNOWN,
            measured=None,
            limit=60.0,
            unit="seconds",
            comparison=Comparison.AT_MOST,
            weight=1,
            critical=False,
            evidence="",
            description="Every region serves again",
            source="seeds/aeon-nova.md §4.1 RTO",
            missing=(
                "canary samples of eu-west-1 from t+20.00 s to t+40.00 s",
                "canary.started event of ap-south-1",
            ),
        ),
    )
    return record, Grade(record.run_id, record.scenario, record.experiment_title, Verdict.FAIL, 0.0, checks)
