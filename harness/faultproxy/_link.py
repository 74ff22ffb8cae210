"""One proxied connection and its two links (client→upstream is `upstream`, the reverse `downstream`).

A link with no toxics runs on the fast path: when its source is readable, the event loop moves
the bytes with `os.splice` through a pipe straight to the destination, never copying them into
Python (one thread and epoll serve every link, so hundreds of connections cost no thread switches).
A link with toxics runs the toxic pipeline instead (reader callback → stages → writer). Switching
to the pipeline takes back whatever sits in the pipe and feeds it to the chain first; switching back
waits until the writer has drained. Everything runs on the loop thread, so a switch is immediate
and bytes are never lost or reordered.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._addresses import resolve_upstream, split_host_port
from ._pipeline import EOF, Chunk, Stage, Writer, rewire
from ._toxics import Toxic

if TYPE_CHECKING:
    from ._proxy import Proxy


READ_BYTES = 65536  # one chunk in the toxic pipeline (Toxiproxy reads 32 KiB)
PAUSE_ABOVE_BYTES = 4 << 20  # stop reading while this much is held in the chain
RESUME_BELOW_BYTES = 1 << 20
PIPE_BYTES = 1 << 20  # pipe size once a link shows bulk traffic
SPLICES_PER_WAKEUP = 16  # bounds how long one bulk link holds the loop (~16 MiB)
_SPLICE_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
_LINGER_RESET = struct.pack("ii", 1, 0)


class Link:
    """One direction of one connection."""

    def __init__(self, conn: Connection, stream: str, src: socket.socket, dst: socket.socket) -> None:
        self.conn, self.stream, self.src, self.dst = conn, stream, src, dst
        self.loop = conn.loop
        self.src_fd, self.dst_fd = src.fileno(), dst.fileno()
        self.received = 0  # bytes read from src
        self.sent = 0  # bytes written to dst
        self.pending = 0  # bytes read but neither written nor discarded (toxic mode)
        self.stages: list[Stage] = []
        self.writer = Writer(self)
        self.paused = False
        self.src_eof = False
        self.done = False
        self.fast = False
        self._src_watch: Callable[[], None] | None = None
        self._dst_watch: Callable[[], None] | None = None
        self._pipe: tuple[int, int] | None = None
        self._pipe_size = 0
        self._in_pipe = 0

    # -- watching the sockets ---------------------------------------------------------------------

    def _watch_src(self, callback: Callable[[], None] | None) -> None:
        if callback == self._src_watch:
            return
        if callback is None:
            self.loop.remove_reader(self.src_fd)
        else:
            self.loop.add_reader(self.src_fd, callback)
        self._src_watch = callback

    def _watch_dst(self, callback: Callable[[], None] | None) -> None:
        if callback == self._dst_watch:
            return
        if callback is None:
            self.loop.remove_writer(self.dst_fd)
        else:
            self.loop.add_writer(self.dst_fd, callback)
        self._dst_watch = callback

    # -- control ----------------------------------------------------------------------------------

    def start(self, toxics: list[Toxic]) -> None:
        if toxics:
            self._use_chain(toxics)
        else:
            self._start_fast()

    def apply(self, toxics: list[Toxic]) -> None:
        """Make the link use `toxics`, at once."""
        if self.done or self.conn.closing:
            return
        if not self.fast:
            self._use_chain(toxics)
            return
        if not toxics:
            return
        residue = self._stop_fast()
        self._use_chain(toxics)
        if residue:
            self.pending += len(residue)
            self._head().push(Chunk(residue, time.monotonic()))
        if self.src_eof:
            self._head().push(EOF)

    def _use_chain(self, toxics: list[Toxic]) -> None:
        self.stages, close = rewire(self, self.stages, toxics)
        if close:
            self.conn.close()
            return
        for stage in self.stages:
            stage.start()
        self._read(bool(self.stages))
        if not self.writer.waiting:
            self.writer.flush()

    def _head(self) -> Stage | Writer:
        return self.stages[0] if self.stages else self.writer

    def _read(self, on: bool) -> None:
        want = on and not self.src_eof and not self.paused and not self.conn.closing
        self._watch_src(self._readable if want else None)

    def _readable(self) -> None:
        try:
            data = self.src.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.conn.close()
            return
        if not data:
            self._src_ended()
            return
        self.received += len(data)
        self.pending += len(data)
        self._head().push(Chunk(data, time.monotonic()))
        if self.pending > PAUSE_ABOVE_BYTES:
            self.paused = True
            self._read(False)

    def _src_ended(self) -> None:
        self.src_eof = True
        self._read(False)
        self._head().push(EOF)

    def release(self, nbytes: int) -> None:
        """`nbytes` held in the chain were written or discarded."""
        self.pending -= nbytes
        if self.paused and self.pending < RESUME_BELOW_BYTES:
            self.paused = False
            self._read(bool(self.stages))

    def writer_idle(self) -> None:
        """The writer has nothing queued: a link whose chain emptied goes back to the fast path."""
        if self.stages or self.fast or self.src_eof or self.done or self.conn.closing:
            return
        self._start_fast()

    def finish(self) -> None:
        """The source's EOF reached the destination: forward the half-close."""
        self.done = True
        with contextlib.suppress(OSError):
            self.dst.shutdown(socket.SHUT_WR)
        self.conn.link_done()

    def halt(self) -> None:
        """Stop all I/O on this link (the connection is closing)."""
        self._watch_src(None)
        self._watch_dst(None)
        self.writer.stop()
        for stage in self.stages:
            stage.cancel()
        self.fast = False

    def release_fds(self) -> None:
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None

    # -- fast path --------------------------------------------------------------------------------

    def _start_fast(self) -> None:
        if self._pipe is None:
            self._pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._pipe_size = fcntl.fcntl(self._pipe[1], fcntl.F_GETPIPE_SZ)
        self.fast = True
        self._watch_src(self._fast_readable)

    def _stop_fast(self) -> bytes:
        """Leave the fast path; returns the bytes still in the pipe (the chain's first chunk)."""
        self._watch_src(None)
        self._watch_dst(None)
        self.fast = False
        residue = _read_exactly(self._pipe[0], self._in_pipe) if self._in_pipe else b""
        self._in_pipe = 0
        return residue

    def _fast_readable(self) -> None:
        splice, src, pipe_w = os.splice, self.src_fd, self._pipe[1]
        for _ in range(SPLICES_PER_WAKEUP):
            try:
                moved = splice(src, pipe_w, self._pipe_size - self._in_pipe, flags=_SPLICE_FLAGS)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.conn.close()
                return
            if moved == 0:
                self.src_eof = True
                self._watch_src(None)
                if self._in_pipe == 0:
                    self.finish()
                else:
                    self._fast_flush()
                return
            self.received += moved
            self._in_pipe += moved
            full = self._in_pipe == self._pipe_size
            if not self._fast_flush():
                return
            if not full:
                return
            if self._pipe_size < PIPE_BYTES:
                with contextlib.suppress(OSError):
                    self._pipe_size = fcntl.fcntl(self._pipe[1], fcntl.F_SETPIPE_SZ, PIPE_BYTES)

    def _fast_flush(self) -> bool:
        """Empty the pipe into dst; False (and wait for writability) when dst is full."""
        splice, pipe_r, dst = os.splice, self._pipe[0], self.dst_fd
        while self._in_pipe:
            try:
                moved = splice(pipe_r, dst, self._in_pipe, flags=_SPLICE_FLAGS)
            except (BlockingIOError, InterruptedError):
                self._watch_src(None)
                self._watch_dst(self._fast_writable)
                return False
            except OSError:
                self.conn.close()
                return False
            self._in_pipe -= moved
            self.sent += moved
        return True

    def _fast_writable(self) -> None:
        if not self._fast_flush():
            return
        self._watch_dst(None)
        if self.src_eof:
            self.finish()
        else:
            self._watch_src(self._fast_readable)


