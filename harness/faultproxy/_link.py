"""One proxied connection and its two links (client→upstream is `upstream`, the reverse `downstream`).

A link with no toxics runs on the fast path: a thread moves bytes with `os.splice` through a pipe,
never copying them into Python, and checks a stop flag (and a wake eventfd) between splices. A link
with toxics is driven by the event loop (reader callback → stages → writer). Switching stops the
thread, takes back whatever it left in the pipe, and feeds it to the chain first; switching back
waits until the writer has drained. Bytes are never lost or reordered either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import select
import socket
import struct
import threading
import time
from typing import TYPE_CHECKING

from ._addresses import resolve_upstream, split_host_port
from ._pipeline import EOF, Chunk, Stage, Writer, rewire
from ._toxics import Toxic

if TYPE_CHECKING:
    from ._proxy import Proxy

log = logging.getLogger("harness.faultproxy")

READ_BYTES = 65536  # one chunk in the toxic pipeline (Toxiproxy reads 32 KiB)
PAUSE_ABOVE_BYTES = 4 << 20  # stop reading while this much is held in the chain
RESUME_BELOW_BYTES = 1 << 20
PIPE_BYTES = 1 << 20  # pipe size once a link shows bulk traffic
_SPLICE_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
_LINGER_RESET = struct.pack("ii", 1, 0)


class Link:
    """One direction of one connection."""

    def __init__(self, conn: Connection, stream: str, src: socket.socket, dst: socket.socket) -> None:
        self.conn, self.stream, self.src, self.dst = conn, stream, src, dst
        self.loop = conn.loop
        self.received = 0  # bytes read from src
        self.sent = 0  # bytes written to dst
        self.pending = 0  # bytes read but neither written nor discarded (toxic mode)
        self.stages: list[Stage] = []
        self.writer = Writer(self)
        self.reading = False
        self.paused = False
        self.src_eof = False
        self.done = False
        self.thread: threading.Thread | None = None
        self._stop = False
        self._stopped: asyncio.Future[None] | None = None
        self._pipe: tuple[int, int] | None = None
        self._wake: int | None = None
        self._residue = b""
        self._eof_pushed = False

    # -- control (event loop thread) ------------------------------------------------------------

    def start(self, toxics: list[Toxic]) -> None:
        if toxics:
            self._use_chain(toxics)
        else:
            self._start_thread()

    async def apply(self, toxics: list[Toxic]) -> None:
        """Make the link use `toxics`; returns once it does."""
        if self.done or self.conn.closing:
            return
        if self.thread is not None:
            if not toxics:
                return
            await self._stop_thread()
            if self.done or self.conn.closing:
                return
        self._use_chain(toxics)

    def _use_chain(self, toxics: list[Toxic]) -> None:
        self.stages, close = rewire(self, self.stages, toxics)
        if self._residue:
            data, self._residue = self._residue, b""
            self.pending += len(data)
            self._head().push(Chunk(data, time.monotonic()))
        if self.src_eof and self.thread is None and not self._eof_pushed:
            self._eof_pushed = True
            self._head().push(EOF)
        if close:
            self.conn.close()
            return
        for stage in self.stages:
            stage.start()
        if self.stages:
            self._read(True)
        else:
            self._read(False)
        if not self.writer.waiting:
            self.writer.flush()

    def _head(self) -> Stage | Writer:
        return self.stages[0] if self.stages else self.writer

    def _read(self, on: bool) -> None:
        want = on and not self.src_eof and not self.paused and not self.conn.closing
        if want and not self.reading:
            self.loop.add_reader(self.src.fileno(), self._readable)
        elif not want and self.reading:
            self.loop.remove_reader(self.src.fileno())
        self.reading = want

    def _readable(self) -> None:
        try:
            data = self.src.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.conn.close()
            return
        if not data:
            self.src_eof = True
            self._eof_pushed = True
            self._read(False)
            self._head().push(EOF)
            return
        self.received += len(data)
        self.pending += len(data)
        self._head().push(Chunk(data, time.monotonic()))
        if self.pending > PAUSE_ABOVE_BYTES:
            self.paused = True
            self._read(False)

    def release(self, nbytes: int) -> None:
        """`nbytes` held in the chain were written or discarded."""
        self.pending -= nbytes
        if self.paused and self.pending < RESUME_BELOW_BYTES:
            self.paused = False
            self._read(bool(self.stages))

    def writer_idle(self) -> None:
        """The writer has nothing queued: a link whose chain emptied goes back to the fast path."""
        if self.stages or self.thread is not None or self.src_eof or self.done or self.conn.closing:
            return
        self._read(False)
        self._start_thread()

    def finish(self) -> None:
        """The source's EOF reached the destination: forward the half-close."""
        self.done = True
        with contextlib.suppress(OSError):
            self.dst.shutdown(socket.SHUT_WR)
        self.conn.link_done()

    def halt(self) -> None:
        """Stop all I/O on this link (the connection is closing)."""
        self._read(False)
        self.writer.stop()
        for stage in self.stages:
            stage.cancel()
        if self.thread is not None:
            self._signal_thread()

    def release_fds(self) -> None:
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None
        if self._wake is not None:
            os.close(self._wake)
            self._wake = None

    # -- fast path -------------------------------------------------------------------------------

    def _start_thread(self) -> None:
        if self._pipe is None:
            self._pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._wake)
        self._stop = False
        self.thread = threading.Thread(
            target=self._splice, name=f"faultproxy-{self.conn.proxy.name}-{self.stream}", daemon=True
        )
        self.thread.start()

    def _signal_thread(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            os.eventfd_write(self._wake, 1)

    async def _stop_thread(self) -> None:
        self._stopped = self.loop.create_future()
        self._signal_thread()
        await asyncio.shield(self._stopped)

    def _thread_exited(self, reason: str, residue: int, eof: bool) -> None:
        thread, self.thread = self.thread, None
        if thread is not None:
            thread.join()
        if reason == "eof":
            self.src_eof = self._eof_pushed = True
            self.done = True
            self.conn.link_done()
        elif reason == "error":
            self.conn.close()
        elif not self.conn.closing:
            self.src_eof = eof
            if residue:
                self._residue = _read_exactly(self._pipe[0], residue)
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)
        self._stopped = None
        self.conn.thread_exited()

    def _splice(self) -> None:
        """Thread body: move bytes src → pipe → dst until EOF, an error, or a stop request."""
        src, dst = self.src.fileno(), self.dst.fileno()
        pipe_r, pipe_w = self._pipe
        wake = self._wake
        splice = os.splice
        readable = select.poll()
        readable.register(src, select.POLLIN)
        readable.register(wake, select.POLLIN)
        writable = select.poll()
        writable.register(dst, select.POLLOUT)
        writable.register(wake, select.POLLIN)
        size = fcntl.fcntl(pipe_w, fcntl.F_GETPIPE_SZ)
        in_pipe = 0
        eof = False
        ready = False  # the last read filled the pipe: try the next one without polling
        reason = "stopped"
        try:
            while not self._stop:
                if in_pipe == 0:
                    if eof:
                        with contextlib.suppress(OSError):
                            self.dst.shutdown(socket.SHUT_WR)
                        reason = "eof"
                        break
                    if not ready:
                        readable.poll()
                        if self._stop:
                            break
                    try:
                        in_pipe = splice(src, pipe_w, size, flags=_SPLICE_FLAGS)
                    except BlockingIOError:
                        ready = False
                        continue
                    if in_pipe == 0:
                        eof = True
                        continue
                    self.received += in_pipe
                    ready = in_pipe == size
                    if ready and size < PIPE_BYTES:
                        with contextlib.suppress(OSError):
                            size = fcntl.fcntl(pipe_w, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
                try:
                    moved = splice(pipe_r, dst, in_pipe, flags=_SPLICE_FLAGS)
                except BlockingIOError:
                    writable.poll()
                    continue
                in_pipe -= moved
                self.sent += moved
        except OSError:
            reason = "error"
        except BaseException:
            log.exception("splice thread failed")
            reason = "error"
        with contextlib.suppress(RuntimeError):  # the loop is gone only after every thread is joined
            self.loop.call_soon_threadsafe(self._thread_exited, reason, in_pipe, eof)


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
        self.closed = self.loop.create_future()
        self._reset = False
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
        """Close both sockets: FIN, or RST when `reset`. Idempotent; completes `closed`."""
        if self.closing:
            return
        self.closing = True
        self._reset = reset
        if self._dial is not None:
            self._dial.cancel()
            self._dial = None
        for link in self.links.values():
            link.halt()
        if not reset:
            for sock in self._sockets():
                _discard_unread(sock)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self.thread_exited()

    def thread_exited(self) -> None:
        if not self.closing or any(link.thread is not None for link in self.links.values()):
            return
        for sock in self._sockets():
            if self._reset:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            sock.close()
        for link in self.links.values():
            link.release_fds()
        self.proxy.connection_closed(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def _sockets(self) -> list[socket.socket]:
        return [s for s in (self.client, self.upstream) if s is not None and s.fileno() >= 0]


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
