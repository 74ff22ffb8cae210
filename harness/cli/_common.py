"""Shared bits of the CLI: exit codes, error output, the console, mounting the parts."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_ERROR = 0, 1, 2, 3
EXIT_INTERRUPTED = 130

console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str) -> None:
    """One line on stderr per problem (a ConfigErrors message holds several), never a traceback."""
    for line in message.splitlines() or [""]:
        print(f"harness: {line}", file=sys.stderr)


def ensure_writable_out(out: Path) -> None:
    """Refuse an --out folder that cannot be written, before any sandbox starts or fault is applied.

    The folder is created and a scratch file written and removed in it: os.access alone says yes
    to root on folders it still cannot write (a read-only mount, /proc, a path under a regular
    file). Folders the check created are removed again, so a later refusal leaves nothing behind.
    """
    from harness.errors import ConfigError

    created = [folder for folder in (out, *out.parents) if not folder.exists()]
    try:
        if out.exists() and not out.is_dir():
            raise ConfigError(out, "", "not writable: exists and is not a directory")
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".harness-write-check-"):
            pass
        accessible = os.access(out, os.W_OK | os.X_OK)  # belt and braces for odd filesystems
        for folder in created:  # deepest first
            folder.rmdir()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(out) else ""
        raise ConfigError(out, "", f"not writable: {reason}{where}") from None
    if not accessible:
        raise ConfigError(out, "", "not writable: permission denied")


def usage_errors() -> tuple[type[BaseException], ...]:
    """Usage errors from click and from typer's vendored copy; both `.show()` and carry `.exit_code`."""
    from typer._click.exceptions import ClickException as TyperClickException

    return (click.ClickException, TyperClickException)


def progress(message: str) -> None:
    console.print(f"[dim]·[/dim] {message}")


def mount_groups(app: typer.Typer) -> None:
    """Mount the command groups that live beside their library code."""
    from harness.faultproxy.cli import app as proxy_app
    from harness.sandbox.cli import app as sandbox_app

    app.add_typer(proxy_app, name="proxy", help="Run the Toxiproxy-compatible fault proxy.")
    app.add_typer(sandbox_app, name="sandbox", help="Start, inspect and stop the local multi-region sandbox.")


# Options shared by the commands that run experiments.
ScenarioOption = Annotated[
    str, typer.Option("--scenario", "-s", help="Target profile: a path or a name in scenarios/.")
]
OutOption = Annotated[Path, typer.Option("--out", help="Report folder; each run writes DIR/<run-id>/.")]
EndpointsOption = Annotated[
    Path | None, typer.Option(help="endpoints.json of a running target; default: start a sandbox.")
]
StoreOption = Annotated[str | None, typer.Option("--store", envvar="HARNESS_STORE", help="History URL.")]
AllowProductionOption = Annotated[bool, typer.Option(help="Allow faults on production targets.")]
CadenceOption = Annotated[
    list[str] | None,
    typer.Option(help="daily (default), weekly, biweekly, monthly or quarterly; repeat for several."),
]
AllOption = Annotated[bool, typer.Option("--all", help="Every experiment of the scenario.")]
LocustMasterOption = Annotated[
    str | None,
    typer.Option(
        "--locust-master",
        envvar="HARNESS_LOCUST_MASTER",
        help="HOST:PORT of a running Locust master's web UI: load runs on its workers, not locally.",
    ),
]


def use_locust_master(address: str | None) -> None:
    """Hand --locust-master to harness.actions.load (it reads HARNESS_LOCUST_MASTER); a malformed
    address is bad input now, not a failed activity mid-run."""
    if not address:
        return
    from harness.actions.load import MASTER_ENVIRONMENT, master_url
    from harness.errors import ConfigError

    try:
        master_url(address, {})
    except ConfigError:
        raise ConfigError(
            "--locust-master", "", f"expected HOST:PORT of a Locust master's web UI, got {address!r}"
        ) from None
    os.environ[MASTER_ENVIRONMENT] = address
