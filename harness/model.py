"""The records of the harness: scenarios and their targets, run records, checks and grades.

Frozen dataclasses with explicit ``to_dict`` / ``from_dict``; no I/O here. The RunRecord is
the only interface between running and grading: everything a scorer needs is in it.

Units inside the model are base units: seconds, ratios 0..1, counts, bytes, requests per
second. Files carry explicit units (``30s``, ``500ms``, ``1%``); ``harness.units`` converts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

RECORD_SCHEMA_VERSION = 1


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "unknown"


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """Worst wins: fail, then unknown, then pass. Nothing checked is unknown."""
    seen = set(verdicts)
    for verdict in (Verdict.FAIL, Verdict.UNKNOWN, Verdict.PASS):
        if verdict in seen:
            return verdict
    return Verdict.UNKNOWN


class Comparison(StrEnum):
    AT_MOST = "at_most"
    AT_LEAST = "at_least"


# ---------------------------------------------------------------- scenario


@dataclass(frozen=True, slots=True)
class Target:
    """One resilience target: a measure compared with a limit."""

    name: str  # key in the scenario's `targets`, e.g. "failover_time"
    measure: str  # measurement it grades, e.g. "failover_seconds"
    limit: float  # in the measure's base unit
    unit: str  # base unit of limit and measure: "seconds", "ratio", "count", "bytes", "rps"
    comparison: Comparison = Comparison.AT_MOST
    critical: bool = False
    weight: int | None = None  # None: 3 when critical, else 1
    description: str = ""
    source: str = ""  # where the number comes from (seed document, section)

    @property
    def effective_weight(self) -> int:
        """The scenario's weight, or 3 for a critical target and 1 otherwise."""
        if self.weight is not None:
            return self.weight
        return 3 if self.critical else 1


@dataclass(frozen=True, slots=True)
class Region:
    name: str
    primary: bool = False
    availability_zones: tuple[str, ...] = ()
    requests_per_minute: float | None = None  # client load for this region
    in_sandbox: bool = True  # False: documented, represented by another region locally


@dataclass(frozen=True, slots=True)
class Link:
    """Network distance between two regions, injected as a latency toxic in the sandbox."""

    a: str
    b: str
    latency_seconds: float


@dataclass(frozen=True, slots=True)
class RedisSettings:
    sentinel_quorum: int = 2
    sentinels: int = 3
    down_after_seconds: float = 5.0
    failover_timeout_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    failover: str = "manual"  # "manual" (the harness promotes) or "patroni"


@dataclass(frozen=True, slots=True)
class Guardrails:
    """Abort and roll back when crossed during a fault."""

    max_error_ratio: float | None = None  # over the last `window_seconds` of canary requests
    window_seconds: float = 30.0
    max_duration_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class ExperimentRef:
    """An experiment a scenario runs, its cadence and how much it counts."""

    path: str  # relative to the project root or the scenario file
    cadence: str = "daily"  # daily | weekly | biweekly | monthly | quarterly
    weight: int = 1
    critical: bool = False
    targets: tuple[str, ...] = ()  # target names this experiment grades; empty = all it measures


@dataclass(frozen=True, slots=True)
class Scenario:
    """A system's target profile: topology, targets, experiments and schedule."""

    name: str
    path: str
    description: str = ""
    source: str = ""
    environment: str = "sandbox"  # sandbox | staging | production
    allow_production: bool = False
    regions: tuple[Region, ...] = ()
    links: tuple[Link, ...] = ()
    redis: RedisSettings = field(default_factory=RedisSettings)
    postgres: PostgresSettings = field(default_factory=PostgresSettings)
    targets: tuple[Target, ...] = ()
    experiments: tuple[ExperimentRef, ...] = ()
    guardrails: Guardrails = field(default_factory=Guardrails)
    canary_rate_hz: float = 20.0
    settings: Mapping[str, Any] = field(default_factory=dict)  # documented, not graded

    @property
    def primary_region(self) -> Region | None:
        return next((r for r in self.regions if r.primary), self.regions[0] if self.regions else None)

    @property
    def sandbox_regions(self) -> tuple[Region, ...]:
        """The regions the local sandbox starts."""
        return tuple(r for r in self.regions if r.in_sandbox)

    def target(self, name: str) -> Target | None:
        return next((t for t in self.targets if t.name == name), None)


# ---------------------------------------------------------------- run record


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened during a run, on the run's clock."""

    at_seconds: float  # monotonic seconds since the run started
    kind: str  # e.g. "fault.applied", "fault.undone", "sentinel.+switch-master", "activity.failed"
    source: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any], origin_monotonic: float, source: str = "") -> Event:
        """An event from a watcher's or probe's raw dict (`at_monotonic`, `kind`, ...) on a run's clock."""
        return cls(
            raw["at_monotonic"] - origin_monotonic,
            raw["kind"],
            raw.get("source", source),
            dict(raw.get("detail", {})),
        )


