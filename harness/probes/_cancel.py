"""Stopping background probes early: an interrupted run must not wait for them to run out.

A probe stops when the run is cancelled (`harness.interrupts.cancelled()`: the first SIGINT or
SIGTERM, or a guardrail abort) or when ``<run_dir>/stop`` exists (for a plain `chaos run`, or
another process). Background probes call `wait` (or `stop_requested`) at least every 100 ms
and return what they have.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness import interrupts

__all__: list[str] = []  # private to the probes package

STOP_FILE = "stop"
CHECK_SECONDS = 0.1  # how often a waiting probe looks: a cancelled probe returns within this


def stop_requested(configuration: Mapping[str, Any] | None = None) -> bool:
    """True once the run is cancelled or ``<run_dir>/stop`` exists."""
    if interrupts.cancelled():
        return True
    run_dir = (configuration or {}).get("run_dir")
    return bool(run_dir) and (Path(run_dir) / STOP_FILE).exists()


def wait(seconds: float, configuration: Mapping[str, Any] | None = None) -> bool:
    """Sleep up to `seconds`, looking every 100 ms; True when a stop was requested meanwhile."""
    deadline = time.monotonic() + max(0.0, seconds)
    while True:
        if stop_requested(configuration):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        interrupts.sleep(min(CHECK_SECONDS, left))
