"""Shared bits of the CLI: exit codes, error output, the console, mounting the parts."""

from __future__ import annotations

import sys

import click
import typer
from rich.console import Console

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_ERROR = 0, 1, 2, 3
EXIT_INTERRUPTED = 130

console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str) -> None:
    """One line on stderr, never a traceback."""
    print(f"harness: {message}", file=sys.stderr)


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
