"""`harness sandbox up | status | down`: a thin shell over harness.sandbox.

Exit codes: 0 ok, 2 bad input (the scenario names file:field), 3 environment problem (a
binary or port missing, a component that failed to start) or, for `status`, a component
that is not running.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from harness.errors import ConfigError, HarnessError

DEFAULT_DIR = Path(".harness/sandbox")

app = typer.Typer(help="The local multi-region sandbox: real servers on 127.0.0.1.", no_args_is_help=True)
# Wide when piped, so that tables in logs and CI output are not cut.
_out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

DirOption = Annotated[Path, typer.Option("--dir", help="Sandbox directory (state, logs, endpoints.json).")]


def _fail(error: HarnessError) -> typer.Exit:
    _err.print(str(error).replace("\n", " "), markup=False)
    return typer.Exit(2 if isinstance(error, ConfigError) else 3)


def _endpoint_rows(endpoints: dict) -> list[tuple[str, str, str]]:
    rows = []
    for region, entry in endpoints["regions"].items():
        label = f"{region} (primary)" if entry.get("primary") else region
        for key in ("api_url", "redis_url", "postgres_dsn"):
            if key in entry:
                rows.append((label, key, entry[key]))
    for key in ("postgres_topology", "redis_sentinels", "faultproxy_url", "prometheus_url"):
        if key in endpoints:
            value = endpoints[key]
            rows.append(("", key, ", ".join(value) if isinstance(value, list) else value))
    return rows


@app.command()
def up(
    scenario: Annotated[str, typer.Option("--scenario", help="Scenario name or file.")],
    directory: DirOption = DEFAULT_DIR,
    components: Annotated[
        list[str] | None, typer.Option("--component", help="Start only these kinds (repeatable).")
    ] = None,
    postgres_topology: Annotated[
        str | None,
        typer.Option(
            "--postgres-topology",
            help="primary-standby or active-active, instead of the scenario's (as an experiment may ask).",
        ),
    ] = None,
) -> None:
    """Start the scenario's sandbox and print its endpoints (also written to DIR/endpoints.json, and
    as a Chaos Toolkit var-file to DIR/ctk-vars.json)."""
    from harness import sandbox
    from harness.loading import POSTGRES_TOPOLOGIES, load_scenario
    from harness.sandbox.topology import experiment_scenario

    try:
        loaded = load_scenario(scenario)
        if postgres_topology is not None:
            if postgres_topology not in POSTGRES_TOPOLOGIES:
                raise ConfigError(
                    "--postgres-topology",
                    "",
                    f"expected one of {', '.join(POSTGRES_TOPOLOGIES)}, got {postgres_topology!r}",
                )
            loaded = experiment_scenario(loaded, {"postgres_topology": postgres_topology})
        started = sandbox.up(
            loaded,
            directory,
            components=components or None,
            progress=lambda line: _out.print(f"[green]✓[/] {line}"),
        )
    except HarnessError as error:
        raise _fail(error) from None
    from harness.varfile import VAR_FILE  # written by sandbox.up, for plain `chaos run --var-file`

    var_file = started.directory / VAR_FILE
    table = Table(title=f"sandbox {loaded.name}: {started.directory / 'endpoints.json'}")
    for column in ("region", "endpoint", "address"):
        table.add_column(column)
    for row in _endpoint_rows(dict(started.endpoints)):
        table.add_row(*row)
    _out.print(table)
    _out.print(f"Chaos Toolkit var-file: {var_file} (chaos run --var-file {var_file} ...)")


@app.command()
def status(
    directory: DirOption = DEFAULT_DIR,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show every component's state (running, dead, stale); exit 3 unless all run."""
    from harness import sandbox

    report = sandbox.status(directory)
    if as_json:
        print(json.dumps([asdict(s) for s in report], indent=2))
    elif not report:
        _out.print(f"no sandbox in {directory}")
    else:
        table = Table()
        for column in ("component", "kind", "region", "pid", "port", "state", "detail"):
            table.add_column(column)
        colours = {"running": "green", "stale": "yellow", "dead": "red"}
        for s in report:
            state = f"[{colours[s.state]}]{s.state}[/]"
            table.add_row(s.name, s.kind, s.region, str(s.pid), str(s.port), state, s.detail)
        _out.print(table)
    if not report or any(s.state != "running" for s in report):
        raise typer.Exit(3)


@app.command()
def down(directory: DirOption = DEFAULT_DIR) -> None:
    """Stop every component by its recorded process group and remove the sandbox's files (logs stay)."""
    from harness import sandbox

    stopped = sandbox.down(directory)
    _out.print(f"stopped {len(stopped)} components" + (f": {', '.join(stopped)}" if stopped else ""))
