"""The toxic pipeline's precise deadlines (timerfd): order, cancellation, the early-release bound."""

from __future__ import annotations

import asyncio
import time

import pytest

from harness.faultproxy import _timers
from harness.faultproxy._pipeline import sleep_until

pytestmark = pytest.mark.skipif(_timers._LIBC is None, reason="no timerfd (not Linux)")


def test_deadlines_fire_in_order_never_before_due_less_the_lead_and_survive_cancellation() -> None:
    async def main() -> tuple[list[int], list[float], float]:
        loop = asyncio.get_running_loop()
        timer = _timers.timer_for(loop)
        assert timer is not None and timer is _timers.timer_for(loop)  # one per loop
        start = time.monotonic()
        woke: list[int] = []
        early: list[float] = []

        async def wait(index: int, due: float) -> None:
            await sleep_until(due)
            early.append(due - time.monotonic())
            woke.append(index)

        dues = [start + 0.002 * (5 - i) for i in range(5)]  # added latest first
        tasks = [loop.create_task(wait(i, due)) for i, due in enumerate(dues)]
        doomed = loop.create_task(sleep_until(start + 0.001))
        await asyncio.sleep(0)
        doomed.cancel()  # a cancelled waiter must not stop the others
        await asyncio.gather(*tasks)
        lead = timer.lead
        _timers.close_timer(loop)
        assert loop not in _timers._TIMERS
        return woke, early, lead

    woke, early, lead = asyncio.run(main())
    assert woke == [4, 3, 2, 1, 0]
    assert 0.0 <= lead <= _timers.MAX_LEAD_SECONDS
    assert all(e <= _timers.MAX_LEAD_SECONDS + 1e-6 for e in early)  # never released earlier than that
