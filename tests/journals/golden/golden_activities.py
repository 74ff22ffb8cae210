"""Plain Python activities for the golden Chaos Toolkit journals (no harness code): each golden
experiment is a real `chaos run` of these, see regenerate.py."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

# A file in the run's working folder stands for "the system is broken".
BROKEN = Path("system-broken")


def is_healthy() -> bool:
    """True while the system is not broken."""
    return not BROKEN.exists()


def break_system() -> dict:
    """Break the system (the fault)."""
    BROKEN.write_text("broken\n")
    return {"broken": True}


def repair_system() -> dict:
    """Undo break_system. Safe to call twice."""
    BROKEN.unlink(missing_ok=True)
    return {"broken": False}


def fail_action(reason: str = "the API refused the fault") -> dict:
    """An action that raises, the way a misconfigured fault does."""
    raise RuntimeError(reason)


def health_endpoint() -> bool:
    """True while healthy; raises while broken, as an unreachable health endpoint does (the probe
    fails instead of missing its tolerance)."""
    if BROKEN.exists():
        raise ConnectionError("health endpoint unreachable")
    return True


def measured(value: float) -> float:
    """A probe returning a number, as a probe named like a measure does."""
    return value


def measured_mapping(**values: float) -> dict:
    """A probe returning a mapping of measure names to numbers."""
    return dict(values)


def interrupt_run() -> dict:
    """Send SIGINT to this chaos process, as Ctrl-C does mid-method."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(1.0)  # the signal lands here
    return {"interrupted": False}
