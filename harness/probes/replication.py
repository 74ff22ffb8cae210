"""Replication lag, measured by the client (timestamped markers) and read from the exporters.

A marker is a sequence number written on the primary every `interval_seconds`; every replica
is polled (every few milliseconds while a marker is outstanding) for the highest number it
shows. A marker's lag on a replica is the time from sending its write to the first poll that
shows it (or a later one: replication is ordered), at millisecond resolution. Markers stay
outstanding across later ones, so a replica cut off for 10 s shows a 10 s lag once it catches
up, not a string of short timeouts.

Each marker gives one sample per replica it was meant to reach (probe ``replication_lag``,
region = the replica's region, or its address when no region names it):

* seen: ``ok`` True, value = lag in seconds;
* not seen within `timeout_seconds` (or by the end of the probe): ``ok`` False, value = the
  seconds waited so far (a lower bound), error ``not seen within X s``;
* the replica could not be read at all meanwhile: ``ok`` False, value None, error
  ``unreachable: ...``. A replica is never left out.

The exporters give a second witness, probe ``replication_lag_exporter`` (seconds per replica,
scrape resolution): redis_exporter's ``redis_connected_slave_lag_seconds`` (seconds since the
replica's last acknowledgement) and the sandbox postgres_exporter's
``pg_replication_replay_lag_seconds`` (``pg_stat_replication.replay_lag``); while a replica's link
is down (``redis_master_link_up`` 0, ``pg_replication_slots_active`` 0) its lag is the time since
the link went down.
"""

from __future__ import annotations

import math
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from harness.errors import ConfigError
from harness.probes import _cancel
from harness.probes._window import missing

__all__ = ["replication_lag", "replication_lag_prometheus", "replication_lag_seconds"]

PROBE = "replication_lag"
EXPORTER_PROBE = "replication_lag_exporter"
_POLL_SECONDS = 0.002
_IDLE_SECONDS = 0.02  # a reader with no outstanding marker looks again this often
_READ_TIMEOUT_SECONDS = 0.5  # short, so a cancelled probe is not held by a hung read
_MARKER_TTL_SECONDS = 3600
_MAX_MARKERS = 10_000
# Exporter series of replication lag, per replica (see the module docstring).
PROMETHEUS_LAG_QUERIES = {
    "redis": ("max by (slave_port) (redis_connected_slave_lag_seconds)", "seconds"),
    "postgres": ("max by (application_name) (pg_replication_replay_lag_seconds)", "seconds"),
}
PROMETHEUS_LINK_QUERIES = {
    "redis": "max by (region) (redis_master_link_up)",
    "postgres": "max by (slot_name) (pg_replication_slots_active)",
}


def replication_lag_seconds(
    service: str = "redis", timeout_seconds: float = 5.0, configuration: Mapping[str, Any] | None = None
) -> dict:
    """Write one marker on the primary and time its arrival on every replica (seconds, ms resolution).

    Returns `replication_lag_seconds` (the slowest replica; None when one did not show it within
    `timeout_seconds` or could not be read), per-replica `replicas`, `samples` and the
    `replication.replicas` event. A single reading is not graded (grading takes the worst
    reading over the fault window); use it for a steady-state check.
    """
    _check_seconds("timeout_seconds", timeout_seconds, 3600)
    result = _measure(service, 0.0, 1.0, timeout_seconds, configuration or {}, max_markers=1)
    samples = result.samples
    lags = [s["value"] for s in samples if s["ok"]]
    complete = bool(samples) and len(lags) == len(samples)
    return {
        "replication_lag_seconds": max(lags) if complete else None,
        "replicas": {s["region"]: s["value"] if s["ok"] else None for s in samples},
        "samples": samples,
        "events": result.events,
        "evidence": _describe(samples) or result.problem,
    }


