"""`harness gate`: the pre-release gate for CI, with contractual exit codes, JUnit and a summary.

Gated checks are the critical ones: any critical check failed fails the gate (exit 1), any
critical check unknown makes it unknown (exit 3). Every run's score must also reach
`--min-score`; the default, 100, demands that every check passed, and a lower minimum lets
non-critical misses through. A score short of the minimum is a failure, unless the run's
unknown checks would make up the shortfall had they passed: then the gate cannot tell (exit 3).
A critical experiment graded fail or unknown fails or blocks the gate whatever the minimum.

With --from-runs (run files) or --from-store (the history, e.g. a team's PostgreSQL), every
experiment of the chosen cadences needs a run no older than --max-age
(default 7d); a missing or stale one makes the gate unknown, and runs of other experiments are
ignored with a note.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from harness import loading, report, scoring, suite, units
from harness.cli._common import (
    AllOption,
    AllowProductionOption,
    CadenceOption,
    EndpointsOption,
    OutOption,
    ScenarioOption,
    StoreOption,
    ensure_writable_out,
)
from harness.cli.core import load_endpoints
from harness.cli.suite import run_and_report
from harness.errors import ConfigError
from harness.gate import GatedRun, gate_verdict, gated_runs
from harness.model import Grade, RunRecord, Scenario
from harness.store import write_text_atomic


def register(app: typer.Typer) -> None:
    app.command("gate")(gate)


def _regrade(path: Path, profile: Scenario) -> tuple[RunRecord, Grade]:
    record, _ = report.load_run(path)
    if record.scenario != profile.name:
        raise ConfigError(
            path, "record.scenario", f"expected a run of {profile.name!r}, got {record.scenario!r}"
        )
    return record, scoring.grade(record, profile)


def _stored_runs(profile: Scenario, store_url: str | None, since: datetime) -> list[tuple[RunRecord, Grade]]:
    """The scenario's stored runs since `since`, graded again against today's scenario (as run files
    are): one history shared by a team's runners gates a release wherever the gate runs."""
    from harness.store import open_store

    with open_store(store_url) as history:
        return [
            (record, scoring.grade(record, profile)) for record, _ in history.runs(profile.name, since=since)
        ]


def _max_age(text: str) -> float:
    """--max-age in seconds: a duration with its unit (7d, 36h), more than zero."""
    try:
        seconds = units.parse_duration(text)
    except ValueError as error:
        raise ConfigError("--max-age", "", str(error)) from None
    if seconds <= 0:
        raise ConfigError("--max-age", "", f"expected a positive duration such as 7d or 36h, got {text!r}")
    return seconds


def _default_output(scenario_name: str, filename: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in scenario_name) or "scenario"
    return Path("reports") / "gate" / safe / filename


def gate(
    scenario: ScenarioOption,
    from_runs: Annotated[
        list[Path] | None,
        typer.Option("--from-runs", help="Grade this run.json (repeat the option for several); offline."),
    ] = None,
    from_store: Annotated[
        bool,
        typer.Option(
            "--from-store",
            help="Grade the scenario's runs in the history (--store), e.g. the team's; offline.",
        ),
    ] = False,
    min_score: Annotated[
        float, typer.Option("--min-score", min=0.0, max=100.0, help="Lowest score any run may have.")
    ] = 100.0,
    junit: Annotated[
        Path | None, typer.Option(help="JUnit XML output; default reports/gate/<scenario>/junit.xml.")
    ] = None,
    summary: Annotated[
        Path | None, typer.Option(help="Markdown summary output; default reports/gate/<scenario>/summary.md.")
    ] = None,
    max_age: Annotated[
        str, typer.Option("--max-age", help="With --from-runs: the oldest run that counts, e.g. 7d, 36h.")
    ] = "7d",
    cadence: CadenceOption = None,
    run_all: AllOption = False,
    out: OutOption = Path("reports"),
    endpoints: EndpointsOption = None,
    store_url: StoreOption = None,
    allow_production: AllowProductionOption = False,
) -> None:
    """Gate a release on the scenario's targets: exit 0 pass, 1 target missed, 3 unknown.

    Runs the scenario's experiments (daily by default) on a fresh sandbox or the target given
    with --endpoints, or grades stored runs offline with --from-runs.
    """
    profile = loading.load_scenario(scenario)
    refs = suite.select_experiments(profile, None if run_all else cadence or ["daily"])
    notes: tuple[str, ...] = ()
    gaps: tuple[str, ...] = ()
    if from_runs or from_store:
        oldest = _max_age(max_age)
        now = datetime.now(UTC)
        graded = [_regrade(path, profile) for path in from_runs or ()]
        if from_store:
            graded += _stored_runs(profile, store_url, now - timedelta(seconds=oldest))
        selection = gated_runs(profile, refs, graded, oldest, now)
        runs = [GatedRun(grade, ref) for _, grade, ref in selection.runs]
        notes, gaps = selection.notes, selection.gaps
    else:
        target = load_endpoints(endpoints)
        ensure_writable_out(out)
        result = run_and_report(profile, refs, out, target, store_url, allow_production)
        if result.interrupted_exit_code is not None:
            raise typer.Exit(result.interrupted_exit_code)
        runs = [
            GatedRun(grade, scoring.experiment_ref(profile, record.experiment_path))
            for record, grade in result.runs
        ]
    grades = [run.grade for run in runs]
    verdict, code, reasons = gate_verdict(runs, min_score, gaps)
    junit_path = junit or _default_output(profile.name, "junit.xml")
    summary_path = summary or _default_output(profile.name, "summary.md")
    write_text_atomic(junit_path, report.render_junit(grades))
    write_text_atomic(summary_path, report.render_summary(grades))
    for grade in grades:
        typer.echo(report.summary_line(grade))
    for reason in reasons:
        typer.echo(f"  {reason}")
    for note in notes:
        typer.echo(f"  note: {note}")
    typer.echo(f"gate {verdict.upper()} (exit {code}); junit: {junit_path}, summary: {summary_path}")
    raise typer.Exit(code)
