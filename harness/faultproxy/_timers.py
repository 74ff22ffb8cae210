"""Precise deadlines for the toxic pipeline: one timerfd per event loop.

The event loops' own timers wake on whole milliseconds (libuv and epoll both count timeouts in
ms), so a 50 ms latency toxic landed 0 to 1 ms late, +0.5 ms on average. A timerfd is a kernel
high-resolution timer the loop watches like a socket: armed at an absolute CLOCK_MONOTONIC time
(what `time.monotonic` reads), it wakes the loop within tens of microseconds of the deadline.
What is left, the wake-up and scheduling delay, is measured on every firing and compensated: the
timer is armed that much early (the median of the latest delays, at most `MAX_LEAD_SECONDS`).

Linux only; where timerfd is missing `until` falls back to the loop's timers.
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import itertools
import os
import statistics
import time
import weakref
from collections import deque

CLOCK_MONOTONIC = 1
TFD_TIMER_ABSTIME = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC
PR_SET_TIMERSLACK = 29
MAX_LEAD_SECONDS = 0.0005  # never release data more than this ahead of its deadline
_DELAYS_KEPT = 31  # wake-up delays the lead is the median of


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create  # noqa: B018 - present on Linux only
        libc.timerfd_settime  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def reduce_timer_slack() -> None:
    """Ask the kernel to wake this thread's timers on time (1 µs slack instead of 50 µs)."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)


class PreciseTimer:
    """Deadlines on one loop, kept in a heap; the timerfd is armed for the earliest."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        assert _LIBC is not None
        fd = _LIBC.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self.fd = fd
        self.loop = loop
        self.lead = 0.0  # seconds armed ahead of a deadline: the measured wake-up delay
        self._delays: deque[float] = deque(maxlen=_DELAYS_KEPT)
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._armed: float | None = None  # the absolute time the timerfd fires at
        loop.add_reader(fd, self._fired)

    async def until(self, due: float) -> None:
        """Return at `due` (time.monotonic()), or up to `lead` early to make up for the wake-up."""
        while due - self.lead - time.monotonic() > 0:
            lead = self.lead
            waiter = self.loop.create_future()
            heapq.heappush(self._heap, (due, next(self._order), waiter))
            self._arm()
            await waiter
            # How late this task runs after the moment the timer was armed for (the kernel's
            # wake-up, from an idle CPU too, and the loop's hop to the task). The lead is the
            # median of the latest figures, not their mean: a loaded machine's rare long delays
            # would otherwise make most deadlines early.
            self._delays.append(time.monotonic() - (due - lead))
            self.lead = min(max(statistics.median(self._delays), 0.0), MAX_LEAD_SECONDS)

    def _arm(self) -> None:
        while self._heap and self._heap[0][2].done():  # cancelled waiters
            heapq.heappop(self._heap)
        if not self._heap:
            return
        target = max(self._heap[0][0] - self.lead, 1e-6)
        if self._armed is not None and self._armed <= target:
            return
        seconds = int(target)
        value = _Timespec(seconds, int((target - seconds) * 1e9))
        spec = _Itimerspec(_Timespec(0, 0), value)
        _LIBC.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, ctypes.byref(spec), None)
        self._armed = target

    def _fired(self) -> None:
        try:
            os.read(self.fd, 8)
        except (BlockingIOError, InterruptedError):
            return
        now = time.monotonic()
        self._armed = None
        while self._heap and (self._heap[0][2].done() or self._heap[0][0] - self.lead <= now):
            _, _, waiter = heapq.heappop(self._heap)
            if not waiter.done():
                waiter.set_result(None)
        self._arm()

    def close(self) -> None:
        self.loop.remove_reader(self.fd)
        os.close(self.fd)
        for _, _, waiter in self._heap:
            waiter.cancel()
        self._heap.clear()


_TIMERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PreciseTimer] = weakref.WeakKeyDictionary()


def timer_for(loop: asyncio.AbstractEventLoop) -> PreciseTimer | None:
    """The loop's precise timer, made on first use; None where timerfd is unavailable."""
    if _LIBC is None:
        return None
    timer = _TIMERS.get(loop)
    if timer is None:
        try:
            timer = _TIMERS[loop] = PreciseTimer(loop)
        except (OSError, TypeError):
            return None
    return timer


def close_timer(loop: asyncio.AbstractEventLoop) -> None:
    """Release the loop's timerfd (when the loop is shutting down)."""
    timer = _TIMERS.pop(loop, None)
    if timer is not None:
        timer.close()
