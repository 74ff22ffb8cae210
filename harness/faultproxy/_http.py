"""A small HTTP/1.1 server on asyncio streams: enough for JSON API clients (keep-alive, chunked bodies)."""

from __future__ import annotations

import asyncio
import http
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
IDLE_SECONDS = 60.0


@dataclass(slots=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]


class _Malformed(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpServer:
    """Serves `handler` on one or more listening sockets; `close()` ends every connection."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def listen(self, host: str, port: int) -> int:
        """Bind host:port (port 0: any free one); returns the bound port."""
        server = await asyncio.start_server(
            self._connected, host, port, reuse_address=True, limit=MAX_HEADER_BYTES
        )
        self._servers.append(server)
        return server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            writer.close()  # the handler sees EOF and ends; one mid-request finishes it first
        if self._tasks:
            _, late = await asyncio.wait(list(self._tasks), timeout=2)
            for task in late:
                task.cancel()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                async with asyncio.timeout(IDLE_SECONDS):
                    request = await _read_request(reader)
            except _Malformed as exc:
                body = f"{exc.status} {http.HTTPStatus(exc.status).phrase}: {exc}".encode()
                writer.write(
                    _encode(Response(exc.status, body, "text/plain; charset=utf-8"), keep_alive=False)
                )
                await writer.drain()
                return
            if request is None:
                return
            response = await self._handler(request)
            keep_alive = _keep_alive(request)
            writer.write(_encode(response, keep_alive, head=request.method == "HEAD"))
            await writer.drain()
            if not keep_alive:
                return


def _keep_alive(request: Request) -> bool:
    return "close" not in request.headers.get("connection", "").lower()


def _encode(response: Response, keep_alive: bool, head: bool = False) -> bytes:
    phrase = http.HTTPStatus(response.status).phrase
    lines = [f"HTTP/1.1 {response.status} {phrase}"]
    if response.status != 204:
        lines.append(f"Content-Type: {response.content_type}")
        lines.append(f"Content-Length: {len(response.body)}")
    lines.extend(f"{k}: {v}" for k, v in response.headers.items())
    lines.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
    head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head_bytes if head or response.status == 204 else head_bytes + response.body


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise _Malformed(400, "incomplete request") from None
        return None
    except asyncio.LimitOverrunError:
        raise _Malformed(431, "headers too large") from None
    try:
        text = raw.decode("latin-1")
        request_line, *header_lines = text.split("\r\n")
        method, target, version = request_line.split(" ")
    except ValueError:
        raise _Malformed(400, "malformed request line") from None
    if not version.startswith("HTTP/1."):
        raise _Malformed(505, "unsupported HTTP version")
    headers: dict[str, str] = {}
    for line in header_lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _Malformed(400, "malformed header")
        headers[name.lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise _Malformed(400, "bad Content-Length") from None
        if length < 0:
            raise _Malformed(400, "bad Content-Length")
        if length > MAX_BODY_BYTES:
            raise _Malformed(413, "body too large")
        body = await reader.readexactly(length) if length else b""
    if version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers["connection"] = "close"
    return Request(method, target, headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts, total = [], 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            raise _Malformed(400, "bad chunk size") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(parts)
        total += size
        if size < 0 or total > MAX_BODY_BYTES:
            raise _Malformed(413, "body too large")
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise _Malformed(400, "bad chunk")
