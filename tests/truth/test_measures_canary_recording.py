"""What the canary records for the measures: send times, a latency for every request (failures
too), and timeouts marked as such, against a real loopback listener that never answers."""

from __future__ import annotations

import itertools
import socket
import time
import urllib.error

import redis

from harness.canary import Canary, CanaryTarget, describe_failure


def test_timeouts_are_told_apart_from_other_failures() -> None:
    assert describe_failure(TimeoutError("timed out")).startswith("timeout: TimeoutError")
    assert describe_failure(redis.TimeoutError("Timeout reading from socket")).startswith("timeout: ")
    assert describe_failure(urllib.error.URLError(TimeoutError("timed out"))).startswith("timeout: ")
    assert describe_failure(ConnectionRefusedError(111, "Connection refused")).startswith("ConnectionRefused")
    try:
        try:
            raise TimeoutError("read timed out")
        except TimeoutError as exc:
            raise RuntimeError("request failed") from exc
    except RuntimeError as wrapped:
        assert describe_failure(wrapped).startswith("timeout: RuntimeError")


def test_a_silent_server_gives_timed_out_samples_with_their_latency() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # the kernel completes connections; nobody ever answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        canary = Canary(CanaryTarget("http", "silent", url=url), rate_hz=20.0, timeout_seconds=0.3)
        canary.start()
        time.sleep(1.0)
        samples = canary.stop()
    assert canary.started_detail() == {
        "region": "silent",
        "kind": "http",
        "rate_hz": 20.0,
        "timeout_seconds": 0.3,
    }
    assert len(samples) >= 2
    for sample in samples:
        assert sample["ok"] is False and sample["value"] is None
        assert sample["error"].startswith("timeout: "), sample["error"]
        assert sample["latency_seconds"] >= 0.3  # answered (failed) when the timeout fired, not before
    # One request at a time: each is sent after the previous one's answer time.
    for before, after in itertools.pairwise(samples):
        assert after["at_monotonic"] >= before["at_monotonic"] + before["latency_seconds"]
