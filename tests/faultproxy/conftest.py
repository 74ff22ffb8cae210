"""Fixtures for the fault proxy: a server on a free port, upstreams, clients, and a leak check."""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import toxiproxy

from harness.faultproxy import FaultProxy, start_server

from .support import Api, EchoServer, ManualServer, port_of


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _describe(fds: set[str]) -> list[str]:
    out = []
    for fd in sorted(fds):
        with contextlib.suppress(OSError):
            out.append(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
    return out


@pytest.fixture(scope="session", autouse=True)
def _warm_up() -> None:
    """Start and stop one server first: the event loop library opens a few process-wide fds once."""
    start_server().stop()


@pytest.fixture(autouse=True)
def no_leaks(_warm_up: None) -> Iterator[None]:
    """Every test leaves no thread, socket, pipe or listener behind."""
    threads_before = set(threading.enumerate())
    fds_before = _open_fds()
    yield
    deadline = time.monotonic() + 3
    while True:
        gc.collect()  # client sockets (requests' responses) close when collected
        threads = [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]
        fds = _open_fds() - fds_before
        if (not threads and not fds) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not threads, f"threads left behind: {threads}"
    assert not fds, f"file descriptors left behind: {_describe(fds)}"


@pytest.fixture
def server() -> Iterator[FaultProxy]:
    with start_server() as handle:
        yield handle


@pytest.fixture
def api(server: FaultProxy) -> Iterator[Api]:
    client = Api(server.api_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def toxi(server: FaultProxy) -> toxiproxy.Toxiproxy:
    """The toxiproxy-python client, pointed at the test server."""
    client = toxiproxy.Toxiproxy()
    client.update_api_consumer("127.0.0.1", server.port)
    return client


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    upstream = EchoServer()
    try:
        yield upstream
    finally:
        upstream.close()


@pytest.fixture
def manual() -> Iterator[ManualServer]:
    upstream = ManualServer()
    try:
        yield upstream
    finally:
        upstream.close()


@pytest.fixture
def connect() -> Iterator[Callable[..., socket.socket]]:
    """connect(port_or_listen) -> a TCP_NODELAY client socket with a 5 s timeout, closed after the test."""
    sockets: list[socket.socket] = []

    def open_client(target: int | str, timeout: float = 5) -> socket.socket:
        port = target if isinstance(target, int) else port_of(target)
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sockets.append(sock)
        return sock

    yield open_client
    for sock in sockets:
        sock.close()
