"""`harness suite`: a scenario's experiments of one cadence, graded, stored and reported together."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from harness import loading, session, suite
from harness.cli import metrics
from harness.cli._common import (
    AllOption,
    AllowProductionOption,
    CadenceOption,
    EndpointsOption,
    LocustMasterOption,
    OutOption,
    ScenarioOption,
    StoreOption,
    console,
    ensure_writable_out,
    progress,
    use_locust_master,
)
from harness.cli.core import load_endpoints
from harness.model import ExperimentRef, Grade, RunRecord, Scenario, Verdict
from harness.units import format_quantity

_MARKS = {
    Verdict.PASS: "[green]✔ pass[/green]",
    Verdict.FAIL: "[red]✘ fail[/red]",
    Verdict.UNKNOWN: "[yellow]? unknown[/yellow]",
}


def register(app: typer.Typer) -> None:
    app.command("suite")(run_suite)


def run_suite(
    scenario: ScenarioOption,
    cadence: CadenceOption = None,
    run_all: AllOption = False,
    out: OutOption = Path("reports"),
    endpoints: EndpointsOption = None,
    store_url: StoreOption = None,
    allow_production: AllowProductionOption = False,
    locust_master: LocustMasterOption = None,
    pushgateway: metrics.PushgatewayOption = None,
    textfile: metrics.TextfileOption = None,
) -> None:
    """Bring the target up, run the selected experiments one after another, grade, report, bring it down."""
    from harness import ledger, metrics_export

    use_locust_master(locust_master)
    profile = loading.load_scenario(scenario)
    refs = suite.select_experiments(profile, None if run_all else cadence or ["daily"])
    target = load_endpoints(endpoints)
    ensure_writable_out(out)
    metrics_export.check_sinks(pushgateway, textfile)
    with metrics.publishing(pushgateway, textfile, ledger.state_dir(), profile.name) as publisher:
        on_kept = publisher.run_finished if publisher is not None else None
        result = run_and_report(profile, refs, out, target, store_url, allow_production, on_kept=on_kept)
    raise typer.Exit(suite.exit_code(result))


def run_and_report(
    profile: Scenario,
    refs: Sequence[ExperimentRef],
    out: Path,
    endpoints: Mapping[str, Any] | None,
    store_url: str | None,
    allow_production: bool,
    on_kept: Callable[[RunRecord, Grade], None] | None = None,
) -> suite.SuiteResult:
    """Run a suite (harness.session.run_and_report), printing each run as it lands and the table."""
    result, index = session.run_and_report(
        profile, refs, out, endpoints, store_url, allow_production, say=console.print, progress=progress,
        on_kept=on_kept,
    )  # fmt: skip
    console.print(_table(result))
    if index is not None:
        console.print(f"report: {index}")
    return result


def _table(result: suite.SuiteResult) -> Table:
    table = Table(title=f"{result.scenario}: {_MARKS[result.verdict]}")
    for column in ("experiment", "verdict", "score", "failover", "evidence"):
        table.add_column(column)
    for record, grade in result.runs:
        failover = next((c for c in grade.checks if c.measure == "failover_seconds"), None)
        first_problem = next((c.evidence for c in grade.checks if c.verdict is not Verdict.PASS), "")
        table.add_row(
            record.experiment_title,
            _MARKS[grade.verdict],
            f"{grade.score:.0f}",
            format_quantity(failover.measured, "seconds") if failover else "-",
            (first_problem or "; ".join(grade.reasons))[:80],
        )
    return table
