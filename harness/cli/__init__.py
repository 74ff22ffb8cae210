"""The `harness` command: thin over the library. Parse, call, print, return the exit code.

Exit codes (DESIGN.md): 0 every gated check passed, 1 a target was missed, 2 bad input,
3 harness/environment error or verdict unknown, 130/143 interrupted after rollback.

The process's signal controller (harness.interrupts) is installed around every command: a
first SIGINT or SIGTERM undoes the faults at once, whatever the command is doing, and the
command ends with one line saying what was undone and exit 130 or 143.
"""

from __future__ import annotations

import sys

import typer

from harness.cli import _common, core, due, gate, history, init, report, safety, schedule, suite
from harness.errors import ConfigError, HarnessError
from harness.interrupts import CONTROLLER, Interrupted

app = typer.Typer(
    name="harness",
    help="Scheduled, scored, repeatable chaos experiments for multi-region systems.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for group in (core, suite, gate, history, due, schedule, report, safety, init):
    group.register(app)
_common.mount_groups(app)


def main() -> None:
    """Console entry point: maps the harness's own errors to one line and an exit code."""
    with CONTROLLER.installed():
        code = _run_app()
        # Signals are deferred from here on (see _run_app): the line below always prints.
        if CONTROLLER.exit_code() is not None:
            _common.fail(CONTROLLER.summary())
            code = CONTROLLER.exit_code()
    sys.exit(code if isinstance(code, int) else 0)


def _run_app() -> int | None:
    try:
        try:
            return app(standalone_mode=False)
        finally:
            # A signal landing before this line is still caught below; after it, it is only noted.
            CONTROLLER.hold()
    except Interrupted:
        return None  # main prints what was undone
    except ConfigError as exc:
        _common.fail(str(exc))
        return _common.EXIT_BAD_INPUT
    except HarnessError as exc:
        _common.fail(str(exc))
        return _common.EXIT_ERROR
    except KeyboardInterrupt:  # a SIGINT while no controller could be installed
        _common.fail("interrupted")
        return _common.EXIT_INTERRUPTED
    except _common.usage_errors() as exc:
        exc.show()
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        _common.fail("aborted")
        return _common.EXIT_INTERRUPTED
