"""The `harness` command: thin over the library. Parse, call, print, return the exit code.

Exit codes (DESIGN.md): 0 every gated check passed, 1 a target was missed, 2 bad input,
3 harness/environment error or verdict unknown, 130/143 interrupted after rollback.
"""

from __future__ import annotations

import sys

import typer

from harness.cli import _common, core, due, gate, history, report, safety, schedule, suite
from harness.errors import ConfigError, HarnessError

app = typer.Typer(
    name="harness",
    help="Scheduled, scored, repeatable chaos experiments for multi-region systems.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for group in (core, suite, gate, history, due, schedule, report, safety):
    group.register(app)
_common.mount_groups(app)


def main() -> None:
    """Console entry point: maps the harness's own errors to one line and an exit code."""
    try:
        code = app(standalone_mode=False)
    except ConfigError as exc:
        _common.fail(str(exc))
        code = _common.EXIT_BAD_INPUT
    except HarnessError as exc:
        _common.fail(str(exc))
        code = _common.EXIT_ERROR
    except KeyboardInterrupt:
        _common.fail("interrupted")
        code = _common.EXIT_INTERRUPTED
    except _common.usage_errors() as exc:
        exc.show()
        code = exc.exit_code
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        _common.fail("aborted")
        code = _common.EXIT_INTERRUPTED
    sys.exit(code if isinstance(code, int) else 0)
