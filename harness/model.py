"""The records of the harness: scenarios and their targets, run records, checks and grades.

Frozen dataclasses with explicit ``to_dict`` / ``from_dict``; no I/O here. The RunRecord is
the only interface between running and grading: everything a scorer needs is in it.

Units inside the model are base units: seconds, ratios 0..1, counts, bytes, requests per
second. Files carry explicit units (``30s``, ``500ms``, ``1%``); ``harness.units`` converts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, is_dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime
from enum import StrEnum
from functools import cache
from numbers import Integral, Real
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from harness.errors import HarnessError

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
    # "primary-standby" (one writable server, streaming standbys) or "active-active" (a writable
    # server per region, pglogical both ways, last-update-wins)
    topology: str = "primary-standby"


@dataclass(frozen=True, slots=True)
class Guardrails:
    """Abort and roll back when crossed during a fault."""

    max_error_ratio: float | None = None  # over the last `window_seconds` of canary requests
    window_seconds: float = 30.0
    max_duration_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """How the global load balancer checks each region's API (HAProxy `option httpchk`)."""

    path: str = "/health"
    interval_seconds: float = 30.0
    timeout_seconds: float = 5.0
    fall: int = 3  # consecutive failed checks before a region is marked down
    rise: int = 2  # consecutive passed checks before it is marked up again


TRAFFIC_POLICIES = ("failover", "weighted")


@dataclass(frozen=True, slots=True)
class TrafficSettings:
    """The global traffic layer: which region serves which client region, and how health moves it.

    A client region is sent to its home region; when that is down (or drained), to the first
    healthy region of its failover order (policy "failover"), or spread over its allowed regions
    by weight (policy "weighted"). Residency rules restrict the regions that may serve a client
    region at all: a forbidden region is never in its list, whatever its health.
    """

    health: HealthCheck = field(default_factory=HealthCheck)
    client_regions: tuple[str, ...] = ()  # empty: the scenario's regions
    policy: str = "failover"
    home: Mapping[str, str] = field(default_factory=dict)  # client region -> home region; default itself
    failover: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # client -> order after home
    weights: Mapping[str, int] = field(default_factory=dict)  # serving region -> weight (1..256)
    residency: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # client -> allowed; absent = any
    note: str = ""

    def clients(self, regions: Sequence[str]) -> tuple[str, ...]:
        """The client regions, defaulting to the serving regions."""
        return self.client_regions or tuple(regions)

    def allowed(self, client: str, regions: Sequence[str]) -> tuple[str, ...]:
        """The regions that may serve `client`, in `regions` order."""
        rule = self.residency.get(client)
        return tuple(r for r in regions if rule is None or r in rule)

    def home_of(self, client: str, regions: Sequence[str]) -> str:
        """The home region of `client`: as configured, else itself when it serves, else the first allowed."""
        if client in self.home:
            return self.home[client]
        allowed = self.allowed(client, regions)
        return client if client in allowed else (allowed[0] if allowed else "")

    def serving_order(self, client: str, regions: Sequence[str]) -> tuple[str, ...]:
        """Home first, then the failover order (default: the other allowed regions in `regions` order);
        only regions the residency rules allow and that are in `regions`."""
        allowed = self.allowed(client, regions)
        home = self.home_of(client, regions)
        rest = self.failover.get(client, tuple(r for r in regions if r != home))
        order = [home, *(r for r in rest if r != home)]
        return tuple(dict.fromkeys(r for r in order if r in allowed))


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
    load_workers: int | None = None  # `load.workers`: Locust workers for harness.actions.load; None: per core
    traffic: TrafficSettings | None = None  # None: no global load balancer in the sandbox

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
    # The region that answered (the response's X-Served-By), for requests through a global
    # balancer (probe "traffic"); "" when not recorded (other probes, older records).
    served_by: str = ""

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any], origin_monotonic: float, probe: str | None = None) -> Sample:
        """A sample from a canary's or probe's raw dict (`at_monotonic`, ...) on a run's clock;
        `probe` renames it. A non-boolean `ok` is a RecordError: "false" is not a success."""
        ok = raw.get("ok", True)
        if not isinstance(ok, bool):
            name = probe or raw.get("probe", "sample")
            raise RecordError(f"{name}.ok", f"expected true or false, got {ok!r}")
        return cls(
            probe=probe or raw.get("probe", ""),
            at_seconds=raw["at_monotonic"] - origin_monotonic,
            value=raw.get("value"),
            ok=ok,
            region=raw.get("region", ""),
            latency_seconds=raw.get("latency_seconds"),
            error=raw.get("error", ""),
            served_by=str(raw.get("served_by") or ""),
        )


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """A fault the run applied, when, whether it was undone and whether it took effect."""

    fault_id: str
    action: str  # e.g. "harness.actions.instances.stop_instance"
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
        """A record from its JSON form; every field's type is checked (RecordError names the field):
        a string "false" must never read as a true `ok`."""
        if not isinstance(data, Mapping):
            raise RecordError("", f"expected an object, got {_shown(data)}")
        version = data.get("schema_version")
        if isinstance(version, bool) or version != RECORD_SCHEMA_VERSION:
            raise RecordError("schema_version", f"expected {RECORD_SCHEMA_VERSION}, got {_shown(version)}")
        record = _read_dataclass(cls, data, "")
        try:
            datetime.fromisoformat(record.started_at)
        except ValueError:
            raise RecordError(
                "started_at", f"expected an ISO 8601 time, got {_shown(record.started_at)}"
            ) from None
        return record

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
        """A grade from its JSON form; every field's type is checked (RecordError names the field)."""
        if not isinstance(data, Mapping):
            raise RecordError("", f"expected an object, got {_shown(data)}")
        return _read_dataclass(cls, data, "")


