"""Watchers that turn a system's own announcements into timestamped run events.

Redis Sentinel publishes every state change (``+sdown``, ``+odown``, ``+switch-master``...)
on its Pub/Sub channels; subscribing to every Sentinel gives detection and promotion times
without polling. The first Sentinel to announce an event wins.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import redis

SENTINEL_CHANNELS = (
    "+sdown",
    "-sdown",
    "+odown",
    "-odown",
    "+new-epoch",
    "+try-failover",
    "+elected-leader",
    "+selected-slave",
    "+promoted-slave",
    "+failover-end",
    "+switch-master",
    "+convert-to-slave",
    "-failover-abort-not-elected",
    "+failover-state-reconf-slaves",
)


class SentinelWatcher:
    """Subscribes to every Sentinel and records what they announce, with monotonic times."""

    def __init__(self, sentinels: Sequence[str], max_duration_seconds: float = 3600.0) -> None:
        self._sentinels = list(sentinels)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._seen: set[tuple[str, str]] = set()
        self._max_duration_seconds = max_duration_seconds
        self._threads = [
            threading.Thread(
                target=self._listen, args=(address,), name=f"sentinel-watch-{address}", daemon=True
            )
            for address in self._sentinels
        ]

    def start(self) -> SentinelWatcher:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[dict[str, Any]]:
        """Stop listening; returns the events seen, oldest first."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        return self.events()

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return sorted(self._events, key=lambda e: e["at_monotonic"])

    def _record(self, address: str, channel: str, message: str) -> None:
        key = (channel, message)
        with self._lock:
            if key in self._seen:
                return  # the same announcement from another Sentinel
            self._seen.add(key)
            detail: dict[str, Any] = {"message": message}
            parts = message.split()
            if channel == "+switch-master" and len(parts) == 5:
                detail["old_primary"] = f"{parts[1]}:{parts[2]}"
                detail["new_primary"] = f"{parts[3]}:{parts[4]}"
            self._events.append(
                {
                    "kind": f"sentinel.{channel}",
                    "source": f"sentinel {address}",
                    "at_monotonic": time.monotonic(),
                    "detail": detail,
                }
            )

    def _listen(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        started = time.monotonic()
        while not self._stop.is_set() and time.monotonic() - started < self._max_duration_seconds:
            client = redis.Redis(host=host, port=int(port), socket_timeout=1.0, socket_connect_timeout=1.0)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(*SENTINEL_CHANNELS)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.1)
                    if message and message["type"] == "message":
                        self._record(address, message["channel"].decode(), message["data"].decode())
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                self._stop.wait(0.2)  # this Sentinel is down: retry, the others keep watching
            finally:
                pubsub.close()
                client.close()