def _read_exactly(fd: int, nbytes: int) -> bytes:
    parts = []
    while nbytes > 0:
        part = os.read(fd, nbytes)
        if not part:
            break
        parts.append(part)
        nbytes -= len(part)
    return b"".join(parts)


class Connection:
    """A client socket, its upstream socket once dialled, and the two links between them."""

    def __init__(self, proxy: Proxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.loop = proxy.loop
        self.client = client
        self.upstream: socket.socket | None = None
        self.links: dict[str, Link] = {}
        self.closing = False
        self._dial: asyncio.Task[None] | None = None

    def open(self, upstream: str) -> None:
        self._dial = self.loop.create_task(self._open(upstream))

    async def _open(self, upstream: str) -> None:
        sock = await _dial(upstream)
        self._dial = None
        if self.closing:
            if sock is not None:
                sock.close()
            return
        if sock is None:
            self.close()
            return
        self.upstream = sock
        self.links = {
            "upstream": Link(self, "upstream", self.client, sock),
            "downstream": Link(self, "downstream", sock, self.client),
        }
        for stream, link in self.links.items():
            link.start(self.proxy.toxics_for(stream))

    def link_done(self) -> None:
        if all(link.done for link in self.links.values()):
            self.close()

    def close(self, reset: bool = False) -> None:
        """Close both sockets now: FIN, or RST when `reset`. Idempotent."""
        if self.closing:
            return
        self.closing = True
        if self._dial is not None:
            self._dial.cancel()
            self._dial = None
        for link in self.links.values():
            link.halt()
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            if reset:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            else:
                _discard_unread(sock)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for link in self.links.values():
            link.release_fds()
        self.proxy.connection_closed(self)


def _discard_unread(sock: socket.socket) -> None:
    """Read what is left, so close() sends FIN rather than RST (bounded)."""
    for _ in range(64):
        try:
            if not sock.recv(65536):
                return
        except OSError:
            return


async def _dial(upstream: str) -> socket.socket | None:
    loop = asyncio.get_running_loop()
    try:
        host, port = split_host_port(upstream, "upstream", allow_port_zero=False)
        targets = await resolve_upstream(host, port)
    except Exception:
        return None
    for family, address in targets:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, address)
        except OSError:
            sock.close()
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    return None