@dataclass(frozen=True, slots=True)
class Sample:
    """One probe reading; canary requests are samples too."""

    probe: str  # e.g. "canary", "replication_lag"
    at_seconds: float  # monotonic seconds since the run started (request start for canaries)
    value: float | None  # None when the probe failed
    ok: bool = True
    region: str = ""
    latency_seconds: float | None = None
    error: str = ""

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any], origin_monotonic: float, probe: str | None = None) -> Sample:
        """A sample from a canary's or probe's raw dict (`at_monotonic`, ...) on a run's clock;
        `probe` renames it."""
        return cls(
            probe=probe or raw.get("probe", ""),
            at_seconds=raw["at_monotonic"] - origin_monotonic,
            value=raw.get("value"),
            ok=bool(raw.get("ok", True)),
            region=raw.get("region", ""),
            latency_seconds=raw.get("latency_seconds"),
            error=raw.get("error", ""),
        )


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """A fault the run applied, when, whether it was undone and whether it took effect."""

    fault_id: str
    action: str  # e.g. "actions.instances.stop_instance"
    target: str  # e.g. "redis-primary"
    applied_at_seconds: float
    undone_at_seconds: float | None = None
    effect_proven: bool | None = None  # None: not checked
    effect_evidence: str = ""


@dataclass(frozen=True, slots=True)
class Measurement:
    """A value a probe measured, ready to grade."""

    name: str  # e.g. "failover_seconds"
    value: float | None
    unit: str
    source: str = ""  # probe that produced it
    evidence: str = ""
    lower_bound: bool = False  # the true value is at least `value` (e.g. never recovered within the run)
    missed_because: str = ""  # the target is missed whatever the value (e.g. "no promotion")


@dataclass(frozen=True, slots=True)
class RunRecord:
    """Everything that happened in one run; grading reads nothing else."""

    run_id: str
    scenario: str
    experiment_title: str
    experiment_path: str
    harness_version: str
    started_at: str  # ISO 8601 UTC wall time of run start (at_seconds = 0)
    duration_seconds: float
    status: str  # chaoslib's status: completed | failed | aborted | interrupted
    steady_state_before: bool | None = None  # None: not evaluated
    steady_state_after: bool | None = None
    activity_errors: tuple[str, ...] = ()  # "activity name: error" for every activity that raised
    events: tuple[Event, ...] = ()
    samples: tuple[Sample, ...] = ()
    faults: tuple[FaultRecord, ...] = ()
    measurements: tuple[Measurement, ...] = ()
    environment: Mapping[str, Any] = field(default_factory=dict)
    journal: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = RECORD_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        version = data.get("schema_version")
        if version != RECORD_SCHEMA_VERSION:
            raise ValueError(f"schema_version: expected {RECORD_SCHEMA_VERSION}, got {version!r}")
        return cls(
            run_id=data["run_id"],
            scenario=data["scenario"],
            experiment_title=data["experiment_title"],
            experiment_path=data["experiment_path"],
            harness_version=data["harness_version"],
            started_at=data["started_at"],
            duration_seconds=float(data["duration_seconds"]),
            status=data["status"],
            steady_state_before=data.get("steady_state_before"),
            steady_state_after=data.get("steady_state_after"),
            activity_errors=tuple(data.get("activity_errors", ())),
            events=tuple(Event(**e) for e in data.get("events", ())),
            samples=tuple(Sample(**s) for s in data.get("samples", ())),
            faults=tuple(FaultRecord(**f) for f in data.get("faults", ())),
            measurements=tuple(Measurement(**m) for m in data.get("measurements", ())),
            environment=dict(data.get("environment", {})),
            journal=dict(data.get("journal", {})),
            schema_version=version,
        )

    def measurement(self, name: str) -> Measurement | None:
        """The last measurement of that name, if any probe produced one."""
        found = [m for m in self.measurements if m.name == name]
        return found[-1] if found else None


# ---------------------------------------------------------------- grading


@dataclass(frozen=True, slots=True)
class Check:
    """One target graded against one run."""

    target: str
    measure: str
    verdict: Verdict
    measured: float | None
    limit: float
    unit: str
    comparison: Comparison
    weight: int
    critical: bool
    evidence: str
    lower_bound: bool = False  # measured is a lower bound ("> x"): the system had not recovered yet
    source: str = ""  # the target's citation (seed document, section)
    description: str = ""  # the target's description from the scenario
    witnesses: tuple[tuple[str, float | None], ...] = ()  # (witness, value) where two sources measure
    missing: tuple[str, ...] = ()  # the evidence an unknown check lacks, one item each

    @property
    def margin(self) -> float | None:
        """How far inside the limit the measurement is (negative: outside), in the unit."""
        if self.measured is None:
            return None
        if self.comparison is Comparison.AT_MOST:
            return self.limit - self.measured
        return self.measured - self.limit


@dataclass(frozen=True, slots=True)
class Grade:
    """A run's checks, score and overall verdict."""

    run_id: str
    scenario: str
    experiment_title: str
    verdict: Verdict
    score: float  # 0..100, weighted share of passed checks
    checks: tuple[Check, ...]
    reasons: tuple[str, ...] = ()  # why the verdict is what it is, beyond the checks

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Grade:
        checks = tuple(
            Check(
                **{
                    **c,
                    "verdict": Verdict(c["verdict"]),
                    "comparison": Comparison(c["comparison"]),
                    "witnesses": tuple((str(n), v) for n, v in c.get("witnesses", ())),
                    "missing": tuple(c.get("missing", ())),
                }
            )
            for c in data["checks"]
        )
        return cls(
            run_id=data["run_id"],
            scenario=data["scenario"],
            experiment_title=data["experiment_title"],
            verdict=Verdict(data["verdict"]),
            score=float(data["score"]),
            checks=checks,
            reasons=tuple(data.get("reasons", ())),
        )
