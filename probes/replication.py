"""Replication lag, measured by the client (timestamped markers) and read from Prometheus.

A marker is written on the primary and every replica is polled (about every millisecond)
until it shows it: the lag is the time from sending the write to seeing it on the replica,
at millisecond resolution. The Prometheus exporter series give the trend between markers and
a cross-check, at scrape resolution.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis

from harness.errors import ConfigError
from probes._window import missing

__all__ = ["replication_lag", "replication_lag_prometheus", "replication_lag_seconds"]

_POLL_SECONDS = 0.001
_MARKER_TTL_SECONDS = 300
# Exporter series of replication lag: Redis replicas report seconds since their last ack to
# the primary; postgres_exporter reports how many WAL bytes each standby is behind.
PROMETHEUS_LAG_QUERIES = {
    "redis": ("max(redis_connected_slave_lag_seconds)", "seconds"),
    "postgres": ("max(pg_stat_replication_pg_wal_lsn_diff)", "bytes"),
}


def replication_lag_seconds(
    service: str = "redis", timeout_seconds: float = 5.0, configuration: Mapping[str, Any] | None = None
) -> dict:
    """Write one marker on the primary and time its arrival on every replica (seconds, ms resolution).

    Returns `replication_lag_seconds` (the slowest replica; None when one never showed it within
    `timeout_seconds`), per-replica `replicas`, and the same as `measurements`/`samples`.
    """
    cluster = _cluster(service, configuration or {})
    samples = _one_marker(cluster, timeout_seconds)
    worst = _worst(samples)
    return {
        "replication_lag_seconds": worst,
        "replicas": {s["replica"]: s["value"] for s in samples},
        "samples": samples,
        "measurements": [_lag_measurement("replication_lag_seconds", samples, worst, timeout_seconds)],
    }


def replication_lag(
    duration_seconds: float,
    interval_seconds: float = 1.0,
    service: str = "redis",
    timeout_seconds: float = 5.0,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Measure marker lag every `interval_seconds` for `duration_seconds` (for `background: true`).

    Returns every reading as `samples` (probe `replication_lag`, seconds; failed when a replica
    did not show the marker within `timeout_seconds`) and `measurements`:
    replication_lag_p99_seconds and replication_lag_max_seconds.
    """
    if not 0 < duration_seconds <= 3600:
        raise ConfigError(
            "arguments", "duration_seconds", f"expected 0 < seconds ≤ 3600, got {duration_seconds!r}"
        )
    if not 0 < interval_seconds <= duration_seconds:
        raise ConfigError(
            "arguments", "interval_seconds", f"expected 0 < seconds ≤ duration, got {interval_seconds!r}"
        )
    configuration = configuration or {}
    samples: list[dict[str, Any]] = []
    deadline = time.monotonic() + duration_seconds
    next_marker = time.monotonic()
    while next_marker < deadline:
        try:
            cluster = _cluster(service, configuration)  # again each time: the primary may have moved
            samples.extend(
                _one_marker(cluster, min(timeout_seconds, max(0.001, deadline - time.monotonic())))
            )
        except ConfigError:
            raise
        except Exception as exc:  # primary unreachable: a failed reading, not a crash
            samples.append(_sample("", "", None, time.monotonic(), f"{type(exc).__name__}: {exc}"[:200]))
        next_marker += interval_seconds
        time.sleep(max(0.0, min(next_marker, deadline) - time.monotonic()))
    lags = sorted(s["value"] for s in samples if s["ok"])
    failed = sum(1 for s in samples if not s["ok"])
    if lags:
        p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))]
        evidence = f"{len(lags)} marker readings, {failed} failed; max {lags[-1] * 1000:.1f} ms"
        measurements = [
            {"name": "replication_lag_p99_seconds", "value": p99, "unit": "seconds", "source": "marker",
             "evidence": evidence, "lower_bound": False},
            {"name": "replication_lag_max_seconds", "value": lags[-1], "unit": "seconds", "source": "marker",
             "evidence": evidence, "lower_bound": failed > 0},
        ]  # fmt: skip
    else:
        reason = f"no marker reached a replica ({failed} failed readings)"
        measurements = [
            missing("replication_lag_p99_seconds", "seconds", "marker", reason),
            missing("replication_lag_max_seconds", "seconds", "marker", reason),
        ]
    return {"samples": samples, "measurements": measurements}


