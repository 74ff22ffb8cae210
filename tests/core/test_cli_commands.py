"""The CLI's command table: `harness <command>` registers only that command's module, and the table
names every command the modules register (a command missing from it would vanish from `harness X`)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import typer
import typer.main

from harness import cli


def _names(app: typer.Typer) -> set[str]:
    return set(typer.main.get_command(app).commands)


def test_every_registered_command_is_in_the_table_under_its_module():
    for module in set(cli.COMMAND_MODULES.values()):
        app = typer.Typer()
        app.callback()(lambda: None)  # a group even with one command, as build_app makes it
        importlib.import_module(f"harness.cli.{module}").register(app)
        expected = {name for name, owner in cli.COMMAND_MODULES.items() if owner == module}
        assert _names(app) == expected, module


def test_the_whole_app_lists_every_command_and_mounted_group():
    assert _names(cli.build_app()) == set(cli.COMMAND_MODULES) | set(cli.MOUNTED_COMMANDS)


def test_one_command_registers_only_its_module():
    assert _names(cli.build_app("report")) == {"report"}
    assert _names(cli.build_app("sandbox")) == {"proxy", "sandbox"}
    assert _names(cli.build_app("no-such-command")) == set(cli.COMMAND_MODULES) | set(cli.MOUNTED_COMMANDS)


def test_report_command_imports_no_runner_sandbox_or_clients():
    # A cold `harness report` pays only for the report code (issue 22: ≤ 0.3 s for 1,000 runs).
    probe = (
        "import sys; from harness import cli; cli.build_app('report'); "
        "heavy = [m for m in ('harness.runner', 'harness.sandbox.lifecycle', 'redis', 'psycopg', "
        "'matplotlib', 'numpy', 'chaoslib') if m in sys.modules]; print(','.join(heavy))"
    )
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == ""


def test_unknown_command_is_a_usage_error():
    done = subprocess.run(
        [sys.executable, "-m", "harness", "reprot"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "No such command" in done.stderr
