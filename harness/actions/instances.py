"""Instance faults on the local sandbox: crash, stop, pause and resume real processes.

Every action goes through `harness.sandbox`'s component helpers (the pid, command and port
live in ``<sandbox_dir>/components.json``) and through the fault ledger: the undo is written
down before the signal is sent, and the inverse action closes the entry. A component is
named as in components.json (``redis-us-east-1``, ``sentinel-2``, ``postgres-eu-west-1``), or
``redis-primary`` / ``postgres-primary`` for whichever server is the primary right now.

`promote_standby` is the harness acting as the operator of a ``postgres.failover: manual``
system: once the primary is gone it promotes the most advanced standby and points the other
standbys at it. Clients find the new primary themselves (the canary and the regional APIs
connect with libpq's multi-host ``target_session_attrs=read-write``). An old primary started
again after a promotion rejoins as a standby of the new one, so two servers never take writes.
"""

from __future__ import annotations

import json
import signal as signals
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed

from harness import ledger, primaries
from harness.actions._faults import close_faults, open_fault, record_effect
from harness.errors import ConfigError
from harness.sandbox import (
    Component,
    load_components,
    pause_component,
    resume_component,
    start_component,
    stop_component,
)
from harness.sandbox import postgres as sandbox_postgres
from harness.sandbox.components import HOST, is_alive, is_paused, port_accepts

__all__ = [
    "fail_region",
    "pause_instance",
    "promote_standby",
    "restore_region",
    "resume_instance",
    "start_instance",
    "stop_instance",
]

_MODULE = "harness.actions.instances"
_CHECK_TIMEOUT_SECONDS = 0.5


def stop_instance(
    component: str, graceful: bool = False, configuration: Mapping[str, Any] | None = None
) -> dict:
    """Stop one sandbox process: SIGKILL (a crash) or, when graceful, SIGTERM. Undo with start_instance.

    Proof of effect: the process is gone and its port refuses connections.
    """
    directory = _sandbox_dir(None, configuration)
    target = _resolve(directory, component, configuration)
    signal = signals.SIGTERM if graceful else signals.SIGKILL
    fault_id = _record(
        configuration, "stop_instance", target.name, "start_instance", {"component": target.name}, directory
    )
    at = time.monotonic()
    stopped = stop_component(directory, target.name, signal)
    refused = _refuses(stopped.port)
    proven = refused and not is_alive(stopped)
    evidence = f"{target.name} (pid {stopped.pid}) got {signal.name}; {HOST}:{stopped.port} " + (
        "refuses connections" if refused else "still accepts connections"
    )
    return record_effect(
        configuration,
        fault_id,
        [(proven, evidence)],
        at_monotonic=at,
        component=target.name,
        signal=signal.name,
    )


def start_instance(
    component: str, sandbox_dir: str | None = None, configuration: Mapping[str, Any] | None = None
) -> dict:
    """Start a component stopped by stop_instance and wait (≤ 15 s) until it listens. Safe to call twice.

    `redis-primary` / `postgres-primary` mean the server stop_instance stopped under that name,
    as the fault ledger recorded it.
    """
    directory = _sandbox_dir(sandbox_dir, configuration)
    name = _faulted(directory, component, "stop_instance", configuration)
    if name is None:
        return {"component": component, "started": False, "detail": "no open stop_instance fault on it"}
    rejoined = _rejoin_if_superseded(directory, load_components(directory)[name])
    started = start_component(directory, name)
    _close(configuration, "stop_instance", name)
    return {
        "component": name,
        "started": True,
        "pid": started.pid,
        "port": started.port,
        "listening": port_accepts(started.port),
        **({"rejoined_as_standby_of": rejoined} if rejoined else {}),
    }


def pause_instance(component: str, configuration: Mapping[str, Any] | None = None) -> dict:
    """Freeze one sandbox process (SIGSTOP): it keeps its port but answers nothing. Undo: resume_instance.

    Proof of effect: the process state is stopped (T).
    """
    directory = _sandbox_dir(None, configuration)
    target = _resolve(directory, component, configuration)
    fault_id = _record(
        configuration, "pause_instance", target.name, "resume_instance", {"component": target.name}, directory
    )
    at = time.monotonic()
    paused = pause_component(directory, target.name)
    proven = _eventually(lambda: is_paused(paused))
    evidence = f"{target.name} (pid {paused.pid}) " + (
        "is stopped (SIGSTOP, state T)" if proven else "is not in the stopped state after SIGSTOP"
    )
    return record_effect(
        configuration,
        fault_id,
        [(proven, evidence)],
        at_monotonic=at,
        component=target.name,
        signal="SIGSTOP",
    )


