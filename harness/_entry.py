"""The `harness` console script.

The signal controller is installed before the CLI is imported, so a SIGINT or SIGTERM at any
moment, even while importing, ends with one line and exit 130 or 143, never a traceback or a
silent death by the signal.
"""

from __future__ import annotations

import sys

from harness.interrupts import CONTROLLER, Interrupted


def main() -> None:
    with CONTROLLER.installed():
        try:
            from harness.cli import main as cli_main
        except (Interrupted, KeyboardInterrupt):
            CONTROLLER.hold()
            print(
                f"harness: {CONTROLLER.summary() if CONTROLLER.signal_name else 'interrupted'}",
                file=sys.stderr,
            )
            sys.exit(CONTROLLER.exit_code() or 130)
        cli_main()
