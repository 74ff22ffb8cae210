"""The PostgreSQL canary gives up on a server that stops answering mid-connection.

statement_timeout is the server's own: a frozen server (or a link that holds its bytes) never
fires it, and the canary thread would wait for ever, leaving a silent gap in the record. Here a
loopback relay in front of the session's real PostgreSQL holds every byte once frozen.
(Lives beside the store tests for their PostgreSQL server fixture.)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from harness.canary import CanaryTarget, _PostgresRequest, describe_failure


class _Relay:
    """Forwards loopback TCP to `upstream` until frozen; frozen, it holds every byte."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.frozen = threading.Event()
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            server = socket.create_connection(self.upstream, timeout=5)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            while self.frozen.is_set() and not self.stopped.is_set():
                time.sleep(0.05)
            try:
                sink.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()


@pytest.fixture
def relay(postgres_server: str) -> Iterator[_Relay]:
    host_port = postgres_server.rsplit("@", 1)[1]
    host, port = host_port.split(":")
    relay = _Relay((host, int(port)))
    try:
        yield relay
    finally:
        relay.close()


def test_a_frozen_server_fails_the_request_as_a_timeout_within_its_limit(relay: _Relay) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{relay.port}/postgres"
    request = _PostgresRequest(CanaryTarget("postgres", "eu", dsn=dsn), timeout_seconds=0.5)
    try:
        request("before", "1")  # connected and answering
        relay.frozen.set()
        started = time.monotonic()
        with pytest.raises(Exception) as failure:
            request("during", "2")
        waited = time.monotonic() - started
        assert 0.5 <= waited < 1.5, waited
        assert describe_failure(failure.value).startswith("timeout: "), describe_failure(failure.value)
        relay.frozen.clear()
        request("after", "3")  # a fresh connection once the server answers again
    finally:
        relay.frozen.clear()
        request.close()
