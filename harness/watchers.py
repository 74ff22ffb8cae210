"""Watchers that turn a system's own announcements into timestamped run events.

Redis Sentinel publishes every state change (``+sdown``, ``+odown``, ``+switch-master``...)
on its Pub/Sub channels; subscribing to every Sentinel gives detection and promotion times
without polling. The first Sentinel to announce an event wins. Patroni has no push channel,
so its REST API is polled (250 ms by default).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
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


class PatroniWatcher:
    """Polls Patroni's REST API (`GET /cluster`) and records when the leader is lost and who takes over.

    `patroni.leader-lost`: the cluster first reports no leader (the dead leader's key expired:
    detection); `patroni.promoted`: a member other than the last leader is leader (promotion).
    """

    def __init__(
        self, rest_urls: Sequence[str], poll_seconds: float = 0.25, max_duration_seconds: float = 3600.0
    ) -> None:
        self._urls = list(rest_urls)
        self._poll_seconds = poll_seconds
        self._max_duration_seconds = max_duration_seconds
        self._stop = threading.Event()
        self._events: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._watch, name="patroni-watch", daemon=True)

    def start(self) -> PatroniWatcher:
        if self._urls:
            self._thread.start()
        return self

    def stop(self) -> list[dict[str, Any]]:
        """Stop polling; returns the events seen, oldest first."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        return self.events()

    def events(self) -> list[dict[str, Any]]:
        return list(self._events)

    def _leader(self) -> tuple[bool, str | None]:
        """(answered, leader name) from the first member that answers."""
        for url in self._urls:
            try:
                with urllib.request.urlopen(f"{url.rstrip('/')}/cluster", timeout=0.5) as response:
                    members = json.loads(response.read()).get("members", [])
            except (OSError, ValueError):
                continue
            leaders = [m.get("name") for m in members if m.get("role") in ("leader", "standby_leader")]
            return True, leaders[0] if leaders else None
        return False, None

    def _record(self, kind: str, detail: dict[str, Any]) -> None:
        self._events.append(
            {"kind": kind, "source": "patroni REST API", "at_monotonic": time.monotonic(), "detail": detail}
        )

    def _watch(self) -> None:
        started = time.monotonic()
        last_leader: str | None = None
        leaderless = False
        while not self._stop.wait(self._poll_seconds):
            if time.monotonic() - started > self._max_duration_seconds:
                return
            answered, leader = self._leader()
            if not answered:
                continue
            if leader is None and last_leader is not None and not leaderless:
                leaderless = True
                self._record("patroni.leader-lost", {"old_primary": last_leader})
            elif leader is not None:
                if last_leader is not None and leader != last_leader:
                    if not leaderless:  # the leaderless moment fell between two polls
                        self._record(
                            "patroni.leader-lost", {"old_primary": last_leader, "between_polls": True}
                        )
                    self._record("patroni.promoted", {"old_primary": last_leader, "new_primary": leader})
                last_leader, leaderless = leader, False
