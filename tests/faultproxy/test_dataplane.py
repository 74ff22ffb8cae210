"""Spec §5 items 38, 54, 56, 57, and the fast path: bytes, switching, metrics."""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time

from .support import Api, eof_within, port_of, rtt_seconds


def _echo_bulk(client: socket.socket, payload: bytes) -> bytes:
    sender = threading.Thread(target=client.sendall, args=(payload,))
    sender.start()
    received = bytearray()
    while len(received) < len(payload):
        part = client.recv(1 << 20)
        assert part, "connection closed mid-transfer"
        received += part
    sender.join()
    return bytes(received)


def test_38_no_toxics_passes_bytes_and_is_fast(api: Api, echo, connect):
    created = api.create_proxy("a", echo.port)
    client = connect(created["listen"])
    payload = os.urandom(1_000_000)
    assert _echo_bulk(client, payload) == payload
    assert statistics.median(rtt_seconds(client) for _ in range(50)) < 0.005


def test_54_toxic_hits_live_connection_and_removal_releases_held_data(api, echo, connect):
    created = api.create_proxy("a", echo.port)
    client = connect(created["listen"])
    assert rtt_seconds(client) < 0.05
    api.add_toxic("a", "latency", attributes={"latency": 100})
    assert rtt_seconds(client) >= 0.095
    api.post("/proxies/a/toxics/latency_downstream", {"attributes": {"latency": 1000}})
    client.sendall(b"held")
    time.sleep(0.2)
    assert api.delete("/proxies/a/toxics/latency_downstream").status_code == 204
    returned = time.monotonic()
    client.settimeout(1)
    assert client.recv(10) == b"held"
    assert time.monotonic() - returned < 0.05 + 0.05
    assert rtt_seconds(client) < 0.05


def test_56_toxics_survive_disable_and_enable(api, echo, connect):
    created = api.create_proxy("a", echo.port)
    api.add_toxic("a", "latency", attributes={"latency": 100})
    api.post("/proxies/a", {"enabled": False})
    api.post("/proxies/a", {"enabled": True})
    assert [t["name"] for t in api.get("/proxies/a/toxics").json()] == ["latency_downstream"]
    assert rtt_seconds(connect(created["listen"])) >= 0.095


def test_57_delete_proxy_with_held_data(api, echo, manual, connect):
    held = api.create_proxy("held", echo.port)
    api.add_toxic("held", "latency", attributes={"latency": 10_000})
    blackhole = api.create_proxy("blackhole", manual.port)
    api.add_toxic("blackhole", "timeout", stream="upstream", attributes={"timeout": 0})
    held_client = connect(held["listen"])
    held_client.sendall(b"x" * 1000)
    black_client = connect(blackhole["listen"])
    black_upstream = manual.accept()
    black_client.sendall(b"y" * 1000)
    time.sleep(0.1)
    for name, client in (("held", held_client), ("blackhole", black_client)):
        start = time.monotonic()
        assert api.delete(f"/proxies/{name}").status_code == 204
        assert time.monotonic() - start < 1
        eof_within(client, 1)
    eof_within(black_upstream, 1)


def test_switching_paths_keeps_a_stream_intact(api, echo, connect):
    """Toxics added and removed between and during bulk transfers: nothing lost, nothing reordered."""
    created = api.create_proxy("a", echo.port)
    client = connect(created["listen"])
    payload = os.urandom(4 << 20)
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(_echo_bulk(client, payload)))
    reader.start()
    for round_ in range(6):
        stream = ("upstream", "downstream")[round_ % 2]
        api.add_toxic("a", "noop", name=f"n{round_}", stream=stream)
        api.add_toxic(
            "a", "slicer", name=f"s{round_}", attributes={"average_size": 4096, "size_variation": 100}
        )
        api.delete(f"/proxies/a/toxics/n{round_}")
        api.delete(f"/proxies/a/toxics/s{round_}")
    reader.join(20)
    assert result == [payload]


def test_half_close_reaches_upstream(api, manual, connect):
    created = api.create_proxy("a", manual.port)
    client = connect(created["listen"])
    upstream = manual.accept()
    client.sendall(b"request")
    client.shutdown(socket.SHUT_WR)
    received = b""
    while part := upstream.recv(100):
        received += part
    assert received == b"request"


def test_upstream_close_reaches_client_in_toxic_mode(api, manual, connect):
    created = api.create_proxy("a", manual.port)
    api.add_toxic("a", "noop")
    client = connect(created["listen"])
    upstream = manual.accept()
    upstream.sendall(b"bye")
    upstream.close()
    assert client.recv(10) == b"bye"
    eof_within(client, 1)


def test_metrics_count_bytes_connections_and_toxics(api, echo, connect):
    created = api.create_proxy("a", echo.port)
    api.add_toxic("a", "noop", stream="upstream")
    client = connect(created["listen"])
    for _ in range(10):
        rtt_seconds(client, b"12345")
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.text
    labels = f'proxy="a",listener="{created["listen"]}",upstream="{created["upstream"]}"'
    for direction in ("upstream", "downstream"):
        assert f'toxiproxy_proxy_received_bytes_total{{direction="{direction}",{labels}}} 50' in text
        assert f'toxiproxy_proxy_sent_bytes_total{{direction="{direction}",{labels}}} 50' in text
    assert 'toxiproxy_proxy_connections_total{proxy="a"} 1' in text
    assert 'toxiproxy_proxy_active_connections{proxy="a"} 1' in text
    assert 'toxiproxy_proxy_active_toxics{direction="upstream",proxy="a",type="noop"} 1' in text


def test_stop_closes_live_connections(echo):
    from harness.faultproxy import start_server

    with start_server() as server:
        api = Api(server.api_url)
        created = api.create_proxy("a", echo.port)
        api.add_toxic("a", "latency", stream="upstream", attributes={"latency": 5})
        api.close()
        clients = [socket.create_connection(("127.0.0.1", port_of(created["listen"]))) for _ in range(20)]
        for client in clients:
            rtt_seconds(client)
    try:
        for client in clients:
            eof_within(client, 1)
    finally:
        for client in clients:
            client.close()
