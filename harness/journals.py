"""Chaos Toolkit journals read as run records, so the scorer grades them like any run.

`harness score journal.json --scenario S` grades a journal written by `chaos run` (with or without
the harness's control, with or without the harness's activities) against the scenario's targets.
This module is the pure half: a journal (already parsed JSON) in, a RunRecord out; grading is
`harness.scoring.grade`, unchanged, so a journal meets exactly the rules a run does.

What a journal holds, and where it lands in the record (docs/journals.md is the long form):

* ``status`` → ``status`` (the scorer trusts only ``completed``); ``deviated`` and the steady
  states ``before`` / ``after`` / ``during`` → ``steady_state_before/after`` and events
  (``hypothesis.deviated``, ``hypothesis.during``). A journal that says it deviated while its
  hypothesis after was met contradicts itself: its status is recorded as not completed.
* every activity (hypotheses, method, rollbacks) → an ``activity.<status>`` event at its start on
  the run clock (seconds since the journal's ``start``) with its duration; every activity that did
  not succeed (failed, or no status: the run stopped inside it) and every method activity of the
  experiment with no run entry → ``activity_errors``, each one a doubt that makes every check
  unknown. So a run whose actions all failed, which CTK reports ``completed``, is never a pass.
* a harness action's result (``harness.actions.*`` returning ``fault_id``, ``effect_proven``,
  ``evidence``) → a FaultRecord applied at the activity's start, undone at the end of the activity
  whose result lists it in ``closed_fault_ids`` (else not known to be undone). Any other action
  stays in the journal, where the scorer sees it ran outside the fault ledger: no proof of effect.
* measures, from probes:
  1. ``output.measurements`` (the harness's probes and load actions report this list) in the
     method or the rollbacks, each entry a Measurement (``name``, ``value``, ``unit``, optional
     ``source``, ``evidence``, ``lower_bound``, ``missed_because``);
  2. a method or rollback probe NAMED like a known measure (``failover_seconds``) whose output is
     a number: that measure, in its base unit;
  3. a method or rollback probe whose output is a mapping with keys named like known measures
     (``{"replication_lag_seconds": 0.25}``): each such number; ``lower_bound: true`` in the
     mapping (as harness.probes.failover.failover_time says it) makes them lower bounds.
  The harness's own probes (``harness.probes.*``) map only through (1), and through (3) where
  GRADED_PROBE_KEYS says the key is the measure over the fault window (a single reading is not).
  A mapped probe that failed or returned something other than a number gives the measure with no
  value (unknown, saying why). Steady-state probes map through none of these: they run before or
  after the fault window. Two readings of one measure that differ give no value: which one a target
  means is ambiguous.
* canary samples are not read: their clock is the probing process's monotonic clock, whose origin
  a journal does not hold. Measures derived from samples then come from the probes' reports.

Bad input (not an object, a field of the wrong type) raises RecordError naming the journal field
(``run[2].status``); the CLI prints it on one line with the file (exit 2).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness import measure_names
from harness.model import Event, FaultRecord, Measurement, RecordError, RunRecord

__all__ = ["JournalReading", "is_journal", "is_run_file", "read_journal", "run_id_for", "unit_of"]

SOURCE = "chaostoolkit-journal"
LEDGER_MODULE_PREFIX = "harness.actions."
# Phases whose probes measure the fault window (mapped by name or key, rule 2 and 3).
_WINDOW_PHASES = ("method", "rollback")
_MEASUREMENT_STRINGS = ("source", "evidence", "missed_because")
HARNESS_PROBES_PREFIX = "harness.probes."
# Harness probes whose output keys are graded measures (rule 3): failover_time's failover_seconds
# is the canary's failover over the fault window (harness.measures), with its lower_bound. Others
# are not: replication_lag_seconds is one marker reading, a steady-state check, not the worst lag.
GRADED_PROBE_KEYS: dict[str, tuple[str, ...]] = {
    "harness.probes.failover.failover_time": ("failover_seconds",),
}


def is_run_file(data: Any) -> bool:
    """A run.json written by the harness (record and grade, or a bare record)."""
    return isinstance(data, Mapping) and ("record" in data or "schema_version" in data)


def is_journal(data: Any) -> bool:
    """A Chaos Toolkit journal: chaoslib writes its version and a copy of the experiment."""
    return (
        isinstance(data, Mapping)
        and ("chaoslib-version" in data or "experiment" in data)
        and not is_run_file(data)
    )


@dataclass(frozen=True, slots=True)
class _Entry:
    """One activity run of the journal, with where it sits in the journal."""

    phase: str
    where: str  # journal field path, e.g. "run[2]"
    name: str
    kind: str  # "probe" | "action"
    provider: Mapping[str, Any]
    status: str | None
    start: float | None  # run clock
    end: float | None
    duration: float | None
    output: Any
    error: str


@dataclass(frozen=True, slots=True)
class JournalReading:
    """A journal as a record, with what the journal says beyond the record (notes for the reader)."""

    record: RunRecord
    notes: tuple[str, ...]


def read_journal(
    journal: Any, *, scenario: str, experiment_path: str, harness_version: str
) -> JournalReading:
    """The journal as a RunRecord of `experiment_path` under `scenario`; RecordError on bad input."""
    if not isinstance(journal, Mapping):
        raise RecordError("", f"expected a Chaos Toolkit journal object, got {type(journal).__name__}")
    experiment = _mapping(journal, "experiment", "the experiment the journal ran")
    title = experiment.get("title")
    if not isinstance(title, str) or not title:
        raise RecordError("experiment.title", f"expected the experiment's title, got {_shown(title)}")
    status = journal.get("status")
    if status is not None and not isinstance(status, str):
        raise RecordError(
            "status", f"expected a string (completed, failed, aborted, interrupted), got {_shown(status)}"
        )
    deviated = journal.get("deviated", False)
    if not isinstance(deviated, bool):
        raise RecordError("deviated", f"expected true or false, got {_shown(deviated)}")
    start_text = journal.get("start")
    origin = _time(start_text, "start")
    if origin is None:
        raise RecordError("start", "missing: the journal's start time (ISO 8601)")
    states = journal.get("steady_states", {})
    if states is None:
        states = {}
    if not isinstance(states, Mapping):
        raise RecordError("steady_states", f"expected an object, got {_shown(states)}")
    before = _state_met(states, "before")
    after = _state_met(states, "after")
    entries = list(_entries(journal, states, origin))
    during = _during(states, origin)

    duration = journal.get("duration")
    if duration is None:
        ends = [e.end for e in entries if e.end is not None]
        duration = max(ends, default=0.0)
    elif not _is_number(duration) or not math.isfinite(duration) or duration < 0:
        raise RecordError("duration", f"expected seconds (a number ≥ 0), got {_shown(duration)}")

    shown_status = status if status is not None else "unfinished (no status)"
    if deviated and after is True:
        shown_status = f"{shown_status}, contradicted: deviated is true but the hypothesis after was met"
    if not deviated and after is False and status == "completed":
        shown_status = f"{shown_status}, contradicted: the hypothesis after was not met but deviated is false"

    events = [
        Event(e.start, f"activity.{e.status or 'unfinished'}", e.phase,
              {"name": e.name, "type": e.kind, "duration_seconds": e.duration})
        for e in entries
        if e.start is not None
    ]  # fmt: skip
    for at, met, where in during:
        events.append(Event(at, "hypothesis.during", "journal", {"steady_state_met": met, "entry": where}))
    if deviated:
        after_start = min(
            (e.start for e in entries if e.phase == "hypothesis-after" and e.start is not None),
            default=float(duration),
        )
        events.append(Event(after_start, "hypothesis.deviated", "journal", {}))
    events.append(
        Event(float(duration), "run.ended", "journal", {"status": shown_status, "deviated": deviated})
    )

    record = RunRecord(
        run_id=run_id_for(journal),
        scenario=scenario,
        experiment_title=title,
        experiment_path=experiment_path,
        harness_version=harness_version,
        started_at=datetime.fromtimestamp(origin, UTC).isoformat(),
        duration_seconds=float(duration),
        status=shown_status,
        steady_state_before=before,
        steady_state_after=after,
        activity_errors=tuple(_activity_errors(entries, experiment)),
        events=tuple(sorted(events, key=lambda e: e.at_seconds)),
        samples=(),
        faults=tuple(_faults(entries)),
        measurements=tuple(_measurements(entries)),
        environment={
            "source": SOURCE,
            "chaoslib_version": str(journal.get("chaoslib-version", "")),
            "platform": str(journal.get("platform", "")),
            "node": str(journal.get("node", "")),
            # Nothing watched Sentinel or Patroni while CTK ran: the absence of a promotion event
            # is no evidence that none happened (harness.measures reads this).
            "event_watchers": [],
        },
        journal=json.loads(json.dumps(journal, default=str)),
    )
    return JournalReading(record, tuple(_notes(journal, entries, during)))


def run_id_for(journal: Mapping[str, Any]) -> str:
    """A stable run id (usable as a folder name): start time, experiment title, content digest, so
    grading the same journal twice names the same run."""
    text = json.dumps(journal, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    experiment = journal.get("experiment")
    title = experiment.get("title", "") if isinstance(experiment, Mapping) else ""
    slug = re.sub(r"[^a-z0-9]+", "-", str(title).lower()).strip("-")[:40] or "experiment"
    origin = _time(journal.get("start"), "start")
    stamp = datetime.fromtimestamp(origin or 0.0, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-journal-{slug}-{digest}"


def _notes(
    journal: Mapping[str, Any], entries: Sequence[_Entry], during: Sequence[tuple[float, bool, str]]
) -> list[str]:
    """What the journal says that the grade does not: deviation, the continuous hypothesis, skipped
    rollbacks. For the reader; the verdict does not depend on them."""
    found = []
    if journal.get("deviated"):
        found.append("Chaos Toolkit: the steady state deviated after the method (chaos run exits 1)")
    missed = sum(1 for _, met, _ in during if not met)
    if during:
        found.append(
            f"continuous hypothesis: steady state not met in {missed} of {len(during)} runs during the method"
        )
    experiment = journal.get("experiment") if isinstance(journal.get("experiment"), Mapping) else {}
    if experiment.get("rollbacks") and not any(e.phase == "rollback" for e in entries):
        found.append(
            "rollbacks did not run (chaoslib skips them after a failed or interrupted run): check the system"
        )
    return found


# ---------------------------------------------------------------- reading the journal


def _entries(journal: Mapping[str, Any], states: Mapping[str, Any], origin: float) -> Iterator[_Entry]:
    for phase, key, listed in (
        ("hypothesis-before", "steady_states.before.probes", _state_probes(states, "before")),
        ("method", "run", journal.get("run", [])),
        ("hypothesis-after", "steady_states.after.probes", _state_probes(states, "after")),
        ("rollback", "rollbacks", journal.get("rollbacks", [])),
    ):
        if listed is None:
            continue
        if not isinstance(listed, list):
            raise RecordError(key, f"expected a list of activity runs, got {_shown(listed)}")
        for index, raw in enumerate(listed):
            yield _entry(phase, f"{key}[{index}]", raw, origin)


def _entry(phase: str, where: str, raw: Any, origin: float) -> _Entry:
    if not isinstance(raw, Mapping):
        raise RecordError(where, f"expected an activity run object, got {_shown(raw)}")
    activity = raw.get("activity")
    if not isinstance(activity, Mapping):
        raise RecordError(f"{where}.activity", f"expected the activity object, got {_shown(activity)}")
    name = activity.get("name")
    if not isinstance(name, str):
        raise RecordError(f"{where}.activity.name", f"expected a string, got {_shown(name)}")
    kind = activity.get("type")
    if kind not in ("probe", "action"):
        raise RecordError(f"{where}.activity.type", f"expected 'probe' or 'action', got {_shown(kind)}")
    provider = activity.get("provider", {})
    if not isinstance(provider, Mapping):
        raise RecordError(f"{where}.activity.provider", f"expected an object, got {_shown(provider)}")
    status = raw.get("status")
    if status is not None and not isinstance(status, str):
        raise RecordError(f"{where}.status", f"expected a string (succeeded, failed), got {_shown(status)}")
    start = _time(raw.get("start"), f"{where}.start")
    end = _time(raw.get("end"), f"{where}.end")
    duration = raw.get("duration")
    if duration is not None and (not _is_number(duration) or not math.isfinite(duration) or duration < 0):
        raise RecordError(f"{where}.duration", f"expected seconds (a number ≥ 0), got {_shown(duration)}")
    exception = raw.get("exception")
    if isinstance(exception, list) and exception and all(isinstance(x, str) for x in exception):
        error = exception[-1].strip().splitlines()[-1] if exception[-1].strip() else "failed"
    elif isinstance(exception, str) and exception.strip():
        error = exception.strip().splitlines()[-1]
    elif exception in (None, [], ""):
        error = ""
    else:
        raise RecordError(f"{where}.exception", f"expected a list of strings, got {_shown(exception)}")
    return _Entry(
        phase=phase,
        where=where,
        name=name,
        kind=kind,
        provider=provider,
        status=status,
        start=None if start is None else start - origin,
        end=None if end is None else end - origin,
        duration=None if duration is None else float(duration),
        output=raw.get("output"),
        error=error,
    )


def _state_probes(states: Mapping[str, Any], phase: str) -> Any:
    state = states.get(phase)
    if state is None:
        return None
    if not isinstance(state, Mapping):
        raise RecordError(f"steady_states.{phase}", f"expected an object or null, got {_shown(state)}")
    return state.get("probes", [])


def _state_met(states: Mapping[str, Any], phase: str) -> bool | None:
    state = states.get(phase)
    if state is None:
        return None
    if not isinstance(state, Mapping):
        raise RecordError(f"steady_states.{phase}", f"expected an object or null, got {_shown(state)}")
    met = state.get("steady_state_met")
    if not isinstance(met, bool):
        raise RecordError(
            f"steady_states.{phase}.steady_state_met", f"expected true or false, got {_shown(met)}"
        )
    return met


def _during(states: Mapping[str, Any], origin: float) -> list[tuple[float, bool, str]]:
    """(when, met, field) of every continuous-hypothesis run, when from its first probe's start."""
    listed = states.get("during", [])
    if listed is None:
        return []
    if not isinstance(listed, list):
        raise RecordError("steady_states.during", f"expected a list, got {_shown(listed)}")
    found = []
    for index, state in enumerate(listed):
        where = f"steady_states.during[{index}]"
        if state is None:  # chaoslib appends None when the hypothesis has no probes
            continue
        if not isinstance(state, Mapping):
            raise RecordError(where, f"expected an object, got {_shown(state)}")
        met = state.get("steady_state_met")
        if not isinstance(met, bool):
            raise RecordError(f"{where}.steady_state_met", f"expected true or false, got {_shown(met)}")
        probes = state.get("probes") or []
        first = probes[0] if isinstance(probes, list) and probes and isinstance(probes[0], Mapping) else {}
        at = _time(first.get("start"), f"{where}.probes[0].start")
        found.append((0.0 if at is None else at - origin, met, where))
    return found


