"""The toxic pipeline of one link: a chain of stages, oldest toxic first, ending in a writer.

Items flow as `Chunk`s (one per socket read), then `EOF` (the source closed) or a `Close`
(a toxic ends the connection). Each stage runs as a task. Rewiring cancels every stage task at
an await point, so a stage's `held` item (the unsent rest of what it was working on) is exact;
surviving stages take it back first, removed stages hand it and their inbox on in order.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._timers import timer_for
from ._toxics import Toxic

if TYPE_CHECKING:
    from ._link import Link


@dataclass(slots=True)
class Chunk:
    data: bytes
    at: float  # time.monotonic() when read, advanced by latency stages


class _Eof:
    __slots__ = ()

    def __repr__(self) -> str:
        return "EOF"


EOF = _Eof()


@dataclass(frozen=True, slots=True)
class Close:
    reset: bool


Item = Chunk | _Eof | Close


async def sleep_until(due: float) -> None:
    """Sleep until time.monotonic() reaches `due`: on the loop's timerfd (sub-millisecond, its
    wake-up delay compensated), else on the loop's timers, which wake on whole milliseconds."""
    timer = timer_for(asyncio.get_running_loop())
    if timer is not None:
        await timer.until(due)
        return
    while (remaining := due - time.monotonic()) > 0:
        await asyncio.sleep(remaining)


