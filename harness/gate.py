"""The pre-release gate's verdict over graded runs: pure, no I/O.

Gated checks are the critical ones: any critical check failed fails the gate (exit 1), any
critical check unknown makes it unknown (exit 3). Every run's score must also reach
`min_score`; the default, 100, demands that every check passed, and a lower minimum lets
non-critical misses through. A score short of the minimum is a failure, unless the run's
unknown checks would make up the shortfall had they passed: then the gate cannot tell (exit 3).

The scenario's experiment entries count too: a run of a `critical: true` experiment whose
grade is fail fails the gate and one graded unknown makes it unknown, whatever the minimum
score; the suite score reported is the mean of the runs' scores weighted by their experiment's
`weight`. With stored runs (`--from-runs`), every experiment the gate covers needs a run no older
than the maximum age; a missing or stale one makes the gate unknown (`gated_runs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from harness import scoring
from harness.model import Check, ExperimentRef, Grade, RunRecord, Scenario, Verdict, combine

__all__ = ["GatedRun", "Selection", "gate_verdict", "gated_runs"]


@dataclass(frozen=True, slots=True)
class GatedRun:
    """A graded run and the scenario's entry for its experiment (weight, critical), if known."""

    grade: Grade
    experiment: ExperimentRef | None = None


@dataclass(frozen=True, slots=True)
class Selection:
    """Which stored runs a gate grades: the gated ones, coverage gaps, and notes on the rest."""

    runs: tuple[tuple[RunRecord, Grade, ExperimentRef], ...]
    gaps: tuple[str, ...]  # each makes the gate at least unknown
    notes: tuple[str, ...]  # runs ignored, and why


def _names(checks: Sequence[Check]) -> str:
    return ", ".join(c.target for c in checks)


def _not_passed(grade: Grade) -> str:
    checks = [c for c in grade.checks if c.verdict is not Verdict.PASS]
    return _names(checks) or "; ".join(grade.reasons) or "no reason given"


def _gate_run(run: GatedRun, min_score: float) -> tuple[Verdict, list[str]]:
    """One run's gate verdict and why."""
    grade, experiment = run.grade, run.experiment
    critical_failed = [c for c in grade.checks if c.critical and c.verdict is Verdict.FAIL]
    if critical_failed:
        return Verdict.FAIL, [f"critical target missed: {_names(critical_failed)}"]
    if grade.verdict is Verdict.FAIL and not any(c.verdict is Verdict.FAIL for c in grade.checks):
        return Verdict.FAIL, [f"graded fail: {'; '.join(grade.reasons) or 'no reason given'}"]
    if experiment is not None and experiment.critical and grade.verdict is not Verdict.PASS:
        state = "failed" if grade.verdict is Verdict.FAIL else "is unknown"
        return grade.verdict, [f"critical experiment {experiment.path} {state}: {_not_passed(grade)}"]
    if not grade.checks:
        return Verdict.UNKNOWN, [f"nothing was checked: {'; '.join(grade.reasons) or 'no targets apply'}"]
    critical_unknown = [c for c in grade.checks if c.critical and c.verdict is Verdict.UNKNOWN]
    if critical_unknown:
        doubts = f" ({'; '.join(grade.reasons)})" if grade.reasons else ""
        return Verdict.UNKNOWN, [f"critical target unknown: {_names(critical_unknown)}{doubts}"]
    failed = [c for c in grade.checks if c.verdict is Verdict.FAIL]
    unknown = [c for c in grade.checks if c.verdict is Verdict.UNKNOWN]
    if grade.score < min_score:
        total = sum(c.weight for c in grade.checks)
        best_score = grade.score + (100.0 * sum(c.weight for c in unknown) / total if total else 0.0)
        shortfall = f"score {grade.score:.1f} below the minimum {min_score:g}"
        if best_score >= min_score:
            return Verdict.UNKNOWN, [f"{shortfall}; unknown checks could make it up: {_names(unknown)}"]
        missed = f" (missed: {_names(failed)})" if failed else ""
        return Verdict.FAIL, [f"{shortfall}{missed}"]
    tolerated = [f"tolerated non-critical miss: {_names(failed)}"] if failed else []
    tolerated += [f"tolerated non-critical unknown: {_names(unknown)}"] if unknown else []
    return Verdict.PASS, tolerated