def replication_lag(
    duration_seconds: float,
    interval_seconds: float = 0.5,
    service: str = "redis",
    timeout_seconds: float = 30.0,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Write a marker every `interval_seconds` for `duration_seconds` (for `background: true`).

    Start it before the fault and let `duration_seconds` reach past the heal: markers written
    during a cut are timed when the replica catches up, for up to `timeout_seconds` each (after
    that, or at the end of the probe, a marker not seen is a lower bound). The probe returns
    at most `timeout_seconds` after `duration_seconds`, and within 0.2 s of a stop request.
    Returns every reading as `samples` (probe `replication_lag`), the exporter's readings
    (probe `replication_lag_exporter`) when Prometheus is configured, the
    `replication.replicas` event, and `measurements`: replication_lag_p99_seconds and
    replication_lag_max_seconds (a lower bound when a marker was not seen; unknown when a
    replica could not be read).
    """
    _check_seconds("duration_seconds", duration_seconds, 3600)
    _check_seconds("interval_seconds", interval_seconds, duration_seconds)
    _check_seconds("timeout_seconds", timeout_seconds, 3600)
    configuration = configuration or {}
    started_wall = time.time()
    result = _measure(service, duration_seconds, interval_seconds, timeout_seconds, configuration)
    exporter_samples: list[dict[str, Any]] = []
    events = list(result.events)
    if configuration.get("prometheus_url") and not _cancel.stop_requested(configuration):
        try:
            exporter_samples = exporter_lag_samples(
                configuration, service, started_wall, time.time(), result.replicas
            )
        except ConnectionError as exc:
            events.append(_event("replication.exporter-unavailable", {"service": service, "error": str(exc)}))
    return {
        "samples": result.samples + exporter_samples,
        "events": events,
        "measurements": _summary(result.samples, result.problem),
    }


def replication_lag_prometheus(
    window_seconds: float = 300.0,
    service: str = "redis",
    query: str | None = None,
    unit: str = "seconds",
    step_seconds: float = 1.0,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Replication lag per replica from the exporter series over the last `window_seconds`.

    Without `query`: the exporter witness described in the module docstring, as `samples`
    (probe `replication_lag_exporter`, seconds, region = replica). With `query`: that PromQL's
    points (probe `replication_lag_prometheus`, in `unit`). The measurement
    `replication_lag_prometheus_max_<unit>` is the largest value; None (unknown, never a pass)
    when Prometheus is unreachable or has no data.
    """
    from harness.probes.slo import range_values

    configuration = configuration or {}
    if query is None and service not in PROMETHEUS_LAG_QUERIES:
        raise ConfigError("arguments", "service", f"expected redis or postgres, got {service!r}")
    unit = "seconds" if query is None else unit
    name = f"replication_lag_prometheus_max_{unit}"
    end = time.time()
    try:
        if query is None:
            replicas = [name for name, _ in _servers(service, configuration)]
            samples = exporter_lag_samples(configuration, service, end - window_seconds, end, replicas)
            what = PROMETHEUS_LAG_QUERIES[service][0]
        else:
            samples = [
                _sample("", value, at, "", probe="replication_lag_prometheus")
                for at, value in range_values(configuration, query, window_seconds, step_seconds)
            ]
            what = query
    except ConnectionError as exc:
        return {"samples": [], "measurements": [missing(name, unit, "prometheus", str(exc))]}
    values = [s["value"] for s in samples if s["value"] is not None]
    if not values:
        return {
            "samples": samples,
            "measurements": [missing(name, unit, "prometheus", f"no data for {what}")],
        }
    evidence = f"{what}: max over {len(values)} points in {window_seconds:g} s"
    measurement = {"name": name, "value": max(values), "unit": unit, "source": "prometheus",
                   "evidence": evidence, "lower_bound": False}  # fmt: skip
    return {"samples": samples, "measurements": [measurement]}


# ---------------------------------------------------------------- markers


@dataclass(slots=True)
class _Marker:
    sequence: int
    sent: float  # monotonic time the write was sent
    expected: tuple[str, ...]  # replicas it must reach
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # replica → sample


@dataclass(slots=True)
class _Outcome:
    samples: list[dict[str, Any]]
    events: list[dict[str, Any]]
    replicas: list[str]  # every replica some marker was meant to reach
    problem: str  # why no marker was written, if none was


class _Tracker:
    """Outstanding markers and what each replica has shown; shared by the writer and the readers."""

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        self.markers: list[_Marker] = []
        self.lock = threading.Lock()
        self.last_read_ok: dict[str, float] = {}  # replica → monotonic time of its last good read
        self.last_error: dict[str, str] = {}

    def add(self, marker: _Marker) -> None:
        with self.lock:
            self.markers.append(marker)

    def pending(self, replica: str) -> bool:
        with self.lock:
            return any(replica in m.expected and replica not in m.results for m in self.markers)

    def read(self, replica: str, shown: int, at: float) -> None:
        """A poll of `replica` at `at` showed every marker up to `shown`."""
        with self.lock:
            self.last_read_ok[replica] = at
            for marker in self.markers:
                if replica in marker.expected and replica not in marker.results and marker.sequence <= shown:
                    marker.results[replica] = _sample(replica, at - marker.sent, marker.sent, "")
            self._expire(replica, at)

    def failed(self, replica: str, error: str, at: float) -> None:
        with self.lock:
            self.last_error[replica] = error
            self._expire(replica, at)

    def _expire(self, replica: str, now: float) -> None:
        for marker in self.markers:
            outstanding = replica in marker.expected and replica not in marker.results
            if outstanding and now - marker.sent >= self.timeout_seconds:
                marker.results[replica] = self._unseen(replica, marker, now)

    def close(self, now: float) -> None:
        """Every marker still outstanding is censored now (or unreachable)."""
        with self.lock:
            for marker in self.markers:
                for replica in marker.expected:
                    if replica not in marker.results:
                        marker.results[replica] = self._unseen(replica, marker, now)

    def _unseen(self, replica: str, marker: _Marker, now: float) -> dict[str, Any]:
        if self.last_read_ok.get(replica, -math.inf) >= marker.sent:
            waited = now - marker.sent
            return _sample(replica, waited, marker.sent, f"not seen within {waited:.3f} s", ok=False)
        error = self.last_error.get(replica, "no answer")
        return _sample(replica, None, marker.sent, f"unreachable: {error}"[:240], ok=False)

    def samples(self) -> list[dict[str, Any]]:
        with self.lock:
            return [m.results[r] for m in self.markers for r in m.expected if r in m.results]


def _measure(
    service: str,
    duration_seconds: float,
    interval_seconds: float,
    timeout_seconds: float,
    configuration: Mapping[str, Any],
    max_markers: int = _MAX_MARKERS,
) -> _Outcome:
    """Write markers for `duration_seconds` (at least one) and time them on every replica."""
    store = _store(service, configuration)
    tracker = _Tracker(timeout_seconds)
    done = threading.Event()
    events: list[dict[str, Any]] = []
    announced: list[str] = []
    problems: list[str] = []
    readers = {
        name: threading.Thread(
            target=_read_loop, args=(name, read, tracker, done), name=f"lag-{name}", daemon=True
        )
        for name, read in store.readers.items()
    }
    try:
        for thread in readers.values():
            thread.start()
        deadline = time.monotonic() + duration_seconds
        next_marker = time.monotonic()
        sequence = int(time.time() * 1000)  # above any earlier probe's, so a new key is never "seen"
        for _ in range(max_markers):
            if _cancel.stop_requested(configuration):
                break
            sequence += 1
            try:
                primary = store.primary()
                expected = tuple(name for name in store.readers if name != primary)
                new = [name for name in expected if name not in announced]
                if new:
                    announced.extend(new)
                    events.append(
                        _event("replication.replicas", {"service": service, "replicas": list(announced)})
                    )
                sent = time.monotonic()
                store.write(primary, sequence)
                tracker.add(_Marker(sequence, sent, expected))
            except Exception as exc:  # no primary, or the write failed: the marker is missing, never skipped
                problem = f"no marker written: {type(exc).__name__}: {exc}"[:240]
                problems.append(problem)
                expected = tuple(announced or store.readers)
                at = time.monotonic()
                failed = {r: _sample(r, None, at, problem, ok=False) for r in expected}
                tracker.add(_Marker(sequence, at, expected, failed))  # a reading for every replica
            next_marker += interval_seconds
            if next_marker >= deadline or _cancel.wait(next_marker - time.monotonic(), configuration):
                break
        # Let outstanding markers arrive, up to their timeout; a stop request ends this at once.
        drain_until = time.monotonic() + timeout_seconds
        while any(tracker.pending(name) for name in readers) and time.monotonic() < drain_until:
            if _cancel.wait(0.01, configuration):
                break
    finally:
        done.set()
        tracker.close(time.monotonic())
        for thread in readers.values():
            thread.join(timeout=0.1)
        store.close()
    return _Outcome(tracker.samples(), events, announced or list(store.readers), "; ".join(problems[:1]))


def _read_loop(name: str, read: Callable[[], int], tracker: _Tracker, done: threading.Event) -> None:
    while not done.is_set():
        if not tracker.pending(name):
            done.wait(_IDLE_SECONDS)
            continue
        try:
            shown = read()
        except Exception as exc:  # unreachable, or not replicated yet: a failed reading, keep polling
            tracker.failed(name, f"{type(exc).__name__}: {exc}", time.monotonic())
            done.wait(0.05)
            continue
        tracker.read(name, shown, time.monotonic())
        done.wait(_POLL_SECONDS)


def _sample(
    replica: str, value: float | None, at: float, error: str, ok: bool = True, probe: str = PROBE
) -> dict[str, Any]:
    return {
        "probe": probe,
        "at_monotonic": at,
        "value": value,
        "ok": ok and value is not None,
        "region": replica,
        "error": error,
    }


def _event(kind: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {"at_monotonic": time.monotonic(), "kind": kind, "detail": detail}


def _describe(samples: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{s['region']} {s['value'] * 1000:.1f} ms" if s["ok"] else f"{s['region']}: {s['error']}"
        for s in samples
    )


def _summary(samples: list[dict[str, Any]], problem: str) -> list[dict[str, Any]]:
    """replication_lag_p99_seconds and replication_lag_max_seconds over every reading."""
    names = ("replication_lag_p99_seconds", "replication_lag_max_seconds")
    if not samples:
        reason = problem or "no marker was written"
        return [missing(name, "seconds", "marker", reason) for name in names]
    unreadable = sorted({s["region"] for s in samples if s["value"] is None})
    if unreadable:
        first = next(s for s in samples if s["value"] is None)
        reason = f"no reading from {', '.join(unreadable)} ({first['error']})"
        return [missing(name, "seconds", "marker", reason) for name in names]
    from harness.measures import percentile

    values = [s["value"] for s in samples]
    worst = max(samples, key=lambda s: s["value"])
    censored = [s for s in samples if not s["ok"]]
    evidence = (
        f"{len(samples)} readings of {len({s['at_monotonic'] for s in samples})} markers, "
        f"{len(censored)} not seen in time; worst {worst['region']} {worst['value']:.3f} s"
        + (" (not seen yet)" if not worst["ok"] else "")
    )
    p99 = percentile(values, 0.99)
    return [
        {"name": names[0], "value": p99, "unit": "seconds", "source": "marker", "evidence": evidence,
         "lower_bound": bool(censored) and p99 >= min(s["value"] for s in censored)},
        {"name": names[1], "value": worst["value"], "unit": "seconds", "source": "marker",
         "evidence": evidence, "lower_bound": not worst["ok"]},
    ]  # fmt: skip


def _check_seconds(name: str, value: Any, limit: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= limit:
        raise ConfigError("arguments", name, f"expected 0 ≤ seconds ≤ {limit:g}, got {value!r}")


# ---------------------------------------------------------------- the stores


class _Store:
    """How to find the primary, write a marker on it and read the highest marker on each server."""

    def __init__(
        self,
        primary: Callable[[], str],
        write: Callable[[str, int], None],
        readers: dict[str, Callable[[], int]],
        close: Callable[[], None],
    ) -> None:
        self.primary, self.write, self.readers, self.close = primary, write, readers, close


def _store(service: str, configuration: Mapping[str, Any]) -> _Store:
    if service == "redis":
        return _redis_store(configuration)
    if service == "postgres":
        return _postgres_store(configuration)
    raise ConfigError("arguments", "service", f"expected redis or postgres, got {service!r}")


def _servers(service: str, configuration: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(replica name, host:port) of every configured server of `service`, in region order."""
    key = {"redis": "redis_url", "postgres": "postgres_dsn"}.get(service)
    if key is None:
        raise ConfigError("arguments", "service", f"expected redis or postgres, got {service!r}")
    found = []
    for region, info in (configuration.get("regions") or {}).items():
        url = (info or {}).get(key)
        if url:
            parts = urllib.parse.urlsplit(url)
            found.append((region, f"{parts.hostname}:{parts.port}"))
    if len(found) < 2:
        raise ConfigError(
            "configuration", f"regions.*.{key}", f"expected a {service} server in at least two regions"
        )
    return found


def _redis_store(configuration: Mapping[str, Any]) -> _Store:
    """Servers from the regions' redis_url; the primary is whichever one the Sentinels name now."""
    from harness.primaries import redis_primary

    if not configuration.get("redis_sentinels") or not configuration.get("redis_master_name"):
        raise ConfigError(
            "configuration", "redis_sentinels", "expected Sentinel addresses and redis_master_name"
        )
    servers = _servers("redis", configuration)
    key = f"harness:lag:{uuid.uuid4().hex}"

    def connect(address: str) -> redis.Redis:
        # No retries (redis-py retries a failed command 10 times by default, for seconds): a
        # failed read is a reading, and a cancelled probe must not wait on one.
        return redis.Redis(
            host=address.rpartition(":")[0],
            port=int(address.rpartition(":")[2]),
            socket_timeout=_READ_TIMEOUT_SECONDS,
            socket_connect_timeout=_READ_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )

    clients = {name: connect(address) for name, address in servers}
    readers_clients = {name: connect(address) for name, address in servers}
    by_address = {address: name for name, address in servers}

    def primary() -> str:
        found = redis_primary(configuration)
        if found is None:
            raise ConnectionError("no Sentinel names a primary")
        if found.address not in by_address:
            raise ConnectionError(f"the primary {found.address} is not a configured region's redis_url")
        return by_address[found.address]

    def write(name: str, sequence: int) -> None:
        clients[name].set(key, sequence, ex=_MARKER_TTL_SECONDS)

    def reader(client: redis.Redis) -> Callable[[], int]:
        def read() -> int:
            value = client.get(key)
            return int(value) if value is not None else 0

        return read

    def close() -> None:
        for client in (*clients.values(), *readers_clients.values()):
            client.close()

    return _Store(primary, write, {name: reader(c) for name, c in readers_clients.items()}, close)


_CREATE = "CREATE TABLE IF NOT EXISTS harness_lag_sequence (probe text PRIMARY KEY, sequence bigint NOT NULL)"
_UPSERT = (
    "INSERT INTO harness_lag_sequence (probe, sequence) VALUES (%s, %s) "
    "ON CONFLICT (probe) DO UPDATE SET sequence = EXCLUDED.sequence"
)


class _Connection:
    """One lazily (re)opened PostgreSQL connection: a failed one is dropped and opened again next time."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._connection: Any = None

    def execute(self, sql: str, parameters: tuple[Any, ...] = ()) -> Any:
        import psycopg

        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(
                self.dsn, connect_timeout=1, autocommit=True, options="-c statement_timeout=1000"
            )
        try:
            cursor = self._connection.execute(sql, parameters)
            return cursor.fetchone() if cursor.description is not None else None
        except psycopg.Error:
            self.close()
            raise

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None


def _postgres_store(configuration: Mapping[str, Any]) -> _Store:
    """Servers from the regions' postgres_dsn; the primary is the one not in recovery."""
    import psycopg

    from harness.primaries import by_region

    dsns = by_region(configuration, "postgres_dsn")
    _servers("postgres", configuration)  # at least two servers
    probe_id = uuid.uuid4().hex
    writers = {name: _Connection(dsn) for name, dsn in dsns.items()}
    readers = {name: _Connection(dsn) for name, dsn in dsns.items()}
    prepared: set[str] = set()

    def primary() -> str:
        errors = []
        for name, connection in writers.items():
            try:
                if not connection.execute("SELECT pg_is_in_recovery()")[0]:
                    return name
            except psycopg.Error as exc:
                errors.append(f"{name}: {type(exc).__name__}")
        raise ConnectionError(
            "no PostgreSQL server is a primary" + (f" ({', '.join(errors)})" if errors else "")
        )

    def write(name: str, sequence: int) -> None:
        if name not in prepared:
            writers[name].execute(_CREATE)
            prepared.add(name)
        writers[name].execute(_UPSERT, (probe_id, sequence))

    def reader(connection: _Connection) -> Callable[[], int]:
        def read() -> int:
            try:
                row = connection.execute(
                    "SELECT sequence FROM harness_lag_sequence WHERE probe = %s", (probe_id,)
                )
            except psycopg.errors.UndefinedTable:
                return 0  # the server answers; the table has not reached it yet
            return int(row[0]) if row else 0

        return read

    def close() -> None:
        for connection in (*writers.values(), *readers.values()):
            connection.close()

    return _Store(primary, write, {name: reader(c) for name, c in readers.items()}, close)


# ---------------------------------------------------------------- the exporter witness


def exporter_lag_samples(
    configuration: Mapping[str, Any], service: str, start_wall: float, end_wall: float, replicas: list[str]
) -> list[dict[str, Any]]:
    """Exporter-reported lag of each replica at every scrape step in [start, end] (seconds).

    A replica with no exporter reading at a step is left out at that step; one with none at all
    gets one failed sample saying so. Raises ConnectionError when Prometheus cannot be asked.
    """
    from harness.probes.slo import range_series

    servers = dict(_servers(service, configuration))
    lag_query, _ = PROMETHEUS_LAG_QUERIES[service]
    lag = range_series(configuration, lag_query, start_wall, end_wall)
    link = range_series(configuration, PROMETHEUS_LINK_QUERIES[service], start_wall, end_wall)
    by_port = {address.rpartition(":")[2]: name for name, address in servers.items()}

    def replica_of(labels: Mapping[str, str]) -> str:
        if "slave_port" in labels:
            return by_port.get(labels["slave_port"], "")
        if "application_name" in labels:
            return labels["application_name"]
        if "slot_name" in labels:  # a standby's slot is named after it (sandbox: standby_<region>)
            slot = labels["slot_name"]
            return next((name for name in servers if slot.endswith(name.replace("-", "_"))), slot)
        return labels.get("region", "")

    lag_at: dict[str, dict[float, float]] = {}
    for labels, points in lag:
        lag_at.setdefault(replica_of(labels), {}).update(points)
    link_at: dict[str, dict[float, float]] = {}
    for labels, points in link:
        link_at.setdefault(replica_of(labels), {}).update(points)
    offset = time.monotonic() - time.time()
    samples = []
    for replica in replicas:
        steps = sorted(set(lag_at.get(replica, {})) | set(link_at.get(replica, {})))
        down_since: float | None = None
        for at in steps:
            up = link_at.get(replica, {}).get(at)
            if up == 0:
                down_since = at if down_since is None else down_since
                value: float | None = at - down_since
            else:
                down_since = None
                value = lag_at.get(replica, {}).get(at)
            if value is not None:
                samples.append(_sample(replica, value, at + offset, "", probe=EXPORTER_PROBE))
        if not any(s["region"] == replica for s in samples):
            samples.append(
                _sample(
                    replica,
                    None,
                    end_wall + offset,
                    f"no exporter series for {replica}",
                    ok=False,
                    probe=EXPORTER_PROBE,
                )
            )
    return samples
