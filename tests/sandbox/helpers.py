"""Bounded polling and process checks shared by the sandbox tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psutil

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout_seconds: float = 10.0, interval_seconds: float = 0.05) -> T:
    """The first truthy result of `check` within `timeout_seconds`; AssertionError with the last result."""
    deadline = time.monotonic() + timeout_seconds
    result = check()
    while not result:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_seconds} s; last result {result!r}")
        time.sleep(interval_seconds)
        result = check()
    return result


def processes_mentioning(directory: Path) -> list[psutil.Process]:
    """Live processes whose command line names something inside `directory`."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if any(str(directory) in part for part in process.info["cmdline"] or ()):
            found.append(process)
    return found
