"""Grade a RunRecord against a scenario's targets: pure functions, no I/O, no network.

A check is pass, fail or unknown. Unknown means the evidence is missing or cannot be trusted,
and `Check.missing` names what is lacking. Unknown never counts as pass. The rules, in order:

1. The targets a run grades are exactly those the scenario lists for its experiment
   (`experiments[].targets`). An experiment the scenario does not list grades nothing: the
   verdict is unknown. A listed target whose measure the run did not produce is unknown
   ("not measured"), never dropped.
2. Run doubts make every check unknown: chaoslib status other than `completed` (a guardrail
   abort is a fail instead), no steady state before the fault or one that did not hold, an
   activity that raised, no fault journalled although the method has actions, a method action
   that ran outside the fault ledger (no proof of effect), a fault an action reports applying
   that this run's ledger lacks, a fault whose effect was not proven,
   a sandbox region of the scenario whose canary never started (when the run had canaries), a
   load worker lost mid-run (a `load.worker_lost` event).
3. A measurement with no value is unknown, naming the evidence the measure lacked.
4. `Measurement.missed_because` (e.g. "no promotion") fails the target whatever the value, even
   a value that could not be measured.
5. Two witnesses (harness.witnesses): when both have values and disagree beyond the pair's
   tolerance the check is unknown; otherwise the worse of the two is graded, and an at_most
   target is not passed while either witness is only a lower bound. Both are shown.
6. A lower bound ("at least x"): on an at_most target it fails when x is over the limit and is
   unknown otherwise; on an at_least target it passes when x already meets the limit (the true
   value is at least x) and is unknown otherwise. It never passes an at_most target.

The score is the weighted share of passed checks (0-100); a failed critical check fails the run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from harness import measures, witnesses
from harness.model import (
    Check,
    Comparison,
    ExperimentRef,
    Grade,
    Measurement,
    RunRecord,
    Scenario,
    Target,
    Verdict,
    combine,
)
from harness.units import format_quantity

# Modules whose actions record every fault they apply in the fault ledger, with a proof of effect.
LEDGER_MODULE_PREFIX = "harness.actions."


def run_doubts(record: RunRecord) -> list[str]:
    """Reasons the record cannot support a verdict: each makes every check unknown."""
    doubts = []
    crossed = guardrail_crossed(record)
    if record.status != "completed" and crossed is None:
        doubts.append(f"chaoslib status is {record.status!r}, not 'completed'")
    if record.steady_state_before is None:
        doubts.append("no steady state was checked before the fault")
    elif record.steady_state_before is False:
        doubts.append("steady state did not hold before the fault: the system was already broken")
    doubts.extend(f"activity failed: {error}" for error in record.activity_errors)
    if not record.faults and method_has_actions(record.journal) is not False:
        doubts.append("no fault was journalled: nothing shows the fault was applied")
    for name, provider in method_actions(record.journal) or ():
        doubts.append(f"action {name} ({provider}) ran outside the fault ledger: its effect has no proof")
    journalled = {fault.fault_id for fault in record.faults}
    for name, fault_id in applied_fault_ids(record.journal):
        if fault_id not in journalled:
            doubts.append(f"fault {fault_id} applied by {name} is not in this run's fault ledger")
    for fault in record.faults:
        if fault.effect_proven is not True:
            seen = "was not observed" if fault.effect_proven is False else "was not checked"
            detail = f" ({fault.effect_evidence})" if fault.effect_evidence else ""
            doubts.append(f"effect of {fault.action} on {fault.target} {seen}{detail}")
    premise = measures.region_loss_premise(record)
    if premise:
        doubts.append(premise)
    # A load worker that died mid-run (harness.actions.load): the load the run was about fell short.
    doubts.extend(
        f"load worker lost mid-run: {event.detail.get('what', 'a Locust worker')}"
        for event in record.events
        if event.kind == "load.worker_lost"
    )
    return doubts


def scenario_doubts(record: RunRecord, scenario: Scenario) -> list[str]:
    """Doubts only the scenario can raise: a sandbox region whose canary never started. The runner
    starts a canary in every region; a region with none leaves no sample to miss, so only the
    canary.started events of the others show it is absent."""
    started = {str(e.detail.get("region", "")) for e in record.events if e.kind == "canary.started"}
    if not started:
        return []  # no canary in this experiment at all (or a record older than canary.started)
    return [
        f"no canary started in region {region.name} of scenario {scenario.name}"
        for region in scenario.sandbox_regions
        if region.name not in started
    ]


def method_actions(journal: Mapping[str, Any]) -> list[tuple[str, str]] | None:
    """The method's actions that did not go through the fault ledger, as (name, provider); None when
    the journal has no method at all (then nothing proves the method had no actions)."""
    run = journal.get("run") if isinstance(journal, Mapping) else None
    if not isinstance(run, list):
        return None
    outside = []
    for entry in run:
        activity = entry.get("activity") if isinstance(entry, Mapping) else None
        if not isinstance(activity, Mapping) or activity.get("type") != "action":
            continue
        provider = activity.get("provider") if isinstance(activity.get("provider"), Mapping) else {}
        kind, module = provider.get("type", "?"), str(provider.get("module", ""))
        if kind == "python" and module.startswith(LEDGER_MODULE_PREFIX):
            continue
        described = f"{kind} {module or provider.get('path') or provider.get('url') or ''}".strip()
        outside.append((str(activity.get("name", "?")), described))
    return outside


def applied_fault_ids(journal: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(action name, fault id) for every method action whose result names the fault it applied
    (the harness's actions return `fault_id`)."""
    run = journal.get("run") if isinstance(journal, Mapping) else None
    found = []
    for entry in run if isinstance(run, list) else ():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("output"), Mapping):
            continue
        activity = entry.get("activity") if isinstance(entry.get("activity"), Mapping) else {}
        fault_id = entry["output"].get("fault_id")
        if activity.get("type") == "action" and isinstance(fault_id, str) and fault_id:
            found.append((str(activity.get("name", "?")), fault_id))
    return found


