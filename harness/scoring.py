"""Grade a RunRecord against a scenario's targets: pure functions, no I/O, no network.

A check is pass, fail or unknown. Unknown means the evidence is missing or cannot be
trusted: the measurement is absent, a fault's effect was not proven, the steady state did
not hold before the fault, or an activity raised. Unknown never counts as pass. The score is
the weighted share of passed checks (0-100); a failed critical check fails the run.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness import measures
from harness.model import Check, Comparison, Grade, Measurement, RunRecord, Scenario, Target, Verdict, combine
from harness.units import format_quantity


def run_doubts(record: RunRecord) -> list[str]:
    """Reasons the record cannot support a verdict: each makes every check unknown."""
    doubts = []
    if record.steady_state_before is False:
        doubts.append("steady state did not hold before the fault: the system was already broken")
    doubts.extend(f"activity failed: {error}" for error in record.activity_errors)
    for fault in record.faults:
        if fault.effect_proven is not True:
            seen = "was not observed" if fault.effect_proven is False else "was not checked"
            detail = f" ({fault.effect_evidence})" if fault.effect_evidence else ""
            doubts.append(f"effect of {fault.action} on {fault.target} {seen}{detail}")
    if record.status == "interrupted" and guardrail_crossed(record) is None:
        doubts.append("the run was interrupted")
    return doubts


def guardrail_crossed(record: RunRecord) -> str | None:
    """Why a guardrail aborted the run, or None. Crossing the blast radius is a miss, not a doubt."""
    event = next((e for e in record.events if e.kind == "guardrail.crossed"), None)
    return None if event is None else str(event.detail.get("reason", "guardrail crossed"))


def check_target(target: Target, measurement: Measurement | None, doubts: Sequence[str] = ()) -> Check:
    """One target against one measurement; doubts turn any result into unknown."""

    def result(verdict: Verdict, evidence: str) -> Check:
        return Check(
            target=target.name,
            measure=target.measure,
            verdict=verdict,
            measured=measurement.value if measurement else None,
            limit=target.limit,
            unit=target.unit,
            comparison=target.comparison,
            weight=target.effective_weight,
            critical=target.critical,
            evidence=evidence,
        )

    if measurement is None or measurement.value is None:
        return result(Verdict.UNKNOWN, f"no measurement of {target.measure}")
    value, limit = measurement.value, target.limit
    relation = "at most" if target.comparison is Comparison.AT_MOST else "at least"
    said = (
        f"{target.measure} measured {'at least ' if measurement.lower_bound else ''}"
        f"{format_quantity(value, target.unit)}, target {relation} {format_quantity(limit, target.unit)}"
    )
    if measurement.evidence:
        said += f" ({measurement.evidence})"
    if doubts:
        return result(Verdict.UNKNOWN, f"{said}; not trusted: {'; '.join(doubts)}")
    within = value <= limit if target.comparison is Comparison.AT_MOST else value >= limit
    if measurement.lower_bound:
        # Only a miss is certain from a lower bound on an upper limit.
        if target.comparison is Comparison.AT_MOST and not within:
            return result(Verdict.FAIL, said)
        return result(Verdict.UNKNOWN, f"{said}; only a lower bound")
    return result(Verdict.PASS if within else Verdict.FAIL, said)


def score(checks: Sequence[Check]) -> float:
    """Weighted share of passed checks, 0-100; no weight at all scores 0."""
    total = sum(c.weight for c in checks)
    if total == 0:
        return 0.0
    return 100.0 * sum(c.weight for c in checks if c.verdict is Verdict.PASS) / total


def overall_verdict(checks: Sequence[Check]) -> Verdict:
    """A failed critical check fails the run; otherwise the worst verdict wins."""
    if any(c.critical and c.verdict is Verdict.FAIL for c in checks):
        return Verdict.FAIL
    return combine(c.verdict for c in checks)


def targets_for(scenario: Scenario, experiment_path: str, measured: set[str]) -> list[Target]:
    """The targets a run grades: those the scenario lists for this experiment, else those it measured."""
    for ref in scenario.experiments:
        if ref.targets and _same_experiment(ref.path, experiment_path):
            return [t for t in scenario.targets if t.name in ref.targets]
    return [t for t in scenario.targets if t.measure in measured]


def _same_experiment(a: str, b: str) -> bool:
    return a.rsplit("/", 1)[-1] == b.rsplit("/", 1)[-1]


def available_measures(record: RunRecord) -> set[str]:
    """Names of every measurement the record supports, given or derived."""
    names = {m.name for m in record.measurements}
    names.update(name for name, derive in measures.DERIVED.items() if derive(record) is not None)
    return names


def grade(record: RunRecord, scenario: Scenario) -> Grade:
    """Grade a record against the scenario's targets for its experiment."""
    doubts = run_doubts(record)
    targets = targets_for(scenario, record.experiment_path, available_measures(record))
    checks = tuple(check_target(t, measures.measure(record, t.measure), doubts) for t in targets)
    reasons = list(doubts)
    if not checks:
        reasons.append("no target of the scenario applies to what this run measured")
    verdict = overall_verdict(checks)
    if (crossed := guardrail_crossed(record)) is not None:
        reasons.append(f"aborted by a guardrail: {crossed}")
        verdict = Verdict.FAIL
    return Grade(
        run_id=record.run_id,
        scenario=scenario.name,
        experiment_title=record.experiment_title,
        verdict=verdict,
        score=round(score(checks), 1),
        checks=checks,
        reasons=tuple(reasons),
    )


def exit_code(verdict: Verdict) -> int:
    """The process exit code for a verdict: 0 pass, 1 fail, 3 unknown."""
    return {Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.UNKNOWN: 3}[verdict]
