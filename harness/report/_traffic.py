"""The traffic section of a run page (global balancer runs): the traffic figures, graded where a
check graded them, and a Resilience-Hub-style timeline (fault, health check first failed, balancer
marked the region down, first success elsewhere, sustained OK, restore, failback), all from
`harness.traffic_measures`, the same derivations grading used."""

from __future__ import annotations

from dataclasses import dataclass

from harness import measures, traffic_measures
from harness.model import Grade, RunRecord
from harness.report._format import measured_text, missing_text, one_line, quantity_text, target_symbol_text

FIGURES = (
    ("traffic_failover_seconds", "Traffic failover (longest client region)"),
    ("residency_violations_count", "Residency violations"),
    ("evacuation_seconds", "Evacuation (drain → drained region serves nothing)"),
    ("failback_seconds", "Failback (restore → clients at home)"),
    ("traffic_error_ratio", "Error ratio, worst client region (canary)"),
    ("traffic_balancer_error_ratio", "Error ratio, worst client region (balancer)"),
    ("traffic_p99_latency_seconds", "p99 latency, worst client region"),
)


@dataclass(frozen=True, slots=True)
class Figure:
    label: str
    value: str
    note: str


@dataclass(frozen=True, slots=True)
class Step:
    at: str  # on the run clock
    after: str  # after the fault
    what: str
    detail: str


@dataclass(frozen=True, slots=True)
class TrafficView:
    figures: tuple[Figure, ...]
    timeline: tuple[Step, ...]
    note: str


def traffic_view(record: RunRecord, grade: Grade) -> TrafficView | None:
    """The section, or None for a run without the traffic canary."""
    if not any(s.probe == traffic_measures.TRAFFIC for s in record.samples):
        return None
    figures = []
    for name, label in FIGURES:
        check = next((c for c in grade.checks if c.measure == name), None)
        if check is not None:
            note = (
                f"missing: {missing_text(check)}"
                if check.measured is None
                else f"{check.verdict.value}, target {target_symbol_text(check)}"
            )
            figures.append(Figure(label, measured_text(check), one_line(note)))
            continue
        measured = measures.measure(record, name)
        if measured is None:
            continue
        if measured.value is None:
            figures.append(Figure(label, "no data", one_line(measured.evidence)))
        else:
            text = quantity_text(measured.value, measured.unit, lower_bound=measured.lower_bound)
            figures.append(Figure(label, text, one_line(f"not graded · {measured.evidence}")))
    moments = traffic_measures.timeline(record)
    origin = moments[0].at_seconds if moments else 0.0
    steps = tuple(
        Step(f"{m.at_seconds:.3f} s", f"+{m.at_seconds - origin:.3f} s", m.what, m.detail) for m in moments
    )
    note = (
        "Balancer steps come from polling HAProxy's runtime API at the canary's rate: each happened at "
        "most one poll interval before the time shown. Canary steps are answer times of real requests."
    )
    return TrafficView(tuple(figures), steps, note)
