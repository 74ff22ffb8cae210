"""The names a scenario target may grade: one table, name → unit → what it is.

A target whose measure no code produces could never be graded: every run would report it
`unknown` and nobody would notice the typo. Loading refuses such names (exit 2) with the list
below. The table holds the measures `harness.measures` derives from a record and those the
probes and actions report; a name derived in `harness.measures.DERIVED` is valid even when it
is not listed here yet, so the two cannot drift apart in the direction that matters.

Add a row here when a probe starts reporting a new measure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MeasureName:
    unit: str  # base unit: seconds, ratio, count, bytes, rps
    description: str


MEASURES: dict[str, MeasureName] = {
    # Derived from the record by harness.measures (re-grading uses the current formula).
    "failover_seconds": MeasureName("seconds", "longest canary outage of any region in the fault window"),
    "rto_seconds": MeasureName("seconds", "fault applied → every region's canary green again"),
    "detection_seconds": MeasureName(
        "seconds", "fault applied → the failure is agreed (Sentinel +odown, Patroni)"
    ),
    "promotion_seconds": MeasureName("seconds", "detection → a new primary is named"),
    "lost_writes_count": MeasureName(
        "count",
        "acknowledged canary writes missing after recovery, plus convergence elements no region holds",
    ),
    "rpo_seconds": MeasureName("seconds", "span of acknowledged writes lost"),
    "error_ratio": MeasureName("ratio", "failed share of canary requests in the fault window"),
    "canary_p99_latency_seconds": MeasureName(
        "seconds", "99th percentile canary latency in the fault window"
    ),
    "replication_lag_seconds": MeasureName("seconds", "worst marker lag of any replica in the fault window"),
    "replication_lag_exporter_seconds": MeasureName(
        "seconds", "worst exporter-reported lag of any replica (second witness of replication lag)"
    ),
    # Derived by harness.traffic_measures (global balancer, traffic canary per client region).
    "traffic_failover_seconds": MeasureName(
        "seconds", "per client region, first failed or wrongly served request → served right again; longest"
    ),
    "residency_violations_count": MeasureName(
        "count", "requests served by a region the residency rules forbid for their client region"
    ),
    "evacuation_seconds": MeasureName(
        "seconds", "drain applied → the drained region serves nothing, sustained"
    ),
    "failback_seconds": MeasureName("seconds", "region restored → its clients served at home again"),
    "traffic_error_ratio": MeasureName(
        "ratio", "failed share of traffic canary requests in the fault window, worst client region"
    ),
    "traffic_p99_latency_seconds": MeasureName(
        "seconds", "99th percentile traffic canary latency in the fault window, worst client region"
    ),
    "traffic_balancer_error_ratio": MeasureName(
        "ratio", "the balancer's 5xx share in the fault window (second witness of traffic_error_ratio)"
    ),
    # Derived by harness.convergence_measures (active-active, harness.probes.convergence).
    "propagation_p99_seconds": MeasureName(
        "seconds",
        "write acknowledged → first read in another region showing it; p99 of the worst region pair",
    ),
    "convergence_seconds": MeasureName(
        "seconds",
        "heal → every region holds identical data (digest of what was written before it), sustained",
    ),
    "lww_discarded_writes_count": MeasureName(
        "count", "acknowledged register writes last-write-wins overwrote with a concurrent later write"
    ),
    "lww_violations_count": MeasureName(
        "count", "survivors that are not the latest commit, keys or elements the regions never agree on"
    ),
    # Reported by probes (Prometheus, health, replication) and actions (load).
    "slo_error_ratio": MeasureName(
        "ratio", "server-side 5xx share of requests over the fault window (Prometheus)"
    ),
    "slo_p99_latency_seconds": MeasureName(
        "seconds", "server-side p99 request latency over the fault window"
    ),
    "cpu_saturation_ratio": MeasureName(
        "ratio", "CPU the system under test's server processes use ÷ their host's cores (Prometheus)"
    ),
    "health_declared_down_seconds": MeasureName(
        "seconds", "longest time a health check declared a region down"
    ),
    "replication_lag_p99_seconds": MeasureName(
        "seconds", "99th percentile marker lag over a background probe"
    ),
    "replication_lag_max_seconds": MeasureName("seconds", "largest marker lag over a background probe"),
    "load_requests_total_count": MeasureName("count", "requests the load generator sent"),
    "load_failure_ratio": MeasureName("ratio", "failed share of the load generator's requests"),
    "load_rps": MeasureName("rps", "requests per second the load generator achieved"),
    "load_p99_latency_seconds": MeasureName("seconds", "99th percentile latency seen by the load generator"),
    "load_p50_latency_seconds": MeasureName("seconds", "median latency seen by the load generator"),
    "load_p95_latency_seconds": MeasureName("seconds", "95th percentile latency seen by the load generator"),
    "load_workers_count": MeasureName("count", "Locust workers the load ran on (distributed load)"),
    "load_workers_lost_count": MeasureName("count", "Locust workers lost while the load ran"),
}

# Names with a number or unit inside, reported by parametrised probes.
PATTERNS: dict[str, tuple[re.Pattern[str], MeasureName]] = {
    "burn_rate_<N>s_ratio": (
        re.compile(r"^burn_rate_\d+s_ratio$"),
        MeasureName("ratio", "error-budget burn rate over an N-second window"),
    ),
    "replication_lag_prometheus_max_<unit>": (
        re.compile(r"^replication_lag_prometheus_max_(seconds|bytes)$"),
        MeasureName("seconds", "largest exporter lag over the probe's window (seconds or WAL bytes)"),
    ),
}


def derived_names() -> set[str]:
    """The names harness.measures derives (imported late: measures imports the model, not this)."""
    from harness import measures

    return set(getattr(measures, "DERIVED", {}))


def is_known(name: str) -> bool:
    """True when some code produces a measure of that name."""
    return name in MEASURES or name in derived_names() or any(p.match(name) for p, _ in PATTERNS.values())


def valid_names() -> list[str]:
    """Every valid name, sorted, patterns written with their placeholder."""
    return sorted(set(MEASURES) | derived_names()) + sorted(PATTERNS)