def method_has_actions(journal: Mapping[str, Any]) -> bool | None:
    """Whether the journalled method ran any action at all; None without a journalled method."""
    run = journal.get("run") if isinstance(journal, Mapping) else None
    if not isinstance(run, list):
        return None
    return any(
        isinstance(e, Mapping)
        and isinstance(e.get("activity"), Mapping)
        and e["activity"].get("type") == "action"
        for e in run
    )


def guardrail_crossed(record: RunRecord) -> str | None:
    """Why a guardrail aborted the run, or None. Crossing the blast radius is a miss, not a doubt."""
    event = next((e for e in record.events if e.kind == "guardrail.crossed"), None)
    return None if event is None else str(event.detail.get("reason", "guardrail crossed"))


def _said(target: Target, value: float, lower_bound: bool) -> str:
    relation = "at most" if target.comparison is Comparison.AT_MOST else "at least"
    limit = format_quantity(target.limit, target.unit)
    measured = ("at least " if lower_bound else "") + format_quantity(value, target.unit)
    return f"{target.measure} measured {measured}, target {relation} {limit}"


def _worse(target: Target, first: Measurement, second: Measurement) -> Measurement:
    """The witness that is worse for the target (ties: the lower bound, which cannot pass at_most)."""
    x, y = first.value, second.value
    assert x is not None and y is not None
    if x == y:
        return first if first.lower_bound else second
    if target.comparison is Comparison.AT_MOST:
        return first if x > y else second
    return first if x < y else second


