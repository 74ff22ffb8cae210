"""`harness init DIR`: a new project with the example scenarios and experiments to start from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli._common import EXIT_BAD_INPUT, console, fail
from harness.examples import copy_examples


def register(app: typer.Typer) -> None:
    app.command("init")(init)


def init(
    directory: Annotated[Path, typer.Argument(help="Project folder to create (must be empty or absent).")],
    force: Annotated[
        bool, typer.Option("--force", help="Copy into a non-empty folder, overwriting example files.")
    ] = False,
) -> None:
    """Copy the example scenarios/ and experiments/ into DIR, ready for `harness validate` and `run`."""
    if directory.exists() and not directory.is_dir():
        fail(f"{directory}: not a folder; give a new or empty folder")
        raise typer.Exit(EXIT_BAD_INPUT)
    if directory.is_dir() and any(directory.iterdir()) and not force:
        fail(f"{directory}: not empty; give a new or empty folder, or --force to copy the examples into it")
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        written = copy_examples(directory)
    except OSError as error:
        fail(f"{directory}: cannot write the examples: {error.strerror or error}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    scenarios = sorted(p.stem for p in written if p.parent.name == "scenarios" and p.suffix == ".yaml")
    console.print(f"{directory}: {len(written)} example files (scenarios: {', '.join(scenarios)})")
    console.print("next, from that folder:")
    console.print("  harness validate scenarios/*.yaml experiments/*.yaml")
    console.print(f"  harness run experiments/redis-primary-failure.yaml --scenario {scenarios[0]}")