def resume_instance(
    component: str, sandbox_dir: str | None = None, configuration: Mapping[str, Any] | None = None
) -> dict:
    """Resume a process paused by pause_instance (SIGCONT). Safe to call twice."""
    directory = _sandbox_dir(sandbox_dir, configuration)
    name = _faulted(directory, component, "pause_instance", configuration)
    if name is None:
        return {"component": component, "paused": False, "detail": "no open pause_instance fault on it"}
    resumed = resume_component(directory, name)
    _close(configuration, "pause_instance", resumed.name)
    return {
        "component": resumed.name,
        "pid": resumed.pid,
        "paused": not _eventually(lambda: not is_paused(resumed)),
    }


def fail_region(region: str, graceful: bool = False, configuration: Mapping[str, Any] | None = None) -> dict:
    """Stop every sandbox process of a region (SIGKILL, or SIGTERM when graceful). Undo with restore_region.

    Proof of effect: every stopped process is gone and every one of their ports refuses connections.
    """
    directory = _sandbox_dir(None, configuration)
    members = [c for c in load_components(directory).values() if c.region == region]
    if not members:
        regions = sorted({c.region for c in load_components(directory).values() if c.region})
        raise ConfigError(
            "configuration", "region", f"no sandbox component in region {region!r} (regions: {regions})"
        )
    signal = signals.SIGTERM if graceful else signals.SIGKILL
    fault_id = _record(configuration, "fail_region", region, "restore_region", {"region": region}, directory)
    at = time.monotonic()
    stopped = [stop_component(directory, c.name, signal) for c in members]
    still_up = [c.name for c in stopped if is_alive(c) or not _refuses(c.port)]
    proven = not still_up
    names = ", ".join(c.name for c in stopped)
    evidence = f"{signal.name} to {names}; " + (
        "every port refuses connections" if proven else f"still up: {', '.join(still_up)}"
    )
    return record_effect(
        configuration,
        fault_id,
        [(proven, evidence)],
        at_monotonic=at,
        region=region,
        components=[c.name for c in stopped],
    )


def restore_region(
    region: str, sandbox_dir: str | None = None, configuration: Mapping[str, Any] | None = None
) -> dict:
    """Start every process of a region again, in their original order, each waiting until it listens."""
    directory = _sandbox_dir(sandbox_dir, configuration)
    members = [c for c in load_components(directory).values() if c.region == region]
    for member in members:
        _rejoin_if_superseded(directory, member)
    started = [start_component(directory, c.name) for c in members]
    _close(configuration, "fail_region", region)
    return {
        "region": region,
        "components": [c.name for c in started],
        "listening": all(port_accepts(c.port) for c in started),
    }


# ---------------------------------------------------------------- helpers


def _sandbox_dir(given: str | None, configuration: Mapping[str, Any] | None) -> Path:
    directory = given or (configuration or {}).get("sandbox_dir")
    if not directory:
        raise ConfigError(
            "configuration",
            "sandbox_dir",
            "expected the sandbox directory (from the sandbox's endpoints.json)",
        )
    return Path(directory)


def _known(directory: Path, name: str) -> Component:
    components = load_components(directory)
    if name not in components:
        known = ", ".join(components) or "none"
        raise ConfigError(
            "configuration", "component", f"no sandbox component {name!r} in {directory} (known: {known})"
        )
    return components[name]


_ALIASES = {"redis-primary": ("redis",), "postgres-primary": ("postgres", "patroni")}


def _faulted(directory: Path, name: str, action: str, configuration: Mapping[str, Any] | None) -> str | None:
    """The component an inverse action means: an alias names the server the fault ledger says was hit."""
    if name not in _ALIASES:
        return _known(directory, name).name
    components = load_components(directory)
    kinds = _ALIASES[name]
    for fault in reversed(ledger.open_faults(ledger.state_dir(configuration))):
        hit = components.get(fault.target)
        if fault.action == f"{_MODULE}.{action}" and hit is not None and hit.kind in kinds:
            return fault.target
    return None


