"""Spec §5 item 55 and the 64 MiB churn: toxics added and removed at random while bytes stream."""

from __future__ import annotations

import random
import socket
import threading
import time

from .support import Api

CHURN_BYTES = 64 << 20
TIME_LIMIT_SECONDS = 40


def _churn(api: Api, stop: threading.Event, rng: random.Random, make_toxic) -> int:
    """Add and remove toxics on proxy `a` until `stop`; returns how many changes were made."""
    live: list[str] = []
    changes = 0
    while not stop.is_set() and changes < 5000:
        if live and (len(live) >= 4 or rng.random() < 0.5):
            name = live.pop(rng.randrange(len(live)))
            assert api.delete(f"/proxies/a/toxics/{name}").status_code == 204
        else:
            name = f"t{changes}"
            body = {"name": name, "stream": rng.choice(["upstream", "downstream"]), **make_toxic(rng)}
            response = api.post("/proxies/a/toxics", body)
            assert response.status_code == 200, response.text
            live.append(name)
        changes += 1
        time.sleep(rng.uniform(0, 0.004))
    return changes


def _counter_toxic(rng: random.Random) -> dict:
    return rng.choice(
        [
            {"type": "noop"},
            {"type": "latency", "attributes": {"latency": rng.randint(0, 5)}},
            {"type": "bandwidth", "attributes": {"rate": 100_000}},
        ]
    )


def _bulk_toxic(rng: random.Random) -> dict:
    return rng.choice(
        [
            {"type": "noop"},
            {"type": "latency", "attributes": {"latency": rng.randint(0, 3), "jitter": rng.randint(0, 2)}},
            {"type": "bandwidth", "attributes": {"rate": 2_000_000}},
            {"type": "slicer", "attributes": {"average_size": 32768, "size_variation": 16384}},
            {"type": "slow_close", "attributes": {"delay": 10}},
            {"type": "noop", "toxicity": 0.5},
        ]
    )


def _stream_through(
    client: socket.socket, payload: bytes, api: Api, make_toxic, seed: int
) -> tuple[bytes, int]:
    """Send `payload` through the echo path while churning; returns what came back and the change count."""
    stop = threading.Event()
    changes: list[int] = []
    churner = threading.Thread(
        target=lambda: changes.append(_churn(api, stop, random.Random(seed), make_toxic))
    )
    sender = threading.Thread(target=client.sendall, args=(payload,))
    churner.start()
    sender.start()
    received = bytearray()
    deadline = time.monotonic() + TIME_LIMIT_SECONDS
    client.settimeout(TIME_LIMIT_SECONDS)
    try:
        while len(received) < len(payload) and time.monotonic() < deadline:
            part = client.recv(1 << 20)
            if not part:
                break
            received += part
    finally:
        stop.set()
        churner.join()
        sender.join(TIME_LIMIT_SECONDS)
    return bytes(received), changes[0] if changes else 0


def test_55_sequential_counters_survive_toxic_churn(api, echo, connect):
    created = api.create_proxy("a", echo.port)
    client = connect(created["listen"])
    payload = b"".join(i.to_bytes(2, "big") for i in range(65535))
    received, changes = _stream_through(client, payload, api, _counter_toxic, seed=55)
    assert len(received) == len(payload)
    counters = [int.from_bytes(received[i : i + 2], "big") for i in range(0, len(received), 2)]
    assert counters == list(range(65535))
    assert changes > 0


def test_64_mib_stream_survives_toxic_churn(api, echo, connect):
    created = api.create_proxy("a", echo.port)
    client = connect(created["listen"])
    payload = random.Random(64).randbytes(CHURN_BYTES)
    received, changes = _stream_through(client, payload, api, _bulk_toxic, seed=64)
    assert len(received) == len(payload), f"{len(received)} of {len(payload)} bytes after {changes} changes"
    if received != payload:
        first = next(i for i in range(len(payload)) if received[i] != payload[i])
        raise AssertionError(f"stream differs from byte {first} after {changes} changes")
    assert changes >= 10
