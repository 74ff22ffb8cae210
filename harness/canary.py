"""The canary: a client loop per region that reads and writes the way users do.

Each request is timestamped with the monotonic clock at its start, so outages show up with
the loop's resolution (50 ms at 20 Hz) instead of Prometheus's scrape interval. Every
acknowledged write is kept, so lost writes (RPO) can be counted after recovery.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

REQUEST_TIMEOUT_SECONDS = 1.0  # above a first request through a 200 ms link (connect + write + read)


@dataclass(frozen=True, slots=True)
class CanaryTarget:
    """Where a canary sends its requests."""

    kind: str  # "redis" (through Sentinel), "http" (regional API), "postgres"
    region: str
    sentinels: tuple[tuple[str, int], ...] = ()
    master_name: str = ""
    url: str = ""
    dsn: str = ""
    # Redis: server address → the address this region reaches it by (its fault-proxy route).
    routes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class AckedWrite:
    key: str
    value: str
    at_monotonic: float


@dataclass(slots=True)
class _Results:
    samples: list[dict[str, Any]] = field(default_factory=list)
    acked: list[AckedWrite] = field(default_factory=list)


def targets_from_endpoints(endpoints: Mapping[str, Any], kinds: Sequence[str]) -> list[CanaryTarget]:
    """Canary targets for the given kinds: one per region, reaching each store the way that
    region's clients do.

    Redis: the primary Sentinel names, through the region's fault-proxy route to that server
    (``links`` entries of service redis from the region), direct where no route exists.
    PostgreSQL: whichever server accepts writes, the primary through the region's route to it;
    with ``postgres_topology: active-active`` the region's own server.
    HTTP: the region's API.
    """
    targets = []
    regions = endpoints.get("regions", {})
    sentinels = tuple(_host_port(s) for s in endpoints.get("redis_sentinels", ()))
    links = [link for link in (endpoints.get("links") or {}).values() if isinstance(link, Mapping)]
    for region, info in regions.items():
        if "redis" in kinds and sentinels and info.get("redis_url"):
            targets.append(
                CanaryTarget(
                    "redis",
                    region,
                    sentinels=sentinels,
                    master_name=endpoints["redis_master_name"],
                    routes=_routes(regions, links, region, "redis", "redis_url"),
                )
            )
    for region, info in regions.items():
        if "http" in kinds and info.get("api_url"):
            targets.append(CanaryTarget("http", region, url=info["api_url"]))
    local_writes = endpoints.get("postgres_topology") == "active-active"
    for region, info in regions.items():
        if "postgres" in kinds and info.get("postgres_dsn") and local_writes:
            # Every region's store takes writes: the region's clients write to their own.
            targets.append(CanaryTarget("postgres", region, dsn=info["postgres_dsn"]))
        elif "postgres" in kinds and info.get("postgres_dsn"):
            routes = dict(_routes(regions, links, region, "postgres", "postgres_dsn"))
            dsns = [
                _via(other["postgres_dsn"], routes) for other in regions.values() if other.get("postgres_dsn")
            ]
            # libpq's multi-host failover: whichever server accepts writes, as a client would.
            targets.append(CanaryTarget("postgres", region, dsn=writable_dsn(dsns)))
    return targets


def _routes(
    regions: Mapping[str, Any], links: Sequence[Mapping[str, Any]], region: str, service: str, key: str
) -> tuple[tuple[str, str], ...]:
    """(server address, route address) for every route of `service` leaving `region`."""
    found = []
    for link in links:
        to = regions.get(link.get("to", ""), {})
        if (
            link.get("service") == service
            and link.get("from") == region
            and to.get(key)
            and link.get("listen")
        ):
            found.append((_address(to[key]), str(link["listen"])))
    return tuple(sorted(found))


def _address(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def _via(dsn: str, routes: Mapping[str, str]) -> str:
    """`dsn` with its host:port replaced by the route to it, if there is one."""
    parts = urllib.parse.urlsplit(dsn)
    route = routes.get(_address(dsn))
    if route is None:
        return dsn
    user = parts.netloc.rpartition("@")[0]
    return urllib.parse.urlunsplit(
        (parts.scheme, f"{user}@{route}" if user else route, parts.path, parts.query, "")
    )


def writable_dsn(dsns: Sequence[str]) -> str:
    """One libpq URI over every server that connects to whichever accepts writes now."""
    parts = [urllib.parse.urlsplit(d) for d in dsns]
    hosts = ",".join(p.netloc.rpartition("@")[2] for p in parts)
    user = parts[0].netloc.rpartition("@")[0]
    query = "&".join(q for q in (parts[0].query, "target_session_attrs=read-write") if q)
    return urllib.parse.urlunsplit(
        (parts[0].scheme, f"{user}@{hosts}" if user else hosts, parts[0].path, query, "")
    )


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class Canary:
    """A background thread sending one write-then-read per tick to one target."""

    def __init__(
        self,
        target: CanaryTarget,
        rate_hz: float = 20.0,
        log_path: Path | None = None,
        timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
        max_duration_seconds: float = 3600.0,
    ) -> None:
        self.target = target
        self.interval_seconds = 1.0 / rate_hz
        self.timeout_seconds = timeout_seconds
        self.max_duration_seconds = max_duration_seconds
        self._log_path = log_path
        self._id = uuid.uuid4().hex[:8]  # two canaries in one region never share keys
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._results = _Results()
        self.started_monotonic: float | None = None
        self._thread = threading.Thread(
            target=self._loop, name=f"canary-{target.kind}-{target.region}", daemon=True
        )

    def start(self) -> Canary:
        self.started_monotonic = time.monotonic()
        self._thread.start()
        return self

    def started_detail(self) -> dict[str, Any]:
        """What grading needs to know of this canary (event canary.started): which region must
        produce samples, and at what rate (gap detection)."""
        return {
            "region": self.target.region,
            "kind": self.target.kind,
            "rate_hz": 1.0 / self.interval_seconds,
            "timeout_seconds": self.timeout_seconds,
        }

    def stop(self) -> list[dict[str, Any]]:
        """Stop the loop and return every sample taken."""
        self._stop.set()
        self._thread.join(timeout=self.timeout_seconds * 4 + 2)
        return self.samples()

    def samples(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._results.samples)

    def acked_writes(self) -> list[AckedWrite]:
        with self._lock:
            return list(self._results.acked)

    def _loop(self) -> None:
        request = _make_request(self.target, self.timeout_seconds)
        log = self._log_path.open("a", buffering=1) if self._log_path else None
        started = time.monotonic()
        sequence = 0
        try:
            next_tick = started
            while not self._stop.is_set() and time.monotonic() - started < self.max_duration_seconds:
                sequence += 1
                key = f"canary:{self.target.region}:{self._id}:{sequence}"
                value = f"{time.time():.6f}"
                at = time.monotonic()
                error = ""
                try:
                    request(key, value)
                except Exception as exc:  # every failure is a sample, never a crash
                    error = describe_failure(exc)
                # Failures keep their latency too: their answer time (send + latency) is when the
                # client learnt of the failure, which the outage window needs.
                latency = time.monotonic() - at
                sample = {
                    "probe": "canary",
                    "region": self.target.region,
                    "kind": self.target.kind,
                    "at_monotonic": at,
                    "ok": not error,
                    "value": latency if not error else None,
                    "latency_seconds": latency,
                    "error": error,
                }
                with self._lock:
                    self._results.samples.append(sample)
                    if not error:
                        self._results.acked.append(AckedWrite(key, value, at))
                if log:
                    log.write(json.dumps(sample) + "\n")
                next_tick += self.interval_seconds
                self._stop.wait(max(0.0, next_tick - time.monotonic()))
                if time.monotonic() - next_tick > self.interval_seconds:
                    next_tick = time.monotonic()  # a slow request: do not burst to catch up
        finally:
            if log:
                log.close()
            getattr(request, "close", lambda: None)()


def describe_failure(exc: BaseException) -> str:
    """A failed request's error text; a timeout's starts with "timeout" (graded as a lower bound)."""
    text = f"{type(exc).__name__}: {exc}"
    return (f"timeout: {text}" if is_timeout_error(exc) else text)[:200]


def is_timeout_error(exc: BaseException) -> bool:
    """Whether the request gave up waiting (socket, Redis, urllib, PostgreSQL timeouts)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TimeoutError | redis.TimeoutError):
            return True
        if isinstance(current, urllib.error.URLError) and isinstance(current.reason, TimeoutError):
            return True
        name = type(current).__name__
        if name == "QueryCanceled" or (
            name in ("OperationalError", "ConnectionTimeout") and "timeout" in str(current).lower()
        ):
            return True  # psycopg: statement_timeout, connect_timeout
        current = current.__cause__ or current.__context__
    return False


