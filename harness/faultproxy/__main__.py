"""`python -m harness.faultproxy [--host H] [--port P] [--config FILE]`: serve in the foreground."""

import sys

from .cli import app

args = sys.argv[1:]
if args[:1] == ["serve"]:
    args = args[1:]
app(args=["serve", *args], prog_name="python -m harness.faultproxy")