def _activity_errors(entries: Sequence[_Entry], experiment: Mapping[str, Any]) -> list[str]:
    """Every activity that did not succeed, and every method activity with no run entry."""
    errors = []
    for entry in entries:
        if entry.status == "succeeded":
            continue
        if entry.status == "failed":
            errors.append(f"{entry.phase} {entry.name}: {entry.error or 'failed'}")
        elif entry.status is None:
            errors.append(f"{entry.phase} {entry.name}: did not finish (no status in the journal)")
        else:
            errors.append(f"{entry.phase} {entry.name}: status {entry.status!r}, not 'succeeded'")
    method = experiment.get("method")
    ran = sum(1 for e in entries if e.phase == "method")
    if isinstance(method, list) and ran < len(method):
        errors.append(f"method: {len(method) - ran} of the experiment's {len(method)} activities never ran")
    return errors


def _faults(entries: Sequence[_Entry]) -> Iterator[FaultRecord]:
    """The faults harness actions applied, from their results (fault_id, effect_proven, evidence)."""
    closed: dict[str, float | None] = {}
    for entry in entries:
        ids = entry.output.get("closed_fault_ids") if isinstance(entry.output, Mapping) else None
        if isinstance(ids, list):
            for fault_id in ids:
                if isinstance(fault_id, str) and fault_id not in closed:
                    closed[fault_id] = entry.end
    for entry in entries:
        module = str(entry.provider.get("module", ""))
        output = entry.output
        if (
            entry.kind != "action"
            or not module.startswith(LEDGER_MODULE_PREFIX)
            or not isinstance(output, Mapping)
        ):
            continue
        fault_id = output.get("fault_id")
        if fault_id is None:
            continue  # an inverse action, or one that had nothing to do
        if not isinstance(fault_id, str) or not fault_id:
            raise RecordError(
                f"{entry.where}.output.fault_id", f"expected the fault's id, got {_shown(fault_id)}"
            )
        proven = output.get("effect_proven")
        if proven is not None and not isinstance(proven, bool):
            raise RecordError(
                f"{entry.where}.output.effect_proven", f"expected true or false, got {_shown(proven)}"
            )
        evidence = output.get("evidence", "")
        arguments = (
            entry.provider.get("arguments") if isinstance(entry.provider.get("arguments"), Mapping) else {}
        )
        target = next(
            (
                str(v)
                for k in ("component", "region", "link", "target")
                if (v := output.get(k) or arguments.get(k))
            ),
            "",
        )
        if not target and isinstance(output.get("a"), str) and isinstance(output.get("b"), str):
            target = f"{output['a']}<->{output['b']}"  # a network fault between two regions
        yield FaultRecord(
            fault_id=fault_id,
            action=f"{module}.{entry.provider.get('func', '?')}",
            target=target,
            applied_at_seconds=entry.start if entry.start is not None else 0.0,
            undone_at_seconds=closed.get(fault_id),
            effect_proven=proven,
            effect_evidence=str(evidence),
        )


