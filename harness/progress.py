"""Progress on long work: what is being waited for, and how long a suite still has to go.

`WaitNotice` prints what the run waits for once a wait has lasted `NOTICE_SECONDS` without any
other line (and again every `REPEAT_SECONDS`). `expected_seconds` estimates an experiment's
duration from its past runs (median) or, without history, from the waits it declares.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["NOTICE_SECONDS", "WaitNotice", "declared_wait_seconds", "expected_seconds", "format_duration"]

NOTICE_SECONDS = 5.0
REPEAT_SECONDS = 30.0
# Overhead of a run besides its declared waits: canary baseline, fault effect proofs, settle, record.
RUN_OVERHEAD_SECONDS = 4.0


def format_duration(seconds: float) -> str:
    """`75` reads "1m15s", `8.2` reads "8s"."""
    seconds = max(0, round(seconds))
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def _number(value: Any) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0  # a ${substituted} pause: unknown until the run; counted as nothing


def declared_wait_seconds(experiment: Mapping[str, Any]) -> float:
    """Seconds an experiment asks to wait: every pause of its method and rollbacks."""
    total = 0.0
    for activity in [*(experiment.get("method") or []), *(experiment.get("rollbacks") or [])]:
        if isinstance(activity, Mapping):
            pauses = activity.get("pauses") or {}
            if isinstance(pauses, Mapping):
                total += _number(pauses.get("before")) + _number(pauses.get("after"))
    return total


def expected_seconds(experiment: Mapping[str, Any], past_durations: Iterable[float]) -> float:
    """The median of past runs' durations, else the declared waits plus a run's overhead."""
    past = [d for d in past_durations if d and d > 0]
    if past:
        return statistics.median(past)
    return declared_wait_seconds(experiment) + RUN_OVERHEAD_SECONDS


class WaitNotice:
    """Says what is being waited for when nothing else was printed for a while.

    `say` prints a progress line (and restarts the quiet period); `waiting_for` names the
    current wait. A daemon thread prints "waiting for X (N s so far)" when the quiet period
    passes NOTICE_SECONDS, and again every REPEAT_SECONDS."""

    def __init__(self, progress: Callable[[str], None], notice_seconds: float = NOTICE_SECONDS) -> None:
        self._progress = progress
        self._notice_seconds = notice_seconds
        self._lock = threading.Lock()
        self._what = ""
        self._since = time.monotonic()
        self._last_line = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="wait-notice", daemon=True)

    def __enter__(self) -> WaitNotice:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=1)

    def say(self, message: str) -> None:
        with self._lock:
            self._last_line = time.monotonic()
        self._progress(message)

    def waiting_for(self, what: str) -> None:
        with self._lock:
            if what != self._what:
                self._what, self._since = what, time.monotonic()
                self._last_line = self._since

    def _watch(self) -> None:
        told_at: float | None = None
        told_what = ""
        while not self._stop.wait(0.25):
            with self._lock:
                what, since, last = self._what, self._since, self._last_line
            now = time.monotonic()
            if what != told_what:
                told_at, told_what = None, what
            if not what or now - last < self._notice_seconds:
                continue
            if told_at is None or now - told_at >= REPEAT_SECONDS:
                told_at = now
                self._progress(f"waiting for {what} ({format_duration(now - since)} so far)")