def replication_lag_prometheus(
    window_seconds: float = 300.0,
    service: str = "redis",
    query: str | None = None,
    unit: str = "seconds",
    step_seconds: float = 1.0,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Replication lag from the exporter series over the last `window_seconds`, from Prometheus.

    Without `query`: Redis lag in seconds (`redis_connected_slave_lag_seconds`, 1 s resolution)
    or PostgreSQL lag in bytes of WAL (`pg_stat_replication_pg_wal_lsn_diff`). Returns `samples`
    (probe `replication_lag_prometheus`) and the measurement `replication_lag_prometheus_max_<unit>`;
    its value is None (unknown, never a pass) when Prometheus is unreachable or has no data.
    """
    from probes.slo import range_values

    if query is None:
        if service not in PROMETHEUS_LAG_QUERIES:
            raise ConfigError("arguments", "service", f"expected redis or postgres, got {service!r}")
        query, unit = PROMETHEUS_LAG_QUERIES[service]
    name = f"replication_lag_prometheus_max_{unit}"
    try:
        points = range_values(configuration or {}, query, window_seconds, step_seconds)
    except ConnectionError as exc:
        return {"samples": [], "measurements": [missing(name, unit, "prometheus", str(exc))]}
    if not points:
        return {"samples": [], "measurements": [missing(name, unit, "prometheus", f"no data for {query}")]}
    samples = [_sample("", "", value, at, "", probe="replication_lag_prometheus") for at, value in points]
    worst = max(value for _, value in points)
    evidence = f"{query}: max over {len(points)} points in {window_seconds:g} s"
    measurement = {"name": name, "value": worst, "unit": unit, "source": "prometheus", "evidence": evidence,
                   "lower_bound": False}  # fmt: skip
    return {"samples": samples, "measurements": [measurement]}


# ---------------------------------------------------------------- markers


class _Cluster:
    """How to write a marker on the primary and look for it on each replica."""

    def __init__(
        self,
        write: Callable[[str], None],
        readers: dict[str, tuple[str, Callable[[str], bool]]],
        close: Callable[[], None],
    ) -> None:
        self.write, self.readers, self.close = write, readers, close


def _cluster(service: str, configuration: Mapping[str, Any]) -> _Cluster:
    if service == "redis":
        return _redis_cluster(configuration)
    if service == "postgres":
        return _postgres_cluster(configuration)
    raise ConfigError("arguments", "service", f"expected redis or postgres, got {service!r}")


def _one_marker(cluster: _Cluster, timeout_seconds: float) -> list[dict[str, Any]]:
    """Write a marker and poll every replica in parallel; one sample per replica."""
    marker = f"harness:lag:{uuid.uuid4().hex}"
    try:
        if not cluster.readers:
            raise ConfigError("configuration", "regions", "no replica to measure lag on")
        seen: dict[str, float | None] = {}
        sent = time.monotonic()
        cluster.write(marker)
        deadline = sent + timeout_seconds

        def wait(replica: str) -> None:
            _, present = cluster.readers[replica]
            while time.monotonic() < deadline:
                try:
                    if present(marker):
                        seen[replica] = time.monotonic()
                        return
                except Exception:  # unreachable, or the marker table not replicated yet: keep polling
                    time.sleep(0.05)
                time.sleep(_POLL_SECONDS)
            seen[replica] = None

        with ThreadPoolExecutor(max_workers=len(cluster.readers)) as pool:
            list(pool.map(wait, cluster.readers))
        return [
            _sample(
                replica,
                region,
                None if seen[replica] is None else seen[replica] - sent,
                sent,
                "" if seen[replica] is not None else f"marker not seen within {timeout_seconds:g} s",
            )
            for replica, (region, _) in cluster.readers.items()
        ]
    finally:
        cluster.close()


def _sample(
    replica: str, region: str, lag: float | None, at: float, error: str, probe: str = "replication_lag"
) -> dict[str, Any]:
    return {
        "probe": probe,
        "at_monotonic": at,
        "value": lag,
        "ok": lag is not None,
        "region": region,
        "replica": replica,
        "error": error,
    }


def _worst(samples: list[dict[str, Any]]) -> float | None:
    if not samples or any(not s["ok"] for s in samples):
        return None
    return max(s["value"] for s in samples)


def _lag_measurement(name: str, samples: list[dict[str, Any]], worst: float | None, timeout: float) -> dict:
    if worst is None:
        late = [s["replica"] or "primary" for s in samples if not s["ok"]]
        return missing(
            name, "seconds", "marker", f"marker not seen within {timeout:g} s on {', '.join(late)}"
        )
    parts = ", ".join(f"{s['region'] or s['replica']} {s['value'] * 1000:.1f} ms" for s in samples)
    return {"name": name, "value": worst, "unit": "seconds", "source": "marker", "evidence": parts,
            "lower_bound": False}  # fmt: skip


def _region_of(configuration: Mapping[str, Any], key: str, address: str) -> str:
    for region, info in configuration.get("regions", {}).items():
        if info.get(key) and address in info[key]:
            return region
    return ""


def _redis_cluster(configuration: Mapping[str, Any]) -> _Cluster:
    """The primary and replicas the Sentinels know now (replicas marked down are skipped)."""
    sentinels = configuration.get("redis_sentinels") or []
    master = configuration.get("redis_master_name", "")
    if not sentinels or not master:
        raise ConfigError(
            "configuration", "redis_sentinels", "expected Sentinel addresses and redis_master_name"
        )
    primary, replicas = None, []
    for address in sentinels:
        host, _, port = address.rpartition(":")
        try:
            with redis.Redis(
                host=host, port=int(port), socket_timeout=1, socket_connect_timeout=1, decode_responses=True
            ) as sentinel:
                primary = sentinel.sentinel_get_master_addr_by_name(master)
                replicas = sentinel.sentinel_slaves(master)
                break
        except (redis.RedisError, OSError):
            continue
    if not primary:
        raise ConnectionError(f"no Sentinel of {sentinels} answered for {master!r}")
    clients: list[redis.Redis] = []

    def client(host: str, port: int) -> redis.Redis:
        made = redis.Redis(host=host, port=port, socket_timeout=1, socket_connect_timeout=1)
        clients.append(made)
        return made

    writer = client(primary[0], int(primary[1]))
    readers: dict[str, tuple[str, Callable[[str], bool]]] = {}
    for replica in replicas:
        flags = replica.get("flags", "")
        if "s_down" in flags or "disconnected" in flags:
            continue
        address = f"{replica['ip']}:{replica['port']}"
        reader = client(replica["ip"], int(replica["port"]))
        readers[address] = (
            _region_of(configuration, "redis_url", address),
            lambda key, r=reader: r.exists(key) > 0,
        )

    def close() -> None:
        for made in clients:
            made.close()

    return _Cluster(lambda key: writer.set(key, "1", ex=_MARKER_TTL_SECONDS), readers, close)


def _postgres_cluster(configuration: Mapping[str, Any]) -> _Cluster:
    """The region whose server is not in recovery writes; every other region's server reads."""
    import psycopg

    connections: dict[str, Any] = {}
    for region, info in configuration.get("regions", {}).items():
        if info.get("postgres_dsn"):
            try:
                connections[region] = psycopg.connect(
                    info["postgres_dsn"], connect_timeout=2, autocommit=True
                )
            except psycopg.Error:
                continue
    if not connections:
        raise ConfigError("configuration", "regions", "expected a reachable postgres_dsn in some region")

    def close() -> None:
        for connection in connections.values():
            connection.close()

    primaries = [
        r for r, c in connections.items() if not c.execute("SELECT pg_is_in_recovery()").fetchone()[0]
    ]
    if not primaries:
        close()
        raise ConnectionError("no PostgreSQL server of the configured regions is a primary")
    primary = connections[primaries[0]]
    primary.execute("CREATE TABLE IF NOT EXISTS harness_lag_marker (marker text PRIMARY KEY, at timestamptz)")

    def write(marker: str) -> None:
        primary.execute("INSERT INTO harness_lag_marker (marker) VALUES (%s)", (marker,))

    def reader(connection: Any) -> Callable[[str], bool]:
        def present(marker: str) -> bool:
            row = connection.execute(
                "SELECT 1 FROM harness_lag_marker WHERE marker = %s", (marker,)
            ).fetchone()
            return row is not None

        return present

    readers = {region: (region, reader(c)) for region, c in connections.items() if region != primaries[0]}
    return _Cluster(write, readers, close)