# ---------------------------------------------------------------- reading JSON back


class RecordError(ValueError, HarnessError):
    """A stored record or grade that does not have the shape of the model: names the field path
    (``samples[12].ok``) and what was expected. Reading a file, the CLI prints it on one line as
    bad input (exit 2); anywhere else it is a harness error on one line (exit 3), never a traceback."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field, self.problem = field, problem


def _shown(value: Any) -> str:
    """A found value as the error shows it: JSON spelling for non-strings, quoted strings."""
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, float) and not math.isfinite(value):
        text = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    else:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_numpy_bool(value: Any) -> bool:
    """numpy.bool_ (a live run's comparison result), without importing numpy here."""
    kind = type(value)
    return kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _read_dataclass(cls: type, data: Any, where: str) -> Any:
    """An instance of a model dataclass from a JSON object, checking each field by its annotation."""
    return _reader(cls)(data, where)


def _read_value(kind: Any, value: Any, where: str) -> Any:
    """A JSON value read as the annotation `kind`; RecordError naming `where` otherwise."""
    return _reader(kind)(value, where)


# Readers are built once per annotation (a history page reads thousands of records: resolving each
# annotation for every value cost most of a cold `harness report`). Every reader takes
# (value, where) and raises RecordError naming `where`.
_Read = Callable[[Any, str], Any]


@cache
def _reader(kind: Any) -> _Read:
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, UnionType):
        return _optional_reader(kind, args)
    if kind in _SCALAR_READERS:
        return _SCALAR_READERS[kind]
    if isinstance(kind, type) and issubclass(kind, StrEnum):
        return _enum_reader(kind)
    if origin in (Mapping, dict) or kind in (Mapping, dict):
        return _read_object
    if origin is list or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        return _sequence_reader(_reader(args[0]), list if origin is list else tuple)
    if origin is tuple:
        return _fixed_tuple_reader(tuple(_reader(a) for a in args))
    if is_dataclass(kind):
        return _dataclass_reader(kind)
    if kind is Any:
        return lambda value, where: value
    raise TypeError(f"no reader for {kind!r}")  # a model field of a new kind: extend _reader


def _optional_reader(kind: Any, args: tuple[Any, ...]) -> _Read:
    options = [a for a in args if a is not type(None)]
    nullable = len(options) < len(args)
    (inner,) = options
    read_inner = _reader(inner)
    expected = _EXPECTED_OR_NULL.get(inner, "a value or null")

    def read(value: Any, where: str) -> Any:
        if value is None and nullable:
            return None
        try:
            return read_inner(value, where)
        except RecordError as error:
            if error.field != where:
                raise
            raise RecordError(where, f"expected {expected}, got {_shown(value)}") from None

    return read


