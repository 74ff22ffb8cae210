"""`harness run`, `harness validate`, `harness score`: one experiment, checked and graded."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Annotated

import typer

from harness import loading, report, runner, scoring, store
from harness.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_PASS,
    AllowProductionOption,
    EndpointsOption,
    OutOption,
    ScenarioOption,
    StoreOption,
    console,
    fail,
    progress,
)
from harness.errors import ConfigError
from harness.model import Grade, RunRecord
from harness.store import Store


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("validate")(validate)
    app.command("score")(score)


def load_endpoints(path: Path | None) -> dict | None:
    """The endpoints file of an already running target, or None to start a sandbox."""
    if path is None:
        return None
    document = loading.read_document(path)
    if not isinstance(document, dict):
        raise ConfigError(path, "", "expected a mapping of endpoints (see sandbox endpoints.json)")
    return document


def keep_run(record: RunRecord, grade: Grade, out: Path, history: Store, indent: str = "") -> None:
    """Write the run's outputs, remember it in the history and print its verdict and report path."""
    paths = report.write_run(record, grade, out)
    history.save(record, grade)
    console.print(f"{indent}{report.summary_line(grade)}")
    for reason in grade.reasons:
        console.print(f"{indent}  [yellow]![/yellow] {reason}")
    console.print(f"{indent}report: {paths.html}")


def finish_run(record: RunRecord, grade: Grade, out: Path, store_url: str | None) -> int:
    """Keep the run (outputs, history, verdict line); returns the exit code."""
    with store.open_store(store_url) as history:
        keep_run(record, grade, out, history)
    return runner.interrupted_exit_code(record) or scoring.exit_code(grade.verdict)


def run(
    experiment: Annotated[Path, typer.Argument(help="Experiment file (YAML or JSON).")],
    scenario: ScenarioOption,
    out: OutOption = Path("reports"),
    endpoints: EndpointsOption = None,
    store_url: StoreOption = None,
    allow_production: AllowProductionOption = False,
) -> int:
    """Run one experiment against the scenario's target, grade it and write the report."""
    profile = loading.load_scenario(scenario)
    context = runner.RunContext(
        scenario=profile,
        out_dir=out,
        endpoints=load_endpoints(endpoints),
        allow_production=allow_production,
        progress=progress,
    )
    from harness import locking

    try:
        with locking.target_lock(context.state_dir, profile.name, store_url):
            record = runner.run_experiment(experiment, context)
    except runner.Terminated:
        fail("terminated (SIGTERM)")
        raise typer.Exit(128 + signal.SIGTERM) from None
    grade = scoring.grade(record, profile)
    raise typer.Exit(finish_run(record, grade, out, store_url))


def validate(files: Annotated[list[Path], typer.Argument(help="Scenario or experiment files.")]) -> None:
    """Check scenario and experiment files; one line per problem."""
    problems = 0
    for path in files:
        try:
            kind = loading.validate_file(path)
        except ConfigError as exc:
            fail(str(exc))
            problems += 1
            continue
        console.print(f"[green]ok[/green] {path} ({kind})")
    raise typer.Exit(EXIT_BAD_INPUT if problems else EXIT_PASS)


def score(
    run_file: Annotated[Path, typer.Argument(help="A run.json written by `harness run`.")],
    scenario: ScenarioOption,
    out: OutOption = Path("reports"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the grade as JSON.")] = False,
) -> None:
    """Grade a stored run again against (possibly new) targets, offline."""
    record, _ = report.load_run(run_file)
    grade = scoring.grade(record, loading.load_scenario(scenario))
    report.write_run(record, grade, out)
    if as_json:
        print(json.dumps(grade.to_dict(), indent=2))
    else:
        console.print(report.summary_line(grade))
    raise typer.Exit(scoring.exit_code(grade.verdict))
