"""`harness recover`: undo every fault an interrupted or killed run left behind."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness import ledger
from harness.cli._common import EXIT_ERROR, EXIT_PASS, console, fail


def register(app: typer.Typer) -> None:
    app.command("recover")(recover)


def recover(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="State directory holding faults.jsonl (default: $HARNESS_STATE_DIR or .harness)."
        ),
    ] = None,
) -> None:
    """Undo every fault still open in the fault ledger and report what was done."""
    state = directory or ledger.state_dir()
    results = ledger.recover(state)
    if not results:
        console.print(f"no open faults in {state / ledger.LEDGER_FILE}")
        raise typer.Exit(EXIT_PASS)
    for result in results:
        what = f"{result.fault.action} on {result.fault.target} (fault {result.fault.fault_id})"
        if result.is_undone:
            console.print(
                f"[green]undone[/green] {what} via {result.fault.undo.module}.{result.fault.undo.func}"
            )
        else:
            fail(f"could not undo {what}: {result.error}")
    failed = sum(1 for r in results if not r.is_undone)
    console.print(f"{len(results) - failed} undone, {failed} failed")
    raise typer.Exit(EXIT_ERROR if failed else EXIT_PASS)
