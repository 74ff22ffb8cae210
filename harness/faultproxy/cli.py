"""`harness proxy serve`: run the fault proxy in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.errors import ConfigError, HarnessError

from ._server import DEFAULT_PORT, serve

app = typer.Typer(help="The Toxiproxy-compatible fault proxy.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """The Toxiproxy-compatible fault proxy."""


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address for the HTTP API.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for the HTTP API.")] = DEFAULT_PORT,
    config: Annotated[
        Path | None, typer.Option(help="JSON file of proxies to create at start, in /populate format.")
    ] = None,
) -> None:
    """Serve the Toxiproxy API until SIGINT or SIGTERM."""
    try:
        serve(host, port, config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except HarnessError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from None
