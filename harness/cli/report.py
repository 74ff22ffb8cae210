"""`harness report`: render the report folder from run files and/or a system's stored history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness import report
from harness.cli._common import EXIT_BAD_INPUT, EXIT_ERROR, EXIT_PASS, console, ensure_writable_out, fail
from harness.errors import ConfigError, HarnessError
from harness.model import Grade, RunRecord


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)


def report_command(
    run_files: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="RUN.json...", help="run.json files written by `harness run` or `harness score`."
        ),
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(
            "--scenario", "-s", help="Add this system's stored history (a name, or a scenario file)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Report folder.")] = Path("reports"),
    store_url: Annotated[
        str | None, typer.Option("--store", envvar="HARNESS_STORE", help="History URL (with --scenario).")
    ] = None,
) -> None:
    """Write DIR/index.html, a page per run and a page per system with its history."""
    if not run_files and scenario is None:
        fail("report: give one or more run.json files, or --scenario NAME")
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        ensure_writable_out(out)
        runs = [_graded(path) for path in run_files or ()]
        history = _stored_history(scenario, store_url) if scenario is not None else []
    except ConfigError as error:
        fail(str(error))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except HarnessError as error:
        fail(str(error))
        raise typer.Exit(EXIT_ERROR) from None
    index = report.write_site(runs, out, history=history)
    for _, grade in runs:
        console.print(report.summary_line(grade))
    if scenario is not None:
        console.print(f"{len(history)} stored run(s) of {scenario}")
    console.print(f"report: {index}")
    raise typer.Exit(EXIT_PASS)


def _graded(path: Path) -> tuple[RunRecord, Grade]:
    record, grade = report.load_run(path)
    if grade is None:
        raise ConfigError(path, "grade", "missing; grade the record first with `harness score`")
    return record, grade


def _stored_history(scenario: str, store_url: str | None) -> list[tuple[RunRecord, Grade]]:
    from harness import store

    name = scenario
    if Path(scenario).is_file():  # a scenario file: its name (loading it imports the schema checker)
        from harness import loading

        name = loading.load_scenario(scenario).name
    with store.open_store(store_url) as history:
        return history.runs(name, full=False)