def request_once(target: CanaryTarget, timeout_seconds: float = REQUEST_TIMEOUT_SECONDS) -> str:
    """One write-then-read on the user's path; returns "" on success, else the error."""
    request = _make_request(target, timeout_seconds)
    key = f"canary:{target.region}:probe:{time.monotonic_ns()}"
    try:
        request(key, f"{time.time():.6f}")
    except Exception as exc:  # the caller decides what a failure means
        return f"{type(exc).__name__}: {exc}"[:200]
    finally:
        getattr(request, "close", lambda: None)()
    return ""


def _make_request(target: CanaryTarget, timeout_seconds: float) -> Callable[[str, str], None]:
    if target.kind == "redis":
        return _RedisRequest(target, timeout_seconds)
    if target.kind == "http":
        return _HttpRequest(target, timeout_seconds)
    if target.kind == "postgres":
        return _PostgresRequest(target, timeout_seconds)
    raise ValueError(f"unknown canary kind {target.kind!r}")


class _RedisRequest:
    """Write then read a key on the master Sentinel currently names."""

    def __init__(self, target: CanaryTarget, timeout_seconds: float) -> None:
        self._sentinel = redis.sentinel.Sentinel(
            list(target.sentinels),
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            sentinel_kwargs={"socket_timeout": timeout_seconds, "socket_connect_timeout": timeout_seconds},
        )
        self._master = self._sentinel.master_for(
            target.master_name,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry_on_timeout=False,
        )
        self._master_name = target.master_name
        self._timeout = timeout_seconds
        self._routes = dict(target.routes)
        self._routed: dict[str, redis.Redis] = {}

    def _primary(self) -> redis.Redis:
        """The master as this region's clients reach it: through its route when one maps its address."""
        if not self._routes:
            return self._master
        host, port = self._sentinel.discover_master(self._master_name)
        address = self._routes.get(f"{host}:{port}", f"{host}:{port}")
        if address not in self._routed:
            route_host, route_port = _host_port(address)
            self._routed[address] = redis.Redis(
                host=route_host,
                port=route_port,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry=Retry(NoBackoff(), 0),  # a failed request is a sample, not a reason to retry
            )
        return self._routed[address]

    def __call__(self, key: str, value: str) -> None:
        primary = self._primary()
        primary.set(key, value, ex=3600)
        if primary.get(key) is None:
            raise RuntimeError("written key not readable")

    def close(self) -> None:
        self._master.close()
        for client in self._routed.values():
            client.close()
        for connection in self._sentinel.sentinels:
            connection.close()