def check_target(
    target: Target,
    measurement: Measurement | None,
    doubts: Sequence[str] = (),
    witness: Measurement | None = None,
) -> Check:
    """One target against one measurement (and its second witness, if any); doubts make it unknown."""
    pair = witnesses.pair_of(target.measure)
    shown: tuple[tuple[str, float | None], ...] = ()
    if pair is not None:
        shown = (
            (target.measure, measurement.value if measurement else None),
            (pair[1], witness.value if witness else None),
        )

    def result(
        verdict: Verdict, evidence: str, graded: Measurement | None = measurement, missing: Sequence[str] = ()
    ) -> Check:
        return Check(
            target=target.name,
            measure=target.measure,
            verdict=verdict,
            measured=graded.value if graded else None,
            limit=target.limit,
            unit=target.unit,
            comparison=target.comparison,
            weight=target.effective_weight,
            critical=target.critical,
            evidence=evidence,
            lower_bound=bool(graded and graded.lower_bound and graded.value is not None),
            source=target.source,
            description=target.description,
            witnesses=shown,
            missing=tuple(missing),
        )

    if measurement is None:
        lacking = [f"{target.measure} not measured: the run produced no {target.measure}", *doubts]
        return result(Verdict.UNKNOWN, f"not measured: no {target.measure}", None, lacking)
    has_value = measurement.value is not None and math.isfinite(measurement.value)
    if not has_value and (doubts or not measurement.missed_because):
        what = measurement.evidence or f"no measurement of {target.measure}"
        if measurement.value is not None:
            what = f"{target.measure} is not a finite number ({measurement.value})"
        return result(Verdict.UNKNOWN, what, measurement, [what, *doubts])
    if has_value:
        said = _said(target, measurement.value, measurement.lower_bound)  # type: ignore[arg-type]
        said += f" ({measurement.evidence})" if measurement.evidence else ""
    else:
        said = f"{target.measure} not measured ({measurement.evidence or 'no value'})"
    if doubts:
        return result(Verdict.UNKNOWN, f"{said}; not trusted: {'; '.join(doubts)}", missing=doubts)
    if measurement.missed_because:
        # Missed whatever the value (e.g. no promotion, established from the events): a fail even
        # when the value itself could not be measured.
        return result(Verdict.FAIL, f"{said}; missed: {measurement.missed_because}")
    graded = measurement
    if (
        pair is not None
        and witness is not None
        and witness.value is not None
        and math.isfinite(witness.value)
    ):
        contradiction = witnesses.disagreement(pair[0], measurement, witness)
        if contradiction is not None:
            why = f"the two witnesses disagree: {contradiction}"
            return result(Verdict.UNKNOWN, f"{said}; {why}", missing=(why,))
        graded = _worse(target, measurement, witness)
        if graded is not measurement:
            worse = _said(target, graded.value, graded.lower_bound)  # type: ignore[arg-type]
            said = f"{worse} by {graded.name}, the worse witness; {said}"
    value, limit = graded.value, target.limit
    assert value is not None
    within = value <= limit if target.comparison is Comparison.AT_MOST else value >= limit
    bounds = [m for m in (measurement, witness) if m is not None and m.lower_bound and m.value is not None]
    if not graded.lower_bound and bounds and target.comparison is Comparison.AT_MOST and within:
        # The graded witness passes, but the other says only "at least": it saw the system not
        # yet recovered, and nothing bounds it from above.
        why = f"{bounds[0].name} is only a lower bound ({format_quantity(bounds[0].value, target.unit)})"  # type: ignore[arg-type]
        return result(Verdict.UNKNOWN, f"{said}; {why}", graded, (why,))
    if graded.lower_bound:
        # The true value is at least `value`: over an upper limit it is certainly over; meeting a
        # lower limit it certainly meets it; anything else could go either way.
        if target.comparison is Comparison.AT_MOST and not within:
            return result(Verdict.FAIL, said, graded)
        if target.comparison is Comparison.AT_LEAST and within:
            return result(Verdict.PASS, said, graded)
        why = f"{graded.name} is only a lower bound: the system had not recovered when the fault was undone"
        return result(Verdict.UNKNOWN, f"{said}; only a lower bound", graded, (why,))
    return result(Verdict.PASS if within else Verdict.FAIL, said, graded)


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


def same_experiment(a: str, b: str) -> bool:
    """Two experiment paths name the same experiment: records keep the path the run was given
    (relative or absolute), scenarios the path relative to the project, so compare file names."""
    return a.replace("\\", "/").rsplit("/", 1)[-1] == b.replace("\\", "/").rsplit("/", 1)[-1]


def experiment_ref(scenario: Scenario, experiment_path: str) -> ExperimentRef | None:
    """The scenario's entry for this experiment, or None when it does not list it."""
    return next((ref for ref in scenario.experiments if same_experiment(ref.path, experiment_path)), None)


def targets_for(scenario: Scenario, ref: ExperimentRef) -> list[Target]:
    """The targets a run of this experiment grades: exactly those the scenario lists for it."""
    found = [scenario.target(name) for name in ref.targets]
    return [t for t in found if t is not None]


def grade(record: RunRecord, scenario: Scenario) -> Grade:
    """Grade a record against the scenario's targets for its experiment."""
    ref = experiment_ref(scenario, record.experiment_path)
    checks: list[Check] = []
    reasons: list[str] = []
    if ref is None:
        reasons.append(f"scenario {scenario.name} does not list experiment {record.experiment_path}")
    elif not ref.targets:
        reasons.append(f"scenario {scenario.name} lists experiment {ref.path} without targets")
    else:
        doubts = run_doubts(record) + scenario_doubts(record, scenario)
        for target in targets_for(scenario, ref):
            pair = witnesses.pair_of(target.measure)
            witness = measures.measure(record, pair[1]) if pair else None
            checks.append(check_target(target, measures.measure(record, target.measure), doubts, witness))
        reasons += doubts
        reasons += [
            f"target {name} is not defined in scenario {scenario.name}"
            for name in ref.targets
            if scenario.target(name) is None
        ]
    # Nothing graded, or a target the scenario does not define: at best unknown.
    verdict = overall_verdict(checks)
    if ref is None or len(checks) < len(ref.targets):
        verdict = combine([verdict, Verdict.UNKNOWN])
    if (crossed := guardrail_crossed(record)) is not None:
        reasons.append(f"aborted by a guardrail: {crossed}")
        verdict = Verdict.FAIL
    return Grade(
        run_id=record.run_id,
        scenario=scenario.name,
        experiment_title=record.experiment_title,
        verdict=verdict,
        score=round(score(checks), 1),
        checks=tuple(checks),
        reasons=tuple(reasons),
    )


def exit_code(verdict: Verdict) -> int:
    """The process exit code for a verdict: 0 pass, 1 fail, 3 unknown."""
    return {Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.UNKNOWN: 3}[verdict]
