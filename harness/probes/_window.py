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

    With a run_id in the configuration, only that run's faults (and those outside any run) count.
    """
    origin = started if origin is None else origin
    records = ledger.fault_records(
        ledger.state_dir(configuration), origin, (configuration or {}).get("run_id") or None, unlabelled=True
    )
    first, last = started - origin, ended - origin
    return [
        f
        for f in records
        if f.applied_at_seconds <= last and (f.undone_at_seconds is None or f.undone_at_seconds >= first)
    ]


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