def _measurements(entries: Sequence[_Entry]) -> list[Measurement]:
    """Every measure the probes report or map to, one Measurement per name (see the module doc)."""
    readings: dict[str, list[Measurement]] = {}
    for entry in entries:
        output = entry.output
        if isinstance(output, Mapping) and isinstance(output.get("measurements"), list):
            for index, raw in enumerate(output["measurements"]):
                found = _reported(raw, f"{entry.where}.output.measurements[{index}]", entry.name)
                if entry.phase in _WINDOW_PHASES:  # a steady-state probe ran outside the fault window
                    readings.setdefault(found.name, []).append(found)
        if entry.kind != "probe" or entry.phase not in _WINDOW_PHASES:
            continue
        for found in _mapped(entry):
            readings.setdefault(found.name, []).append(found)
    return [_one(name, found) for name, found in readings.items()]


def _reported(raw: Any, where: str, activity: str) -> Measurement:
    if not isinstance(raw, Mapping):
        raise RecordError(where, f"expected a measurement object, got {_shown(raw)}")
    allowed = {"name", "value", "unit", "lower_bound", *_MEASUREMENT_STRINGS}
    for key in raw:
        if key not in allowed:
            raise RecordError(
                f"{where}.{key}", f"unknown field (expected one of: {', '.join(sorted(allowed))})"
            )
    name, unit, value = raw.get("name"), raw.get("unit"), raw.get("value")
    if not isinstance(name, str) or not name:
        raise RecordError(f"{where}.name", f"expected a measure name, got {_shown(name)}")
    if not isinstance(unit, str):
        raise RecordError(f"{where}.unit", f"expected a unit, got {_shown(unit)}")
    if value is not None and not _is_number(value):
        raise RecordError(f"{where}.value", f"expected a number or null, got {_shown(value)}")
    for key in _MEASUREMENT_STRINGS:
        if not isinstance(raw.get(key, ""), str):
            raise RecordError(f"{where}.{key}", f"expected a string, got {_shown(raw[key])}")
    lower = raw.get("lower_bound", False)
    if not isinstance(lower, bool):
        raise RecordError(f"{where}.lower_bound", f"expected true or false, got {_shown(lower)}")
    return Measurement(
        name=name,
        value=None if value is None else float(value),
        unit=unit,
        source=raw.get("source") or activity,
        evidence=raw.get("evidence", ""),
        lower_bound=lower,
        missed_because=raw.get("missed_because", ""),
    )