def _resolve(directory: Path, name: str, configuration: Mapping[str, Any] | None) -> Component:
    """The component a name means now: `redis-primary` asks Sentinel which server is master,
    `postgres-primary` which server is not in recovery (under Patroni: that region's Patroni)."""
    if name == "postgres-primary":
        servers = _postgres_components(directory)
        found = primaries.postgres_primary(_as_configuration(servers))
        if found is None or found.port not in servers:
            raise ConfigError(
                "configuration", "component", "no PostgreSQL server of the sandbox is a primary"
            )
        return servers[found.port]
    if name != "redis-primary":
        return _known(directory, name)
    configuration = configuration or {}
    sentinels = configuration.get("redis_sentinels") or []
    if not sentinels or not configuration.get("redis_master_name"):
        raise ConfigError(
            "configuration", "redis_sentinels", "expected Sentinel addresses and redis_master_name"
        )
    master = primaries.redis_primary(configuration)
    if master is None:
        raise ConfigError("configuration", "redis_sentinels", f"no Sentinel of {sentinels} names a primary")
    matching = [c for c in load_components(directory).values() if c.kind == "redis" and c.port == master.port]
    if not matching:
        raise ConfigError(
            "configuration", "component", f"Sentinel names port {master.port} as primary, no component has it"
        )
    return matching[0]


def _postgres_components(directory: Path) -> dict[int, Component]:
    """PostgreSQL port → the component to signal for that server: the server itself, or under
    Patroni the region's Patroni (whose configuration file names its server's port). Read from
    the sandbox directory alone, so a ledger undo needs no configuration."""
    found = {}
    for component in load_components(directory).values():
        if component.kind == "postgres":
            found[component.port] = component
        elif component.kind == "patroni":
            try:
                config = json.loads((directory / f"{component.name}.yml").read_text())
                found[int(config["postgresql"]["listen"].rpartition(":")[2])] = component
            except (OSError, ValueError, KeyError):
                continue
    return found


def _as_configuration(servers: Mapping[int, Component]) -> dict[str, Any]:
    """The `regions` configuration primaries reads, one direct DSN per server."""
    return {
        "regions": {c.region: {"postgres_dsn": sandbox_postgres.dsn(port)} for port, c in servers.items()}
    }


def _eventually(check: Callable[[], bool], within_seconds: float = 2.0) -> bool:
    """Whether `check` holds within `within_seconds`: signals and socket teardown land asynchronously."""
    deadline = time.monotonic() + within_seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _refuses(port: int) -> bool:
    return _eventually(lambda: not port_accepts(port, _CHECK_TIMEOUT_SECONDS))


def _record(
    configuration: Mapping[str, Any] | None,
    action: str,
    target: str,
    undo: str,
    arguments: dict[str, Any],
    directory: Path,
) -> str:
    undo_call = ledger.Undo(_MODULE, undo, {**arguments, "sandbox_dir": str(directory)})
    return open_fault(configuration, f"{_MODULE}.{action}", target, undo_call)


def _close(configuration: Mapping[str, Any] | None, action: str, target: str) -> None:
    close_faults(configuration, (f"{_MODULE}.{action}",), target)


# ---------------------------------------------------------------- the harness as the operator


def promote_standby(timeout_seconds: float = 30.0, configuration: Mapping[str, Any] | None = None) -> dict:
    """Fail PostgreSQL over by hand, as the operator of a `postgres.failover: manual` system would.

    Once no server takes writes: promotes the most advanced reachable standby (largest WAL
    position received) with ``pg_promote()``, waiting up to `timeout_seconds`, then points every
    other standby at it (a replication slot on the new primary, ``ALTER SYSTEM`` primary_conninfo).
    Returns `old_primary`, `new_primary` and a ``postgres.promoted`` event timed when
    ``pg_promote`` returned (exact: the harness's own call). Under Patroni it does nothing and
    says so: Patroni promotes. Raises ActivityFailed when a primary still takes writes (promoting
    would make two) or no standby can be promoted.
    """
    directory = _sandbox_dir(None, configuration)
    components = load_components(directory)
    if any(c.kind == "patroni" for c in components.values()):
        return {
            "promoted": False,
            "detail": "Patroni manages this cluster's failover; the harness does not promote",
        }
    servers = _postgres_components(directory)
    still = primaries.postgres_primary(_as_configuration(servers))
    if still is not None:
        raise ActivityFailed(
            f"PostgreSQL {still.address} ({still.region}) still takes writes: nothing to fail over"
        )
    old = _failed_postgres(directory, configuration, servers)
    candidates = _standby_positions(servers, exclude=old)
    if not candidates:
        raise ActivityFailed("no PostgreSQL standby answers: none can be promoted")
    position, chosen = max(candidates, key=lambda found: found[0])
    requested = time.monotonic()
    promoted = _sql(chosen.port, "SELECT pg_promote(true, %s)", (max(1, round(timeout_seconds)),))
    promoted_at = time.monotonic()
    if not promoted or promoted[0] is not True:
        raise ActivityFailed(f"pg_promote() on {chosen.name} did not finish within {timeout_seconds:g} s")
    followers = [c for _, c in candidates if c.port != chosen.port]
    synchronous = _repoint(chosen, followers)
    old_address = f"{HOST}:{old.port}" if old is not None else ""
    new_address = f"{HOST}:{chosen.port}"
    event = {
        "kind": "postgres.promoted",
        "source": f"{_MODULE}.promote_standby",
        "at_monotonic": promoted_at,
        "detail": {
            "old_primary": old_address,
            "new_primary": new_address,
            "region": chosen.region,
            "exact": True,
            "requested_at_monotonic": requested,
            "received_wal_bytes": position,
            "followers": [c.name for c in followers],
            "synchronous": synchronous,
        },
    }
    return {
        "promoted": True,
        "old_primary": old_address,
        "new_primary": new_address,
        "region": chosen.region,
        "promote_seconds": promoted_at - requested,
        "followers": [c.name for c in followers],
        "events": [event],
    }