def suite_score(runs: Sequence[GatedRun]) -> float | None:
    """The runs' scores averaged with their experiment's weight (1 without an entry); None when
    every weight is 0."""
    weights = [(r.grade.score, r.experiment.weight if r.experiment else 1) for r in runs]
    total = sum(w for _, w in weights)
    return None if total == 0 else sum(s * w for s, w in weights) / total


def gate_verdict(
    grades: Sequence[Grade | GatedRun], min_score: float = 100.0, gaps: Sequence[str] = ()
) -> tuple[Verdict, int, list[str]]:
    """The gate's verdict over graded runs, its exit code (0 pass, 1 fail, 3 unknown) and reasons.

    Fail beats unknown beats pass; no runs at all is unknown; each coverage gap is unknown.
    """
    runs = [g if isinstance(g, GatedRun) else GatedRun(g) for g in grades]
    gap_reasons = [f"not covered: {gap}" for gap in gaps]
    if not runs:
        return Verdict.UNKNOWN, scoring.exit_code(Verdict.UNKNOWN), ["no runs to gate", *gap_reasons]
    verdicts, reasons = [], []
    for run in runs:
        verdict, why = _gate_run(run, min_score)
        verdicts.append(verdict)
        reasons += [f"{run.grade.run_id}: {line}" for line in why]
    if gaps:
        verdicts.append(Verdict.UNKNOWN)
        reasons += gap_reasons
    verdict = combine(verdicts)
    if verdict is Verdict.PASS:
        lowest = min(r.grade.score for r in runs)
        reasons.insert(
            0,
            f"{len(runs)} run(s): every critical check passed, lowest score {lowest:.1f} >= {min_score:g}",
        )
    if any(r.experiment is not None for r in runs) and (weighted := suite_score(runs)) is not None:
        parts = ", ".join(
            f"{r.grade.run_id} {r.grade.score:.1f} x{r.experiment.weight if r.experiment else 1}"
            for r in runs
        )
        reasons.append(f"suite score {weighted:.1f}/100 (runs weighted by experiment weight: {parts})")
    return verdict, scoring.exit_code(verdict), reasons


def _age_in_words(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 60:.0f} minutes"


def _started(record: RunRecord) -> datetime:
    started = datetime.fromisoformat(record.started_at)
    return started if started.tzinfo is not None else started.replace(tzinfo=UTC)  # the runner writes UTC


def gated_runs(
    scenario: Scenario,
    covered: Sequence[ExperimentRef],
    runs: Sequence[tuple[RunRecord, Grade]],
    max_age_seconds: float,
    now: datetime,
) -> Selection:
    """The stored runs a gate grades: those of the covered experiments that started within
    `max_age_seconds` of `now`. Each covered experiment without such a run is a gap; runs of
    other experiments and stale runs are noted and left out."""
    gated: list[tuple[RunRecord, Grade, ExperimentRef]] = []
    notes: list[str] = []
    newest: dict[str, tuple[float, str]] = {}  # covered path -> (age of its newest run, run id)
    for record, grade in runs:
        ref = scoring.experiment_ref(scenario, record.experiment_path)
        if ref is None:
            notes.append(
                f"{record.run_id}: {record.experiment_path} is not listed by {scenario.name}; ignored"
            )
            continue
        if ref not in covered:
            notes.append(f"{record.run_id}: {ref.path} is not gated here (cadence {ref.cadence}); ignored")
            continue
        age = (now - _started(record)).total_seconds()
        if ref.path not in newest or age < newest[ref.path][0]:
            newest[ref.path] = (age, record.run_id)
        if age > max_age_seconds:
            notes.append(
                f"{record.run_id}: started {_age_in_words(age)} ago, older than the maximum age; ignored"
            )
            continue
        gated.append((record, grade, ref))
    gaps = []
    for ref in covered:
        if ref.path not in newest:
            gaps.append(f"{ref.path}: no run given")
        elif newest[ref.path][0] > max_age_seconds:
            age, run_id = newest[ref.path]
            gaps.append(
                f"{ref.path}: newest run {run_id} is {_age_in_words(age)} old, "
                f"older than the maximum age {_age_in_words(max_age_seconds)}"
            )
    return Selection(tuple(gated), tuple(gaps), tuple(notes))
