"""The pre-release gate's verdict over graded runs: pure, no I/O.

Gated checks are the critical ones: any critical check failed fails the gate (exit 1), any
critical check unknown makes it unknown (exit 3). Every run's score must also reach
`min_score`; the default, 100, demands that every check passed, and a lower minimum lets
non-critical misses through. A score short of the minimum is a failure, unless the run's
unknown checks would make up the shortfall had they passed: then the gate cannot tell (exit 3).
"""

from __future__ import annotations

from collections.abc import Sequence

from harness import scoring
from harness.model import Check, Grade, Verdict, combine

__all__ = ["gate_verdict"]


def _names(checks: Sequence[Check]) -> str:
    return ", ".join(c.target for c in checks)


def _gate_run(grade: Grade, min_score: float) -> tuple[Verdict, list[str]]:
    """One run's gate verdict and why."""
    critical_failed = [c for c in grade.checks if c.critical and c.verdict is Verdict.FAIL]
    if critical_failed:
        return Verdict.FAIL, [f"critical target missed: {_names(critical_failed)}"]
    if grade.verdict is Verdict.FAIL and not any(c.verdict is Verdict.FAIL for c in grade.checks):
        return Verdict.FAIL, [f"graded fail: {'; '.join(grade.reasons) or 'no reason given'}"]
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


def gate_verdict(grades: Sequence[Grade], min_score: float = 100.0) -> tuple[Verdict, int, list[str]]:
    """The gate's verdict over graded runs, its exit code (0 pass, 1 fail, 3 unknown) and reasons.

    Fail beats unknown beats pass; no runs at all is unknown.
    """
    if not grades:
        return Verdict.UNKNOWN, scoring.exit_code(Verdict.UNKNOWN), ["no runs to gate"]
    verdicts, reasons = [], []
    for grade in grades:
        verdict, why = _gate_run(grade, min_score)
        verdicts.append(verdict)
        reasons += [f"{grade.run_id}: {line}" for line in why]
    verdict = combine(verdicts)
    if verdict is Verdict.PASS:
        lowest = min(g.score for g in grades)
        reasons.insert(
            0,
            f"{len(grades)} run(s): every critical check passed, lowest score {lowest:.1f} >= {min_score:g}",
        )
    return verdict, scoring.exit_code(verdict), reasons
