"""`harness schedule export`: the scenarios' cadences as crontab lines or Kubernetes CronJobs."""

from __future__ import annotations

import shlex
import shutil
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from harness.cli.due import load_scenarios
from harness.schedule import (
    DEFAULT_IMAGE,
    DEFAULT_NAMESPACE,
    DEFAULT_REPORTS_CLAIM,
    DEFAULT_STORE_SECRET,
    export_cron,
    export_cronjobs,
)
from harness.store import write_text_atomic

__all__ = ["register"]

schedule_app = typer.Typer(
    help="Export the scenarios' schedules for cron or Kubernetes.", no_args_is_help=True
)


class ExportFormat(StrEnum):
    CRON = "cron"
    K8S_CRONJOB = "k8s-cronjob"


def register(app: typer.Typer) -> None:
    app.add_typer(schedule_app, name="schedule")


@schedule_app.command("export")
def export(
    export_format: Annotated[ExportFormat, typer.Option("--format", help="cron or k8s-cronjob.")],
    scenario: Annotated[
        str | None, typer.Option("--scenario", "-s", help="Only this system (a name or a file); default all.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    image: Annotated[str, typer.Option(help="Container image of the harness (k8s-cronjob).")] = DEFAULT_IMAGE,
    namespace: Annotated[
        str, typer.Option(help="Namespace of the CronJobs (k8s-cronjob).")
    ] = DEFAULT_NAMESPACE,
    store_secret: Annotated[
        str,
        typer.Option(help="Secret whose key `url` holds the history URL (k8s-cronjob); '' for none."),
    ] = DEFAULT_STORE_SECRET,
    service_account: Annotated[
        str | None, typer.Option(help="Service account of the jobs' pods (k8s-cronjob).")
    ] = None,
    reports_claim: Annotated[
        str, typer.Option(help="PersistentVolumeClaim the jobs write reports to (k8s-cronjob).")
    ] = DEFAULT_REPORTS_CLAIM,
    with_locust_workers: Annotated[
        int | None,
        typer.Option(
            "--with-locust-workers",
            help="Also a Locust master and this many workers per scenario with load (k8s-cronjob).",
        ),
    ] = None,
    harness_command: Annotated[
        str | None, typer.Option(help="Command cron runs (cron); default this installation's harness.")
    ] = None,
) -> None:
    """Print one crontab line or CronJob per scenario and cadence; each runs `harness suite`.

    Suites of one cadence start in distinct minutes. With --with-locust-workers, each scenario
    with load also gets a Locust master (Deployment + Service) and N workers its jobs attach to."""
    scenarios = load_scenarios(scenario)
    project_dir = Path.cwd()
    if export_format is ExportFormat.CRON:
        installed = shutil.which("harness")
        command = harness_command or (
            shlex.quote(installed) if installed else f"{shlex.quote(sys.executable)} -m harness"
        )
        text = export_cron(scenarios, project_dir=project_dir, harness_command=command)
    else:
        text = export_cronjobs(
            scenarios,
            project_dir=project_dir,
            image=image,
            namespace=namespace,
            store_secret=store_secret or None,
            service_account=service_account,
            reports_claim=reports_claim,
            locust_workers=with_locust_workers,
        )
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_text_atomic(output, text)
        typer.echo(f"wrote {output}", err=True)
