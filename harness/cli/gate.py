"""`harness gate`: the pre-release gate for CI, with contractual exit codes, JUnit and a summary.

Gated checks are the critical ones: any critical check failed fails the gate (exit 1), any
critical check unknown makes it unknown (exit 3). Every run's score must also reach
`--min-score`; the default, 100, demands that every check passed, and a lower minimum lets
non-critical misses through. A score short of the minimum is a failure, unless the run's
unknown checks would make up the shortfall had they passed: then the gate cannot tell (exit 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from harness import loading, report, scoring
from harness.cli._common import EXIT_BAD_INPUT, fail
from harness.errors import ConfigError
from harness.model import Check, Grade, Verdict, combine
from harness.store import write_text_atomic

__all__ = ["gate_verdict", "register"]


def register(app: typer.Typer) -> None:
    app.command("gate")(gate)


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


def _default_output(scenario_name: str, filename: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in scenario_name) or "scenario"
    return Path("reports") / "gate" / safe / filename


def gate(
    scenario: Annotated[
        str, typer.Option("--scenario", "-s", help="Target profile: a path or a name in scenarios/.")
    ],
    from_runs: Annotated[
        list[Path] | None,
        typer.Option("--from-runs", help="Grade this run.json (repeat the option for several); offline."),
    ] = None,
    min_score: Annotated[
        float, typer.Option("--min-score", min=0.0, max=100.0, help="Lowest score any run may have.")
    ] = 100.0,
    junit: Annotated[
        Path | None, typer.Option(help="JUnit XML output; default reports/gate/<scenario>/junit.xml.")
    ] = None,
    summary: Annotated[
        Path | None, typer.Option(help="Markdown summary output; default reports/gate/<scenario>/summary.md.")
    ] = None,
) -> None:
    """Gate a release on the scenario's targets: exit 0 pass, 1 target missed, 3 unknown."""
    if not from_runs:
        fail("gate: give --from-runs RUN.json (one or more run files to grade)")
        raise typer.Exit(EXIT_BAD_INPUT)
    profile = loading.load_scenario(scenario)
    grades = []
    for path in from_runs:
        record, _ = report.load_run(path)
        if record.scenario != profile.name:
            raise ConfigError(
                path, "record.scenario", f"expected a run of {profile.name!r}, got {record.scenario!r}"
            )
        grades.append(scoring.grade(record, profile))
    verdict, code, reasons = gate_verdict(grades, min_score)
    junit_path = junit or _default_output(profile.name, "junit.xml")
    summary_path = summary or _default_output(profile.name, "summary.md")
    write_text_atomic(junit_path, report.render_junit(grades))
    write_text_atomic(summary_path, report.render_summary(grades))
    for grade in grades:
        typer.echo(report.summary_line(grade))
    for reason in reasons:
        typer.echo(f"  {reason}")
    typer.echo(f"gate {verdict.upper()} (exit {code}); junit: {junit_path}, summary: {summary_path}")
    raise typer.Exit(code)
