"""Who is the primary now: the one place that asks Redis Sentinel and the PostgreSQL servers.

Probes (failover timelines, replication lag), actions (``redis-primary`` / ``postgres-primary``
aliases, the harness's own PostgreSQL promotion) and the sandbox all ask here, so they can never
disagree on how the primary is found. Each answer is a `Primary` (``host:port`` address and the
region whose endpoint names it), or None when nobody can tell.

Redis: the first Sentinel that answers names the master. PostgreSQL: the region whose server
is not in recovery; when two are (split brain) the answer is the first in region order, and
`postgres_primaries` lists them all.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

__all__ = ["Primary", "by_region", "postgres_primaries", "postgres_primary", "redis_primary", "region_of"]

_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Primary:
    address: str  # "host:port"
    region: str  # "" when no configured region names that address

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])


def by_region(configuration: Mapping[str, Any], key: str) -> dict[str, str]:
    """Each region's endpoint `key` (``redis_url``, ``postgres_dsn``), in region order; regions
    without one are left out."""
    return {
        str(region): str(info[key])
        for region, info in (configuration.get("regions") or {}).items()
        if isinstance(info, Mapping) and info.get(key)
    }


def region_of(configuration: Mapping[str, Any], key: str, address: str) -> str:
    """The region whose endpoint `key` (``redis_url``, ``postgres_dsn``) points at `address`."""
    for region, info in (configuration.get("regions") or {}).items():
        url = (info or {}).get(key) or ""
        if url and _address(url) == address:
            return region
    return ""


def _address(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.hostname or ''}:{parts.port or ''}"


def redis_primary(
    configuration: Mapping[str, Any], timeout_seconds: float = _TIMEOUT_SECONDS
) -> Primary | None:
    """The Redis master the first answering Sentinel names, or None when none answers or knows it."""
    master = configuration.get("redis_master_name", "")
    for sentinel_address in configuration.get("redis_sentinels") or []:
        host, _, port = str(sentinel_address).rpartition(":")
        try:
            with redis.Redis(
                host=host,
                port=int(port),
                socket_timeout=timeout_seconds,
                socket_connect_timeout=timeout_seconds,
            ) as sentinel:
                found = sentinel.sentinel_get_master_addr_by_name(master)
        except (redis.RedisError, OSError, ValueError):
            continue
        if found:
            found_host = found[0].decode() if isinstance(found[0], bytes) else str(found[0])
            address = f"{found_host}:{found[1]}"
            return Primary(address, region_of(configuration, "redis_url", address))
    return None


def postgres_primaries(
    configuration: Mapping[str, Any], timeout_seconds: float = _TIMEOUT_SECONDS
) -> list[Primary]:
    """Every configured PostgreSQL server that answers and is not in recovery, in region order."""
    import psycopg

    found = []
    for region, info in (configuration.get("regions") or {}).items():
        dsn = (info or {}).get("postgres_dsn")
        if not dsn:
            continue
        try:
            with psycopg.connect(dsn, connect_timeout=max(1, round(timeout_seconds))) as connection:
                (in_recovery,) = connection.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.Error:
            continue
        if not in_recovery:
            found.append(Primary(_address(dsn), region))
    return found


def postgres_primary(
    configuration: Mapping[str, Any], timeout_seconds: float = _TIMEOUT_SECONDS
) -> Primary | None:
    """The PostgreSQL server not in recovery (the first, in region order), or None."""
    found = postgres_primaries(configuration, timeout_seconds)
    return found[0] if found else None