def _sql(
    port: int, query: str, parameters: tuple[Any, ...] = (), timeout_seconds: float = 2.0
) -> tuple | None:
    import psycopg

    with psycopg.connect(
        sandbox_postgres.dsn(port), connect_timeout=max(1, round(timeout_seconds)), autocommit=True
    ) as connection:
        cursor = connection.execute(query, parameters)
        return cursor.fetchone() if cursor.description is not None else None


def _failed_postgres(
    directory: Path, configuration: Mapping[str, Any] | None, servers: Mapping[int, Component]
) -> Component | None:
    """The PostgreSQL server an open fault took down (newest first): stopped, paused, in a failed region."""
    for fault in reversed(ledger.open_faults(ledger.state_dir(configuration))):
        for component in servers.values():
            if fault.target == component.name or (
                fault.action == f"{_MODULE}.fail_region" and fault.target == component.region
            ):
                return component
    return next((c for c in servers.values() if c.role == "primary"), None)


def _standby_positions(
    servers: Mapping[int, Component], exclude: Component | None
) -> list[tuple[int, Component]]:
    """(WAL bytes received, server) for every standby that answers, the failed server left out."""
    import psycopg

    found = []
    for port, component in servers.items():
        if exclude is not None and port == exclude.port:
            continue
        try:
            row = _sql(
                port,
                "SELECT pg_is_in_recovery(), pg_wal_lsn_diff(greatest(pg_last_wal_receive_lsn(),"
                " pg_last_wal_replay_lsn()), '0/0')::bigint",
                timeout_seconds=1.0,
            )
        except psycopg.Error:
            continue
        if row and row[0]:
            found.append((int(row[1] or 0), component))
    return found


def _repoint(primary: Component, followers: list[Component]) -> bool:
    """Point `followers` at the new `primary` (a slot each); whether commits still wait for a standby
    (with none left to wait for, synchronous_standby_names is cleared so writes do not hang)."""
    for follower in followers:
        slot = sandbox_postgres.slot_name(follower.region)
        _sql(
            primary.port,
            "SELECT pg_create_physical_replication_slot(%s, true) WHERE NOT EXISTS "
            "(SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)",
            (slot, slot),
        )
        conninfo = sandbox_postgres.standby_conninfo(follower.region, primary.port)
        _sql(follower.port, f"ALTER SYSTEM SET primary_conninfo = '{conninfo}'")
        _sql(follower.port, f"ALTER SYSTEM SET primary_slot_name = '{slot}'")
        _sql(follower.port, "SELECT pg_reload_conf()")
    names = _sql(primary.port, "SHOW synchronous_standby_names")
    if names and names[0] and not followers:
        _sql(primary.port, "ALTER SYSTEM SET synchronous_standby_names = ''")
        _sql(primary.port, "SELECT pg_reload_conf()")
        return False
    return bool(names and names[0])


def _rejoin_if_superseded(directory: Path, component: Component) -> str:
    """Before a stopped PostgreSQL server starts again: when another server is primary now, make it
    start as that server's standby (never a second primary). The new primary's address, or "".
    An active-active server (role ``active``, harness.sandbox.pglogical) is a writer by design and
    comes back as one."""
    if component.kind != "postgres" or component.role == "active":
        return ""
    servers = _postgres_components(directory)
    others = {port: c for port, c in servers.items() if port != component.port}
    current = primaries.postgres_primary(_as_configuration(others))
    if current is None:
        return ""
    names = _sql(current.port, "SHOW synchronous_standby_names")
    sandbox_postgres.rejoin_as_standby(component, component.region, current.port, names[0] if names else "")
    return current.address
