"""`harness gate`: the pre-release gate for CI, with contractual exit codes, JUnit and a summary.

Gated checks are the critical ones: any critical check failed fails the gate (exit 1), any
critical check unknown makes it unknown (exit 3). Every run's score must also reach
`--min-score`; the default, 100, demands that every check passed, and a lower minimum lets
non-critical misses through. A score short of the minimum is a failure, unless the run's
unknown checks would make up the shortfall had they passed: then the gate cannot tell (exit 3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness import loading, report, scoring, suite
from harness.cli._common import (
    AllOption,
    AllowProductionOption,
    CadenceOption,
    EndpointsOption,
    OutOption,
    ScenarioOption,
    StoreOption,
)
from harness.cli.core import load_endpoints
from harness.cli.suite import run_and_report
from harness.errors import ConfigError
from harness.gate import gate_verdict
from harness.model import Grade, Scenario
from harness.store import write_text_atomic


def register(app: typer.Typer) -> None:
    app.command("gate")(gate)


def _regrade(path: Path, profile: Scenario) -> Grade:
    record, _ = report.load_run(path)
    if record.scenario != profile.name:
        raise ConfigError(
            path, "record.scenario", f"expected a run of {profile.name!r}, got {record.scenario!r}"
        )
    return scoring.grade(record, profile)


def _default_output(scenario_name: str, filename: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in scenario_name) or "scenario"
    return Path("reports") / "gate" / safe / filename


def gate(
    scenario: ScenarioOption,
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
    if from_runs:
        grades = [_regrade(path, profile) for path in from_runs]
    else:
        refs = suite.select_experiments(profile, None if run_all else cadence or ["daily"])
        result = run_and_report(profile, refs, out, load_endpoints(endpoints), store_url, allow_production)
        if result.interrupted_exit_code is not None:
            raise typer.Exit(result.interrupted_exit_code)
        grades = list(result.grades)
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
