"""`harness history`: past runs with their score, key measurements and regressions."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from harness import loading
from harness.model import Grade, RunRecord
from harness.report.regressions import Regression, find_regressions
from harness.store import open_store, parse_started_at
from harness.units import format_quantity, unit_of_measure

__all__ = ["KEY_MEASURES", "register"]

KEY_MEASURES = ("failover_seconds", "replication_lag_seconds", "rto_seconds", "lost_writes_count")
_COLUMNS = ("started (UTC)", "scenario", "experiment", "verdict", "score", "failover", "lag", "rto", "lost")


def register(app: typer.Typer) -> None:
    app.command("history")(history)


def scenario_name(name_or_path: str) -> str:
    """The stored name of a scenario given by file or name; a name without a file is kept as is."""
    path = loading.resolve_scenario_path(name_or_path)
    return loading.load_scenario(path).name if path.is_file() else name_or_path


def measured(record: RunRecord, grade: Grade, measure: str) -> float | None:
    """A run's value of `measure`: from the record, else from the check that graded it."""
    measurement = record.measurement(measure)
    if measurement is not None and measurement.value is not None:
        return measurement.value
    return next((c.measured for c in grade.checks if c.measure == measure and c.measured is not None), None)


def regressions_by_run(runs: Sequence[tuple[RunRecord, Grade]]) -> dict[str, list[Regression]]:
    """Regressions of each experiment's own history (runs newest first), by the run that showed them."""
    groups: dict[tuple[str, str], list[tuple[RunRecord, Grade]]] = defaultdict(list)
    for record, grade in reversed(runs):
        groups[(record.scenario, Path(record.experiment_path).name)].append((record, grade))
    found: dict[str, list[Regression]] = defaultdict(list)
    for history in groups.values():
        for regression in find_regressions(history):
            found[regression.run_id].append(regression)
    return found


def _regression_text(regression: Regression) -> str:
    unit = unit_of_measure(regression.measure) or ""
    return (
        f"REGRESSION {regression.measure}: median {format_quantity(regression.recent_median, unit)} "
        f"vs {format_quantity(regression.baseline_median, unit)} before (p={regression.p_value:.2g})"
    )


def _row(record: RunRecord, grade: Grade) -> list[str]:
    values = [format_quantity(measured(record, grade, m), unit_of_measure(m) or "") for m in KEY_MEASURES]
    started = f"{parse_started_at(record.started_at):%Y-%m-%d %H:%M}"
    return [
        started,
        record.scenario,
        record.experiment_title,
        str(grade.verdict),
        f"{grade.score:.1f}",
        *values,
    ]


def _as_json(record: RunRecord, grade: Grade, regressions: list[Regression]) -> dict:
    return {
        "run_id": record.run_id,
        "scenario": record.scenario,
        "experiment_path": record.experiment_path,
        "experiment_title": record.experiment_title,
        "started_at": record.started_at,
        "verdict": str(grade.verdict),
        "score": grade.score,
        "measurements": {m: measured(record, grade, m) for m in KEY_MEASURES},
        "regressions": [
            {
                "measure": r.measure,
                "recent_median": r.recent_median,
                "baseline_median": r.baseline_median,
                "p_value": r.p_value,
            }
            for r in regressions
        ],
    }


def history(
    scenario: Annotated[
        str | None, typer.Option("--scenario", "-s", help="Only this system (a name, or a scenario file).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Newest runs to show.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    store_url: Annotated[
        str | None, typer.Option("--store", envvar="HARNESS_STORE", help="History URL.")
    ] = None,
) -> None:
    """Past runs, newest first, flagging failover time or lag worse than the runs before them."""
    name = scenario_name(scenario) if scenario is not None else None
    with open_store(store_url) as store:
        runs = store.runs(name, full=False)  # all of them: regressions need the runs before those shown
    flagged = regressions_by_run(runs)
    shown = runs[:limit]
    if as_json:
        typer.echo(json.dumps([_as_json(r, g, flagged.get(r.run_id, [])) for r, g in shown], indent=2))
        return
    if not shown:
        typer.echo(f"no stored runs{f' of {name}' if name else ''}")
        return
    table = [list(_COLUMNS), *(_row(r, g) for r, g in shown)]
    widths = [max(len(row[i]) for row in table) for i in range(len(_COLUMNS))]
    for index, row in enumerate(table):
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index:
            record = shown[index - 1][0]
            for regression in flagged.get(record.run_id, []):
                typer.echo(f"  ^ {_regression_text(regression)}")
