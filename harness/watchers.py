"""Watchers that turn a system's own announcements into timestamped run events.

Redis Sentinel publishes every state change (``+sdown``, ``+odown``, ``+switch-master``...)
on its Pub/Sub channels; subscribing to every Sentinel gives detection and promotion times
without polling. The first Sentinel to announce an event wins.

Patroni keeps its leader in the DCS: under etcd, the key ``/<namespace>/<scope>/leader``
holds the leader's member name, on a lease of ``ttl`` seconds. A watch on that key (etcd v3's
``/v3/watch`` through its HTTP gateway) is pushed every change as it happens: the key
deleted or expired is the leader lost (detection), a new value is the promotion. Without an
etcd to watch, Patroni's REST API is polled (250 ms by default), and the events say so:
``exact: false`` with ``poll_interval_seconds``, since the change happened somewhere in the
interval before the poll that saw it.

Every event's detail carries ``exact``: True for push sources (Sentinel Pub/Sub, the etcd
watch), False for polling.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
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
            detail: dict[str, Any] = {"message": message, "exact": True}
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
    """Records when Patroni's leader is lost and who takes over: from a watch on the etcd leader key
    when `etcd_urls` are given (exact), else by polling Patroni's REST API (inexact).

    `patroni.leader-lost` {old_primary}: the leader key was deleted or expired (detection);
    `patroni.promoted` {old_primary, new_primary}: another member holds the key (promotion).
    Member names are Patroni's (the sandbox names members after their region).
    """

    def __init__(
        self,
        rest_urls: Sequence[str],
        poll_seconds: float = 0.25,
        max_duration_seconds: float = 3600.0,
        etcd_urls: Sequence[str] = (),
        scope: str = "harness",
        namespace: str = "service",
    ) -> None:
        self._poller = _PatroniPoller(rest_urls, poll_seconds, max_duration_seconds)
        self._etcd = (
            _LeaderKeyWatch(etcd_urls, leader_key(namespace, scope), max_duration_seconds)
            if etcd_urls
            else None
        )
        self._active: _PatroniPoller | _LeaderKeyWatch = self._poller

    @property
    def is_exact(self) -> bool:
        """Whether events come from the etcd watch (after start)."""
        return self._active is self._etcd

    def start(self) -> PatroniWatcher:
        if self._etcd is not None and self._etcd.start():
            self._active = self._etcd
        else:
            self._active = self._poller.start()
        return self

    def stop(self) -> list[dict[str, Any]]:
        """Stop watching; returns the events seen, oldest first."""
        return self._active.stop()

    def events(self) -> list[dict[str, Any]]:
        return self._active.events()


def leader_key(namespace: str, scope: str) -> str:
    """Patroni's leader key in the DCS, e.g. ``/service/harness/leader``."""
    return "/" + "/".join(part.strip("/") for part in (namespace, scope, "leader") if part.strip("/"))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str | None) -> str:
    return base64.b64decode(text).decode() if text else ""


class _LeaderKeyWatch:
    """An etcd v3 watch (HTTP gateway ``/v3/watch``) on one key, reconnecting from the last revision
    seen so no change is missed; every event timed when etcd pushed it."""

    def __init__(self, etcd_urls: Sequence[str], key: str, max_duration_seconds: float) -> None:
        self._urls = [u.rstrip("/") for u in etcd_urls]
        self._key = key
        self._max_duration_seconds = max_duration_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._connection: http.client.HTTPConnection | None = None
        self._leader = ""  # the member holding the key now ("" while nobody does)
        self._last_leader = ""  # the member that held it before it was lost
        self._revision = 0
        self._url = ""
        self._thread = threading.Thread(target=self._watch, name="patroni-etcd-watch", daemon=True)

    def start(self) -> bool:
        """Read the key once, then watch it; False when no etcd answers (the caller polls instead)."""
        for url in self._urls:
            try:
                found = _post(url, "/v3/kv/range", {"key": _b64(self._key)}, timeout_seconds=2.0)
            except (OSError, ValueError, http.client.HTTPException):
                continue
            self._url = url
            self._revision = int(found.get("header", {}).get("revision", 0))
            kvs = found.get("kvs") or []
            self._leader = self._last_leader = _unb64(kvs[0].get("value")) if kvs else ""
            self._thread.start()
            return True
        return False

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        with self._lock:
            connection = self._connection
        if connection is not None and connection.sock is not None:
            with contextlib.suppress(OSError):  # unblocks the watch's read at once
                connection.sock.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        return self.events()

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)

    def _record(self, kind: str, detail: dict[str, Any], at_monotonic: float) -> None:
        with self._lock:
            self._events.append(
                {
                    "kind": kind,
                    "source": f"etcd watch {self._key}",
                    "at_monotonic": at_monotonic,
                    "detail": {**detail, "exact": True},
                }
            )

    def _watch(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set() and time.monotonic() - started < self._max_duration_seconds:
            try:
                self._stream()
            except (OSError, ValueError, http.client.HTTPException):
                pass
            finally:
                with self._lock:
                    self._connection = None
            self._stop.wait(0.2)  # etcd restarting: watch again from the last revision seen

    def _stream(self) -> None:
        parts = urllib.parse.urlsplit(self._url)
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 2379, timeout=5)
        with self._lock:
            if self._stop.is_set():
                return
            self._connection = connection
        body = {"create_request": {"key": _b64(self._key), "start_revision": str(self._revision + 1)}}
        connection.request("POST", "/v3/watch", json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            raise OSError(f"etcd watch: HTTP {response.status}")
        connection.sock.settimeout(None)  # a watch is quiet until something changes; stop() shuts it
        decoder, pending = json.JSONDecoder(), ""
        while not self._stop.is_set():
            chunk = response.read1(65536)
            if not chunk:
                return
            at = time.monotonic()
            pending += chunk.decode()
            while pending.strip():
                try:
                    message, end = decoder.raw_decode(pending.lstrip())
                except ValueError:
                    break  # an incomplete document: wait for the rest
                pending = pending.lstrip()[end:]
                self._handle(message, at)

    def _handle(self, message: Mapping[str, Any], at: float) -> None:
        result = message.get("result") or {}
        if "error" in message or result.get("canceled"):
            raise OSError(f"etcd watch ended: {message}")
        for event in result.get("events") or []:
            kv = event.get("kv") or {}
            self._revision = max(self._revision, int(kv.get("mod_revision", 0)))
            if event.get("type") == "DELETE":
                if self._leader:
                    self._last_leader, self._leader = self._leader, ""
                    self._record("patroni.leader-lost", {"old_primary": self._last_leader}, at)
                continue
            value = _unb64(kv.get("value"))
            if value == self._leader:
                continue  # the leader refreshing its own key
            previous = self._leader or self._last_leader
            self._leader = value
            if value != previous:
                self._record("patroni.promoted", {"old_primary": previous, "new_primary": value}, at)


def _post(url: str, path: str, body: Mapping[str, Any], timeout_seconds: float) -> dict[str, Any]:
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
        return json.loads(response.read())


class _PatroniPoller:
    """Polls Patroni's REST API (`GET /cluster`) and records when the leader is lost and who takes over.

    `patroni.leader-lost`: the cluster first reports no leader (the dead leader's key expired:
    detection); `patroni.promoted`: a member other than the last leader is leader (promotion).
    Inexact: each change happened up to one poll interval before it was seen.
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

    def start(self) -> _PatroniPoller:
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
        detail = {**detail, "exact": False, "poll_interval_seconds": self._poll_seconds}
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
