"""`harness due`: which experiments are due, from the stored history and each cadence."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from harness import loading
from harness.errors import ConfigError
from harness.model import Scenario
from harness.schedule import DueItem, due_experiments
from harness.store import open_store, parse_started_at

__all__ = ["last_runs_by_reference", "load_scenarios", "register"]

_SUFFIXES = (".yaml", ".yml", ".json")


def register(app: typer.Typer) -> None:
    app.command("due")(due)


def load_scenarios(scenario: str | None) -> list[Scenario]:
    """The scenario given (a name or a file), or every scenario file in scenarios/."""
    if scenario is not None:
        return [loading.load_scenario(scenario)]
    paths = sorted(
        path
        for directory in loading.SCENARIO_DIRS
        if Path(directory).is_dir()
        for path in Path(directory).iterdir()
        if path.suffix in _SUFFIXES
    )
    if not paths:
        raise ConfigError(
            "/".join(loading.SCENARIO_DIRS), "", "no scenario files found here; give --scenario NAME_OR_FILE"
        )
    return [loading.load_scenario(path) for path in paths]


def last_runs_by_reference(scenario: Scenario, stored: Mapping[str, datetime]) -> dict[str, datetime | None]:
    """Each experiment's newest run, matching stored paths to the scenario's references.

    A stored path matches a reference when it is the same string or the same file; failing
    both, when the file names agree (as scoring matches experiments).
    """
    scenario_path = Path(scenario.path)
    found: dict[str, datetime | None] = {}
    for ref in scenario.experiments:
        resolved = loading.resolve_experiment_path(scenario_path, ref.path).resolve()
        same = [at for path, at in stored.items() if path == ref.path or Path(path).resolve() == resolved]
        if not same:
            same = [at for path, at in stored.items() if Path(path).name == Path(ref.path).name]
        found[ref.path] = max(same, default=None)
    return found


def _parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        return parse_started_at(text)
    except ValueError:
        raise ConfigError(
            "--now", "", f"expected an ISO 8601 time such as 2025-01-31T02:00Z, got {text!r}"
        ) from None


def _line(item: DueItem) -> str:
    if item.last_run_at is None:
        when = "never run"
    else:
        when = f"last run {item.last_run_at:%Y-%m-%d %H:%M}, due since {item.due_since:%Y-%m-%d %H:%M} UTC"
    return f"{item.scenario}  {item.experiment_path}  {item.cadence}  {when}"


def due(
    scenario: Annotated[
        str | None, typer.Option("--scenario", "-s", help="Only this system (a name or a file); default all.")
    ] = None,
    now: Annotated[str | None, typer.Option(help="Judge at this ISO 8601 time instead of now.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of lines.")] = False,
    store_url: Annotated[
        str | None, typer.Option("--store", envvar="HARNESS_STORE", help="History URL.")
    ] = None,
) -> None:
    """List the experiments whose cadence has a slot since their last stored run, most overdue first."""
    moment = _parse_now(now)
    scenarios = load_scenarios(scenario)
    items: list[DueItem] = []
    with open_store(store_url) as store:
        for profile in scenarios:
            last_runs = last_runs_by_reference(profile, store.last_runs(profile.name))
            items += due_experiments(profile, last_runs, moment)
    if as_json:
        typer.echo(json.dumps([item.to_dict() for item in items], indent=2))
    elif not items:
        typer.echo(f"nothing is due at {moment:%Y-%m-%d %H:%M} UTC")
    else:
        for item in items:
            typer.echo(_line(item))