def _mapped(entry: _Entry) -> Iterator[Measurement]:
    """Rule 2 (a probe named like a measure) and rule 3 (output keys named like measures)."""
    source = f"journal probe {entry.name}"
    output = entry.output
    module = str(entry.provider.get("module", ""))
    if module.startswith(HARNESS_PROBES_PREFIX):
        # The harness's probes report what grades in their `measurements` list (rule 1); a key
        # of theirs is graded only where the probe computes the measure over the fault window.
        graded = GRADED_PROBE_KEYS.get(f"{module}.{entry.provider.get('func', '')}", ())
        if not isinstance(output, Mapping) or entry.status != "succeeded" or not graded:
            return
        output = {k: v for k, v in output.items() if k in graded or k in ("lower_bound", "evidence")}
    if measure_names.is_known(entry.name):
        unit = unit_of(entry.name)
        if entry.status != "succeeded":
            why = entry.error or f"status {entry.status or 'none'}"
            yield Measurement(entry.name, None, unit, source, f"probe {entry.name} did not succeed: {why}")
        elif _is_number(output) and math.isfinite(output):
            yield Measurement(
                entry.name, float(output), unit, source, f"probe {entry.name} returned {output:g} ({unit})"
            )
        elif not isinstance(output, Mapping):
            yield Measurement(
                entry.name, None, unit, source, f"probe {entry.name} returned {_shown(output)}, not a number"
            )
    if isinstance(output, Mapping) and entry.status == "succeeded":
        # The harness's probes say `lower_bound: true` beside a value that is only "at least"
        # (the system had not recovered yet) and explain it in `evidence`: both hold for every
        # measure of the mapping (a lower bound never passes an upper limit).
        lower = output.get("lower_bound", False)
        if not isinstance(lower, bool):
            raise RecordError(
                f"{entry.where}.output.lower_bound", f"expected true or false, got {_shown(lower)}"
            )
        said = output.get("evidence") if isinstance(output.get("evidence"), str) else ""
        for key, value in output.items():
            if key == "measurements" or not isinstance(key, str) or not measure_names.is_known(key):
                continue
            unit = unit_of(key)
            if _is_number(value) and math.isfinite(value):
                evidence = f"probe {entry.name} returned {key}={value:g} ({unit})" + (
                    f": {said}" if said else ""
                )
                yield Measurement(key, float(value), unit, source, evidence, lower_bound=lower)
            else:
                yield Measurement(
                    key,
                    None,
                    unit,
                    source,
                    f"probe {entry.name} returned {key}={_shown(value)}, not a number",
                )


