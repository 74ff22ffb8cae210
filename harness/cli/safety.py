"""`harness recover`: undo every fault, and stop every sandbox, an interrupted or killed run left behind."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness import ledger, leftovers
from harness.cli._common import EXIT_ERROR, EXIT_PASS, StoreOption, console, fail


def register(app: typer.Typer) -> None:
    app.command("recover")(recover)


def recover(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="State directory holding faults.jsonl (default: $HARNESS_STATE_DIR or .harness)."
        ),
    ] = None,
    store_url: StoreOption = None,
) -> None:
    """Undo every fault still open in the fault ledger, stop sandboxes whose run died, store the
    records those runs had written, remove their temporary files; report what was done."""
    state = directory or ledger.state_dir()
    results = ledger.recover(state)
    if not results:
        console.print(f"no open faults in {state / ledger.LEDGER_FILE}")
    for result in results:
        what = f"{result.fault.action} on {result.fault.target} (fault {result.fault.fault_id})"
        if result.is_undone:
            console.print(
                f"[green]undone[/green] {what} via {result.fault.undo.module}.{result.fault.undo.func}"
            )
        else:
            fail(f"could not undo {what}: {result.error}")
    failed = sum(1 for r in results if not r.is_undone)
    if results:
        console.print(f"{len(results) - failed} undone, {failed} failed")
    cleanup = leftovers.clean_up(state, store_url)
    for line in cleanup.stopped:
        console.print(f"[green]stopped[/green] {line}")
    for line in cleanup.stored:
        console.print(f"[green]stored[/green] {line} in the history")
    if cleanup.removed:
        console.print(f"removed {len(cleanup.removed)} temporary file(s): {', '.join(cleanup.removed[:3])}")
    for line in cleanup.busy:
        console.print(f"left alone: {line}")
    for line in cleanup.errors:
        fail(line)
    raise typer.Exit(EXIT_ERROR if failed or cleanup.errors else EXIT_PASS)
