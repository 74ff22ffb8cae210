"""A proxy: its listener, its live connections and its toxics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Any

from ._addresses import format_address, resolve_listen, split_host_port
from ._errors import ApiError
from ._link import Connection
from ._toxics import Toxic

log = logging.getLogger("harness.faultproxy")

_ACCEPTS_PER_WAKEUP = 64


class Proxy:
    """One listen address forwarding to one upstream through a chain of toxics per direction."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str, listen: str, upstream: str) -> None:
        self.loop = loop
        self.name, self.listen, self.upstream = name, listen, upstream
        self.enabled = False
        self.toxics: list[Toxic] = []
        self.connections: set[Connection] = set()
        self.accepted_total = 0
        self.closed_bytes: dict[tuple[str, str], int] = {}  # (stream, received|sent) of closed links
        self._listener: socket.socket | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [toxic.to_dict() for toxic in self.ordered_toxics()],
        }

    def ordered_toxics(self) -> list[Toxic]:
        """Upstream toxics first, then downstream, each in creation order."""
        return self.toxics_for("upstream") + self.toxics_for("downstream")

    def toxics_for(self, stream: str) -> list[Toxic]:
        return [toxic for toxic in self.toxics if toxic.stream == stream]

    def find_toxic(self, name: str) -> Toxic:
        for toxic in self.toxics:
            if toxic.name == name:
                return toxic
        raise ApiError(404, "toxic not found")

    # -- listener ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind `listen` and accept; `listen` becomes the bound address. Raises a 500 on failure."""
        host, port = split_host_port(self.listen, "listen", allow_port_zero=True)
        try:
            family, address, port = await resolve_listen(host, port)
        except OSError as exc:
            raise ApiError(500, f"listen tcp {self.listen}: lookup {host}: {exc}") from None
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(1024)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise ApiError(500, f"listen tcp {format_address(address, port)}: bind: {reason}") from None
        self._listener = sock
        self.listen = format_address(*sock.getsockname()[:2])
        self.enabled = True
        self.loop.add_reader(sock.fileno(), self._accept)

    def stop(self) -> None:
        """Close the listener, then every connection."""
        self.enabled = False
        if self._listener is not None:
            self.loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
        self.close_connections()

    def close_connections(self) -> None:
        for conn in list(self.connections):
            conn.close()

    @property
    def running(self) -> bool:
        return self._listener is not None

    def _accept(self) -> None:
        listener = self._listener
        for _ in range(_ACCEPTS_PER_WAKEUP):
            if listener is None:
                return
            try:
                client, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("proxy %s: accept failed: %s", self.name, exc)
                return
            client.setblocking(False)
            with contextlib.suppress(OSError):
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(self, client)
            self.connections.add(conn)
            self.accepted_total += 1
            conn.open(self.upstream)

    def connection_closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        for stream, link in conn.links.items():
            for kind, value in (("received", link.received), ("sent", link.sent)):
                self.closed_bytes[stream, kind] = self.closed_bytes.get((stream, kind), 0) + value

    def bytes_total(self, stream: str, kind: str) -> int:
        live = sum(getattr(c.links[stream], kind) for c in self.connections if c.links)
        return self.closed_bytes.get((stream, kind), 0) + live

    # -- toxics -----------------------------------------------------------------------------------

    def apply_toxics(self, stream: str) -> None:
        """Give every live link of `stream` the current chain."""
        toxics = self.toxics_for(stream)
        for conn in list(self.connections):
            if conn.links and not conn.closing:
                conn.links[stream].apply(toxics)