class _HttpRequest:
    def __init__(self, target: CanaryTarget, timeout_seconds: float) -> None:
        self._base = target.url.rstrip("/")
        self._timeout = timeout_seconds

    def __call__(self, key: str, value: str) -> None:
        body = json.dumps({"value": value}).encode()
        write = urllib.request.Request(f"{self._base}/api/v1/items/{key}", data=body, method="POST")
        write.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(write, timeout=self._timeout) as response:
            response.read()
        with urllib.request.urlopen(f"{self._base}/api/v1/health", timeout=self._timeout) as response:
            response.read()


_CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS harness_canary "
    "(key text PRIMARY KEY, value text, at timestamptz DEFAULT now())"
)
_UPSERT = (
    "INSERT INTO harness_canary (key, value) VALUES (%s, %s) "
    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
)


class _PostgresRequest:
    """One upsert per call. statement_timeout is the server's: a frozen server or a link that holds
    its bytes never fires it, so a watchdog shuts the connection's socket down at the client's own
    timeout and the request fails as a timeout instead of waiting for ever."""

    def __init__(self, target: CanaryTarget, timeout_seconds: float) -> None:
        self._dsn = target.dsn
        self._timeout = timeout_seconds
        self._connection = None
        self._lock = threading.Lock()
        self._expired = False

    def __call__(self, key: str, value: str) -> None:
        import psycopg

        watchdog = None
        self._expired = False
        try:
            if self._connection is None or self._connection.closed:
                self._connection = psycopg.connect(
                    self._dsn, connect_timeout=max(1, round(self._timeout)), autocommit=True
                )
            watchdog = threading.Timer(self._timeout, self._cut, args=(self._connection,))
            watchdog.daemon = True
            watchdog.start()
            with self._connection.cursor() as cursor:
                cursor.execute(f"SET statement_timeout = {int(self._timeout * 1000)}")
                cursor.execute(_CREATE_TABLE)
                cursor.execute(_UPSERT, (key, value))
        except Exception as exc:
            self.close()
            if self._expired:
                raise TimeoutError(f"no answer from PostgreSQL within {self._timeout:g} s") from exc
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()
        with self._lock:
            if self._expired:  # answered just as the watchdog cut it: the next call reconnects
                self.close()

    def _cut(self, connection: Any) -> None:
        with self._lock:
            self._expired = True
            try:
                with socket.socket(fileno=os.dup(connection.pgconn.socket)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except Exception:
                pass  # already closed: the request has its answer or its error

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None


VERIFIABLE_KINDS = ("redis", "postgres")  # an http write lands behind the API: not checked here


def lost_writes(
    target: CanaryTarget, acked: Sequence[AckedWrite], timeout_seconds: float = 2.0
) -> list[AckedWrite]:
    """Acknowledged writes the current primary no longer has (RPO evidence), for Redis and PostgreSQL."""
    if not acked or target.kind not in VERIFIABLE_KINDS:
        return []
    stored = _redis_values if target.kind == "redis" else _postgres_values
    lost = []
    for start in range(0, len(acked), 500):
        batch = acked[start : start + 500]
        values = stored(target, [w.key for w in batch], timeout_seconds)
        lost.extend(w for w in batch if values.get(w.key) != w.value)
    return lost


def _redis_values(target: CanaryTarget, keys: Sequence[str], timeout_seconds: float) -> dict[str, str]:
    sentinel = redis.sentinel.Sentinel(
        list(target.sentinels),
        socket_timeout=timeout_seconds,
        sentinel_kwargs={"socket_timeout": timeout_seconds},
    )
    master = sentinel.master_for(target.master_name, socket_timeout=timeout_seconds)
    try:
        values = master.mget(list(keys))
        return {k: v.decode() for k, v in zip(keys, values, strict=True) if v is not None}
    finally:
        master.close()
        for connection in sentinel.sentinels:
            connection.close()


def _postgres_values(target: CanaryTarget, keys: Sequence[str], timeout_seconds: float) -> dict[str, str]:
    import psycopg

    with psycopg.connect(target.dsn, connect_timeout=max(1, round(timeout_seconds))) as connection:
        rows = connection.execute("SELECT key, value FROM harness_canary WHERE key = ANY(%s)", (list(keys),))
        return dict(rows.fetchall())
