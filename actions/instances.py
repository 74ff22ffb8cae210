"""Instance faults on the local sandbox: crash, stop, pause and resume real processes.

Every action goes through `harness.sandbox`'s component helpers (the pid, command and port
live in ``<sandbox_dir>/components.json``) and through the fault ledger: the undo is written
down before the signal is sent, and the inverse action closes the entry. A component is
named as in components.json (``redis-us-east-1``, ``sentinel-2``, ``postgres-eu-west-1``), or
``redis-primary`` / ``postgres-primary`` for whichever server is the primary right now.
"""

from __future__ import annotations

import signal as signals
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import redis

from harness import ledger
from harness.errors import ConfigError
from harness.sandbox import (
    Component,
    load_components,
    pause_component,
    resume_component,
    start_component,
    stop_component,
)
from harness.sandbox.components import HOST, is_alive, is_paused, port_accepts

__all__ = [
    "fail_region",
    "pause_instance",
    "restore_region",
    "resume_instance",
    "start_instance",
    "stop_instance",
]

_MODULE = "actions.instances"
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
    ledger.record_effect(ledger.state_dir(configuration), fault_id, proven, evidence)
    return _result(fault_id, proven, evidence, at, component=target.name, signal=signal.name)


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
    started = start_component(directory, name)
    _close(configuration, "stop_instance", name)
    return {
        "component": name,
        "started": True,
        "pid": started.pid,
        "port": started.port,
        "listening": port_accepts(started.port),
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
    ledger.record_effect(ledger.state_dir(configuration), fault_id, proven, evidence)
    return _result(fault_id, proven, evidence, at, component=target.name, signal="SIGSTOP")


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
    ledger.record_effect(ledger.state_dir(configuration), fault_id, proven, evidence)
    return _result(fault_id, proven, evidence, at, region=region, components=[c.name for c in stopped])


def restore_region(
    region: str, sandbox_dir: str | None = None, configuration: Mapping[str, Any] | None = None
) -> dict:
    """Start every process of a region again, in their original order, each waiting until it listens."""
    directory = _sandbox_dir(sandbox_dir, configuration)
    members = [c for c in load_components(directory).values() if c.region == region]
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
    """The component a name means now: `redis-primary` asks Sentinel which server is master."""
    if name == "redis-primary":
        port = _redis_primary_port(configuration or {})
        servers = [c for c in load_components(directory).values() if c.kind == "redis" and c.port == port]
        if not servers:
            raise ConfigError(
                "configuration", "component", f"Sentinel names port {port} as primary, no component has it"
            )
        return servers[0]
    if name == "postgres-primary":
        return _postgres_primary(directory, configuration or {})
    return _known(directory, name)


def _redis_primary_port(configuration: Mapping[str, Any]) -> int:
    sentinels = configuration.get("redis_sentinels") or []
    master = configuration.get("redis_master_name", "")
    if not sentinels or not master:
        raise ConfigError(
            "configuration", "redis_sentinels", "expected Sentinel addresses and redis_master_name"
        )
    for address in sentinels:
        host, _, port = address.rpartition(":")
        try:
            with redis.Redis(host=host, port=int(port), socket_timeout=1, socket_connect_timeout=1) as client:
                found = client.sentinel_get_master_addr_by_name(master)
        except (redis.RedisError, OSError):
            continue
        if found:
            return int(found[1])
    raise ConfigError(
        "configuration", "redis_sentinels", f"no Sentinel of {sentinels} names a primary for {master!r}"
    )


def _postgres_primary(directory: Path, configuration: Mapping[str, Any]) -> Component:
    """The server (postgres-R, or patroni-R) of the region whose PostgreSQL is not in recovery."""
    import psycopg

    components = load_components(directory)
    for region, info in configuration.get("regions", {}).items():
        if not info.get("postgres_dsn"):
            continue
        try:
            with psycopg.connect(info["postgres_dsn"], connect_timeout=1) as connection:
                (in_recovery,) = connection.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.Error:
            continue
        if not in_recovery:
            for name in (f"postgres-{region}", f"patroni-{region}"):
                if name in components:
                    return components[name]
    raise ConfigError(
        "configuration", "component", "no PostgreSQL server of the configured regions is a primary"
    )


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
    return ledger.record_applied(
        ledger.state_dir(configuration),
        f"{_MODULE}.{action}",
        target,
        ledger.Undo(_MODULE, undo, {**arguments, "sandbox_dir": str(directory)}),
        run_id=(configuration or {}).get("run_id"),
    )


def _stopped_primary(directory: Path, alias: str, configuration: Mapping[str, Any] | None) -> str | None:
    """The component an open stop_instance fault stopped for a `<kind>-primary` alias, if any."""
    if alias not in ("redis-primary", "postgres-primary"):
        return None
    kind = alias.removesuffix("-primary")
    components = load_components(directory)
    stopped = [
        fault.target
        for fault in ledger.open_faults(ledger.state_dir(configuration))
        if fault.action == f"{_MODULE}.stop_instance"
        and fault.target in components
        and components[fault.target].kind == kind
    ]
    return stopped[-1] if stopped else None


def _close(configuration: Mapping[str, Any] | None, action: str, target: str) -> None:
    directory = ledger.state_dir(configuration)
    while (fault := ledger.open_fault_for(directory, f"{_MODULE}.{action}", target)) is not None:
        ledger.record_undone(directory, fault.fault_id)


def _result(fault_id: str, proven: bool, evidence: str, at_monotonic: float, **detail: Any) -> dict:
    return {
        "fault_id": fault_id,
        "effect_proven": proven,
        "evidence": evidence,
        "at_monotonic": at_monotonic,
        **detail,
    }