def _read_bool(value: Any, where: str) -> bool:
    if not (isinstance(value, bool) or _is_numpy_bool(value)):
        raise RecordError(where, f"expected true or false, got {_shown(value)}")
    return bool(value)


def _read_float(value: Any, where: str) -> float:
    if type(value) is not float:
        # numbers.Real: numpy scalars from a live run too; a bool is never a number.
        if isinstance(value, bool) or _is_numpy_bool(value) or not isinstance(value, Real):
            raise RecordError(where, f"expected a number, got {_shown(value)}")
        value = float(value)
    # A time must be finite to order events; other values may be NaN or infinite (the store
    # keeps them, and scoring treats a non-finite measurement as no measurement).
    if where.endswith("at_seconds") and not math.isfinite(value):
        raise RecordError(where, f"expected a finite number, got {_shown(value)}")
    return value


def _read_int(value: Any, where: str) -> int:
    if type(value) is int:
        return value
    if isinstance(value, bool) or _is_numpy_bool(value) or not isinstance(value, Integral):
        raise RecordError(where, f"expected a whole number, got {_shown(value)}")
    return int(value)


def _read_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise RecordError(where, f"expected a string, got {_shown(value)}")
    return value


_SCALAR_READERS: dict[Any, _Read] = {bool: _read_bool, float: _read_float, int: _read_int, str: _read_str}


def _enum_reader(kind: type[StrEnum]) -> _Read:
    allowed = ", ".join(member.value for member in kind)

    def read(value: Any, where: str) -> StrEnum:
        try:
            return kind(value)
        except ValueError:
            raise RecordError(where, f"expected one of {allowed}, got {_shown(value)}") from None

    return read


def _read_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise RecordError(where, f"expected an object, got {_shown(value)}")
    return dict(value)


def _sequence_reader(read_item: _Read, container: type) -> _Read:
    def read(value: Any, where: str) -> Any:
        if not isinstance(value, list | tuple):
            raise RecordError(where, f"expected a list, got {_shown(value)}")
        return container(read_item(item, f"{where}[{i}]") for i, item in enumerate(value))

    return read


def _fixed_tuple_reader(readers: tuple[_Read, ...]) -> _Read:
    shape = "[name, value] pair" if len(readers) == 2 else f"list of {len(readers)} items"

    def read(value: Any, where: str) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            raise RecordError(where, f"expected a list, got {_shown(value)}")
        if len(value) != len(readers):
            raise RecordError(where, f"expected a {shape}, got {_shown(value)}")
        return tuple(r(item, f"{where}[{i}]") for i, (r, item) in enumerate(zip(readers, value, strict=True)))

    return read


def _dataclass_reader(cls: type) -> _Read:
    specs = [(f.name, f.default is MISSING and f.default_factory is MISSING) for f in dataclass_fields(cls)]
    names = frozenset(name for name, _ in specs)
    expected = ", ".join(name for name, _ in specs)
    # Resolved on first use (a dataclass may name itself); one whole tuple, so a second thread never
    # sees half of it.
    resolved: list[tuple[tuple[str, bool, _Read], ...]] = []

    def read(data: Any, where: str) -> Any:
        if not isinstance(data, Mapping):
            raise RecordError(where, f"expected an object, got {_shown(data)}")
        if not resolved:
            hints = get_type_hints(cls)
            resolved.append(tuple((name, required, _reader(hints[name])) for name, required in specs))
        for key in data:
            if key not in names:
                raise RecordError(_join(where, str(key)), f"unknown field (expected one of: {expected})")
        values = {}
        for name, required, read_field in resolved[0]:
            if name not in data:
                if required:
                    raise RecordError(_join(where, name), "missing")
                continue
            values[name] = read_field(data[name], _join(where, name))
        return cls(**values)

    return read


_EXPECTED_OR_NULL = {bool: "true, false or null", float: "a number or null", int: "a whole number or null",
                     str: "a string or null"}  # fmt: skip
