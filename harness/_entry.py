"""The `harness` console script: a Ctrl-C while the CLI is still importing exits 130 quietly."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from harness.cli import main as cli_main
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        sys.exit(130)
    cli_main()
