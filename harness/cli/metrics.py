"""Verdicts as metrics from the CLI: `--pushgateway` / `--textfile` on run and suite, and
`harness export metrics` from the history (harness.metrics_export does the work)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from harness import metrics_export, store
from harness.cli._common import EXIT_ERROR, StoreOption, console, fail

PushgatewayOption = Annotated[
    str | None,
    typer.Option(
        "--pushgateway",
        envvar="HARNESS_PUSHGATEWAY",
        help="Push verdicts, measurements and fault windows to this Prometheus Pushgateway (URL).",
    ),
]
TextfileOption = Annotated[
    Path | None,
    typer.Option(
        "--textfile", help="Write verdicts and measurements to this node-exporter textfile (*.prom)."
    ),
]

export_app = typer.Typer(help="Export stored runs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")


@contextlib.contextmanager
def publishing(
    pushgateway: str | None, textfile: Path | None, state_dir: Path, scenario: str
) -> Iterator[metrics_export.Publisher | None]:
    """metrics_export.publishing, saying a failed push on stderr."""
    with metrics_export.publishing(pushgateway, textfile, state_dir, scenario, say=fail) as publisher:
        yield publisher


@export_app.command("metrics")
def export_metrics(
    scenario: Annotated[
        str | None, typer.Option("--scenario", "-s", help="Only this scenario's runs.")
    ] = None,
    store_url: StoreOption = None,
    pushgateway: PushgatewayOption = None,
    textfile: TextfileOption = None,
) -> None:
    """The latest stored run of every experiment as Prometheus metrics: pushed, written to a
    textfile, or printed (neither option)."""
    metrics_export.check_sinks(pushgateway, textfile)
    with store.open_store(store_url) as history:
        runs = history.runs(scenario, full=False)
    latest: dict[tuple[str, str], tuple] = {}
    for record, grade in runs:  # newest first
        latest.setdefault(
            (record.scenario, metrics_export.experiment_name(record.experiment_path)), (record, grade)
        )
    if pushgateway is None and textfile is None:
        sys.stdout.buffer.write(metrics_export.exposition(metrics_export.run_families(list(latest.values()))))
        return
    publisher = metrics_export.Publisher(pushgateway, textfile, say=fail)
    for record, grade in reversed(list(latest.values())):
        publisher.run_finished(record, grade)
    if publisher.problems:
        raise typer.Exit(EXIT_ERROR)
    console.print(f"exported the latest run of {len(latest)} experiment(s)")