class Writer:
    """The end of a chain: writes items to the link's destination socket, never blocking."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.queue: deque[Item] = deque()
        self.waiting = False  # a writability callback is registered

    @property
    def idle(self) -> bool:
        return not self.queue and not self.waiting

    def push(self, item: Item) -> None:
        self.queue.append(item)
        if not self.waiting:
            self.flush()

    def flush(self) -> None:
        link = self.link
        if link.conn.closing:
            self.queue.clear()
            return
        queue, sock = self.queue, link.dst
        while queue:
            item = queue[0]
            if isinstance(item, Chunk):
                try:
                    sent = sock.send(item.data)
                except (BlockingIOError, InterruptedError):
                    if not self.waiting:
                        self.waiting = True
                        link.loop.add_writer(sock.fileno(), self._writable)
                    return
                except OSError:
                    link.conn.close()
                    return
                link.sent += sent
                link.release(sent)
                if sent < len(item.data):
                    item.data = item.data[sent:]
                    continue
                queue.popleft()
            elif item is EOF:
                queue.popleft()
                link.finish()
                return
            else:
                queue.clear()
                link.conn.close(reset=item.reset)
                return
        link.writer_idle()

    def _writable(self) -> None:
        self.waiting = False
        self.link.loop.remove_writer(self.link.dst.fileno())
        self.flush()

    def stop(self) -> None:
        if self.waiting:
            self.waiting = False
            self.link.loop.remove_writer(self.link.dst.fileno())
        self.queue.clear()


class Stage:
    """One toxic acting on one link. Its state (timers, counters) outlives restarts."""

    def __init__(self, link: Link, toxic: Toxic) -> None:
        self.link = link
        self.toxic = toxic
        self.version = -1
        self.inbox: deque[Item] = deque()
        self.held: Item | None = None
        self.next: Stage | Writer = link.writer
        self.task: asyncio.Task[None] | None = None
        self.acting = False
        self.state: dict[str, Any] = {}
        self._wake = asyncio.Event()

    def roll(self) -> None:
        """Draw whether this toxic acts on this link (per link, on attach and on update)."""
        self.version = self.toxic.version
        self.acting = random.random() < self.toxic.toxicity

    def push(self, item: Item) -> None:
        self.inbox.append(item)
        self._wake.set()

    def emit_held(self) -> None:
        item, self.held = self.held, None
        if item is not None:
            self.next.push(item)

    async def take(self) -> Item:
        """The next item, kept in `held` until the stage has passed it on."""
        while not self.inbox:
            self._wake.clear()
            await self._wake.wait()
        self.held = self.inbox.popleft()
        return self.held

    def start(self) -> None:
        run = _RUNNERS[self.toxic.type] if self.acting else _pass_through
        self.task = self.link.loop.create_task(run(self))

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None
        if self.held is not None:
            self.inbox.appendleft(self.held)
            self.held = None


async def _pass_through(stage: Stage) -> None:
    while True:
        await stage.take()
        stage.emit_held()


async def _latency(stage: Stage) -> None:
    while True:
        item = await stage.take()
        if isinstance(item, Chunk):
            attributes = stage.toxic.attributes
            jitter = attributes["jitter"]
            delay_ms = attributes["latency"] + (random.randrange(-jitter, jitter) if jitter else 0)
            due = item.at + max(delay_ms, 0) / 1000
            await sleep_until(due)
            item.at = due
        stage.emit_held()


async def _bandwidth(stage: Stage) -> None:
    while True:
        item = await stage.take()
        if isinstance(item, Chunk):
            rate = stage.toxic.attributes["rate"]  # KB/s, i.e. bytes per ms
            piece = rate * 100
            deadline = max(stage.state.get("deadline", 0.0), time.monotonic())
            while len(item.data) > piece:
                deadline += 0.1
                await sleep_until(deadline)
                stage.state["deadline"] = deadline
                stage.next.push(Chunk(item.data[:piece], item.at))
                item.data = item.data[piece:]
            deadline += len(item.data) / (rate * 1000)
            await sleep_until(deadline)
            stage.state["deadline"] = deadline
        stage.emit_held()


async def _slow_close(stage: Stage) -> None:
    while True:
        item = await stage.take()
        if item is EOF:
            await asyncio.sleep(stage.toxic.attributes["delay"] / 1000)
        stage.emit_held()


async def _timeout(stage: Stage) -> None:
    seconds = stage.toxic.attributes["timeout"] / 1000
    while True:
        if not stage.inbox:
            stage._wake.clear()
            if seconds > 0:
                try:
                    async with asyncio.timeout(seconds):
                        await stage._wake.wait()
                except TimeoutError:
                    stage.link.conn.close()
                    return
            else:
                await stage._wake.wait()
            continue
        item = stage.inbox.popleft()
        if isinstance(item, Chunk):
            stage.link.release(len(item.data))
        else:
            stage.next.push(item)


async def _reset_peer(stage: Stage) -> None:
    if "reset_at" not in stage.state:
        item = await stage.take()
        stage.held = None
        if isinstance(item, Chunk):
            stage.link.release(len(item.data))
        stage.state["reset_at"] = time.monotonic() + stage.toxic.attributes["timeout"] / 1000
    await sleep_until(stage.state["reset_at"])
    stage.link.conn.close(reset=True)


async def _slicer(stage: Stage) -> None:
    while True:
        item = await stage.take()
        if isinstance(item, Chunk):
            attributes = stage.toxic.attributes
            average, variation = attributes["average_size"], attributes["size_variation"]
            pause = attributes["delay"] / 1_000_000
            largest = average + variation
            while len(item.data) > largest:
                size = average + random.randint(-variation, variation) if variation else average
                size = min(max(size, 1), largest)
                stage.next.push(Chunk(item.data[:size], item.at))
                item.data = item.data[size:]
                if pause:
                    await asyncio.sleep(pause)
            stage.emit_held()
            if pause:
                await asyncio.sleep(pause)
        else:
            stage.emit_held()


async def _limit_data(stage: Stage) -> None:
    while True:
        item = await stage.take()
        if stage.state.get("closed"):
            stage.held = None
            if isinstance(item, Chunk):
                stage.link.release(len(item.data))
            continue
        if isinstance(item, Chunk):
            count = stage.state.get("count", 0)
            room = max(stage.toxic.attributes["bytes"] - count, 0)
            if len(item.data) > room:
                stage.link.release(len(item.data) - room)
                item.data = item.data[:room]
            stage.state["count"] = count + len(item.data)
            if item.data:
                stage.emit_held()
            stage.held = None
            if stage.state["count"] >= stage.toxic.attributes["bytes"]:
                stage.state["closed"] = True
                stage.next.push(Close(reset=False))
        else:
            stage.emit_held()


_RUNNERS: dict[str, Callable[[Stage], Coroutine[Any, Any, None]]] = {
    "latency": _latency,
    "bandwidth": _bandwidth,
    "slow_close": _slow_close,
    "timeout": _timeout,
    "reset_peer": _reset_peer,
    "slicer": _slicer,
    "limit_data": _limit_data,
    "noop": _pass_through,
}


def rewire(link: Link, old: list[Stage], toxics: list[Toxic]) -> tuple[list[Stage], bool]:
    """The stages for `toxics`, reusing `old` ones; in-flight items keep their order.

    Returns the new stages and whether a removed acting timeout toxic asks to close the connection.
    """
    for stage in old:
        stage.cancel()
    by_id = {stage.toxic.id: stage for stage in old}
    wanted = {toxic.id for toxic in toxics}
    new: list[Stage] = []
    for toxic in toxics:
        stage = by_id.get(toxic.id) or Stage(link, toxic)
        if stage.version != toxic.version:
            stage.roll()
        new.append(stage)
    close = False
    # Walk the old chain from its end: a removed stage's items are newer than everything after it.
    for index in range(len(old) - 1, -1, -1):
        stage = old[index]
        if stage.toxic.id in wanted:
            continue
        close = close or (stage.acting and stage.toxic.type == "timeout")
        after = [s for s in old[index + 1 :] if s.toxic.id in wanted]
        target: Stage | Writer
        if after:
            target = after[0]
        else:
            fresh = [s for s in new if s.toxic.id not in by_id]
            target = fresh[0] if fresh else link.writer
        target_inbox = target.inbox if isinstance(target, Stage) else target.queue
        target_inbox.extend(stage.inbox)
        stage.inbox.clear()
    for stage, following in zip(new, [*new[1:], link.writer], strict=False):
        stage.next = following
    return new, close
