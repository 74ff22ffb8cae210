"""The `harness` command: thin over the library. Parse, call, print, return the exit code.

Exit codes (DESIGN.md): 0 every gated check passed, 1 a target was missed, 2 bad input,
3 harness/environment error or verdict unknown, 130/143 interrupted after rollback.

The process's signal controller (harness.interrupts) is installed around every command: a
first SIGINT or SIGTERM undoes the faults at once, whatever the command is doing, and the
command ends with one line saying what was undone and exit 130 or 143.
"""

from __future__ import annotations

import importlib
import sys

import typer

from harness.cli import _common
from harness.errors import ConfigError, HarnessError
from harness.interrupts import CONTROLLER, Interrupted

# The module that registers each top-level command. `harness report` then imports the report code
# alone: a cold `harness report` must not pay for the runner, the sandbox and every client library
# (0.4 s of imports). `--help`, no command or an unknown one registers them all.
# tests/core/test_cli_commands.py checks this table against what the modules register.
COMMAND_MODULES = {
    "run": "core",
    "validate": "core",
    "score": "core",
    "export": "core",
    "suite": "suite",
    "gate": "gate",
    "history": "history",
    "due": "due",
    "schedule": "schedule",
    "report": "report",
    "recover": "safety",
    "init": "init",
}
MOUNTED_COMMANDS = ("proxy", "sandbox")  # groups that live beside their library code


def _group() -> None:
    pass


def build_app(command: str | None = None) -> typer.Typer:
    """The `harness` app with `command`'s module registered, or every module when None or unknown."""
    cli = typer.Typer(
        name="harness",
        help="Scheduled, scored, repeatable chaos experiments for multi-region systems.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    # A callback keeps the app a group when one command is registered: typer would otherwise make
    # that command the whole program and read `report` as its first argument.
    cli.callback()(_group)
    if command in COMMAND_MODULES:
        modules = [COMMAND_MODULES[command]]
    elif command in MOUNTED_COMMANDS:
        modules = []
    else:
        modules = list(dict.fromkeys(COMMAND_MODULES.values()))
    for name in modules:
        importlib.import_module(f"harness.cli.{name}").register(cli)
    if command not in COMMAND_MODULES:
        _common.mount_groups(cli)
    return cli


def _command_named(argv: list[str]) -> str | None:
    """The top-level command in `argv` (the first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith("-")), None)


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # the whole app, for CliRunner in tests and for embedding
        return build_app()
    raise AttributeError(name)


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
            return build_app(_command_named(sys.argv[1:]))(standalone_mode=False)
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