def _one(name: str, found: Sequence[Measurement]) -> Measurement:
    """The measure's one reading; several that differ leave it without a value (ambiguous)."""
    distinct = {(m.value, m.lower_bound, m.missed_because) for m in found}
    if len(distinct) == 1:
        return found[0]
    values = ", ".join("none" if m.value is None else f"{m.value:g}" for m in found)
    why = f"the journal holds {len(found)} readings of {name} that differ ({values})"
    return Measurement(
        name, None, found[0].unit, "journal", f"{why}: which one grades the target is ambiguous"
    )


def unit_of(name: str) -> str:
    """The base unit of a known measure name."""
    if name in measure_names.MEASURES:
        return measure_names.MEASURES[name].unit
    for pattern, described in measure_names.PATTERNS.values():
        if pattern.match(name):
            return "bytes" if name.endswith("_bytes") else described.unit
    return "seconds" if name.endswith("_seconds") else "ratio" if name.endswith("_ratio") else "count"


# ---------------------------------------------------------------- small pieces


def _mapping(data: Mapping[str, Any], key: str, what: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise RecordError(key, f"expected {what} (an object), got {_shown(value)}")
    return value


def _time(value: Any, where: str) -> float | None:
    """POSIX seconds of an ISO 8601 time (naive means UTC, as chaoslib wrote before 1.30)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(where, f"expected an ISO 8601 time, got {_shown(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(where, f"expected an ISO 8601 time, got {_shown(value)}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
