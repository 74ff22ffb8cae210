"""A probe's observation window as a small RunRecord, so probes measure with harness.measures.

Probes see raw samples and events (monotonic timestamps) and the faults the ledger holds;
the formulas (failover window, RTO, RPO, error ratio) live in `harness.measures` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from harness import ledger, measures
from harness.model import Event, FaultRecord, RunRecord, Sample

__all__: list[str] = []  # private to the probes package


def faults_in_window(
    configuration: Mapping[str, Any] | None, started: float, ended: float, origin: float | None = None
) -> list[FaultRecord]:
    """Ledger faults open at some point in [started, ended], timed in seconds from `origin` (or `started`).

    With a run_id in the configuration, only that run's faults count.
    """
    origin = started if origin is None else origin
    run_id = (configuration or {}).get("run_id")
    applied: dict[str, dict[str, Any]] = {}
    for entry in ledger.read_entries(ledger.state_dir(configuration)):
        event = entry.get("event")
        if event == "applied" and (not run_id or entry.get("run_id") in (run_id, "")):
            applied[entry["fault_id"]] = {"entry": entry}
        elif event in ("effect", "undone") and entry.get("fault_id") in applied:
            applied[entry["fault_id"]][event] = entry
    faults = []
    for fault in applied.values():
        entry, undone, effect = fault["entry"], fault.get("undone"), fault.get("effect")
        if entry["monotonic"] > ended or (undone is not None and undone["monotonic"] < started):
            continue
        faults.append(
            FaultRecord(
                fault_id=entry["fault_id"],
                action=entry["action"],
                target=entry["target"],
                applied_at_seconds=entry["monotonic"] - origin,
                undone_at_seconds=None if undone is None else undone["monotonic"] - origin,
                effect_proven=None if effect is None else bool(effect["proven"]),
                effect_evidence="" if effect is None else effect.get("evidence", ""),
            )
        )
    return sorted(faults, key=lambda f: f.applied_at_seconds)


def window_record(
    title: str,
    started: float,
    ended: float,
    samples: Iterable[Sample] = (),
    events: Iterable[Event] = (),
    faults: Sequence[FaultRecord] = (),
) -> RunRecord:
    return RunRecord(
        run_id="",
        scenario="",
        experiment_title=title,
        experiment_path="",
        harness_version="",
        started_at="",
        duration_seconds=ended - started,
        status="completed",
        events=tuple(sorted(events, key=lambda e: e.at_seconds)),
        samples=tuple(samples),
        faults=tuple(faults),
    )


def derived(record: RunRecord, names: Iterable[str]) -> list[dict[str, Any]]:
    """The named harness.measures measurements the record supports, as probe output dicts."""
    found = (measures.DERIVED[name](record) for name in names)
    return [asdict(m) for m in found if m is not None]


def missing(name: str, unit: str, source: str, evidence: str) -> dict[str, Any]:
    """A measurement that could not be taken: grading treats its None value as unknown, never pass."""
    return {
        "name": name,
        "value": None,
        "unit": unit,
        "source": source,
        "evidence": evidence,
        "lower_bound": False,
    }
