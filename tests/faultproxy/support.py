"""Test helpers for the fault proxy: an API client, upstream servers, socket timing."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests


class Api:
    """Raw HTTP against the server; methods return the `requests.Response`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json=json, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def create_proxy(self, name: str, upstream: str | int, **fields: Any) -> dict[str, Any]:
        if isinstance(upstream, int):
            upstream = f"127.0.0.1:{upstream}"
        fields.setdefault("listen", "127.0.0.1:0")
        response = self.post("/proxies", {"name": name, "upstream": upstream, **fields})
        assert response.status_code == 201, response.text
        return response.json()

    def add_toxic(self, proxy: str, type_: str, **fields: Any) -> dict[str, Any]:
        response = self.post(f"/proxies/{proxy}/toxics", {"type": type_, **fields})
        assert response.status_code == 200, response.text
        return response.json()

    def close(self) -> None:
        self.session.close()


class EchoServer:
    """An upstream that echoes every byte, served by one selector thread."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(512)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._conns: dict[socket.socket, bytearray] = {}
        self._running = True
        self._thread = threading.Thread(target=self._run, name="test-echo", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._running:
            for key, events in self._selector.select():
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    return
                else:
                    self._serve(key.fileobj, events)

    def _accept(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                conn, _ = self.listener.accept()
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._conns[conn] = bytearray()
                self._selector.register(conn, selectors.EVENT_READ, "conn")
                self.accepted += 1

    def _serve(self, conn: socket.socket, events: int) -> None:
        backlog = self._conns[conn]
        try:
            if events & selectors.EVENT_READ and len(backlog) < 4 << 20:
                data = conn.recv(262144)
                if not data:
                    self._drop(conn)
                    return
                backlog += data
            if backlog:
                sent = conn.send(backlog)
                del backlog[:sent]
        except BlockingIOError:
            pass
        except OSError:
            self._drop(conn)
            return
        mask = selectors.EVENT_READ if len(backlog) < 4 << 20 else 0
        if backlog:
            mask |= selectors.EVENT_WRITE
        self._selector.modify(conn, mask, "conn")

    def _drop(self, conn: socket.socket) -> None:
        self._selector.unregister(conn)
        del self._conns[conn]
        conn.close()

    def close(self) -> None:
        self._running = False
        self._wake_w.send(b"x")
        self._thread.join(5)
        for conn in list(self._conns):
            conn.close()
        self._selector.close()
        self.listener.close()
        self._wake_r.close()
        self._wake_w.close()


class ManualServer:
    """An upstream whose accepted sockets the test drives itself."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(512)
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []

    def accept(self, timeout: float = 5) -> socket.socket:
        self.listener.settimeout(timeout)
        conn, _ = self.listener.accept()
        conn.settimeout(timeout)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sockets.append(conn)
        return conn

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.listener.close()


def port_of(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def refuses(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def rtt_seconds(sock: socket.socket, payload: bytes = b"x") -> float:
    """One echo round trip."""
    start = time.perf_counter()
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        part = sock.recv(len(payload) - len(received))
        assert part, "connection closed during a round trip"
        received += part
    assert received == payload
    return time.perf_counter() - start


def eof_within(sock: socket.socket, seconds: float) -> float:
    """Read until EOF (discarding data); returns the seconds it took. Fails on timeout."""
    start = time.perf_counter()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"no EOF within {seconds} s")
    return time.perf_counter() - start


def wait_for(predicate: Callable[[], bool], timeout: float = 5, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
