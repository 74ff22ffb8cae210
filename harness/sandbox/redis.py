"""Redis in the sandbox: a primary in the primary region, a replica in every other region, Sentinels.

Servers keep nothing on disk (``save ""``, no AOF) and sync replicas diskless with no delay,
so a replica is in sync within a few hundred milliseconds of starting. Every Sentinel is
told its own id and its peers and replicas up front, so a failover can be elected from the
first second instead of after the usual discovery rounds.

Sentinels talk to the servers directly, not through the fault proxy: a partition cuts
replication and the APIs' writes, not Sentinel's view. Replicas are told the primary's own
address, the one Sentinel knows, so Sentinel never "fixes" them; each server's connections
to other regions' servers cross its region's proxy routes by harness.sandbox.redirect, which
keeps holding after a failover.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from pathlib import Path

import redis

from harness.errors import EnvironmentProblem
from harness.model import RedisSettings
from harness.sandbox.components import HOST, Component, spawn, wait_until_listening
from harness.sandbox.ports import ensure_free
from harness.sandbox.topology import Plan

MASTER_NAME = "harness"
SERVER_BINARY = "redis-server"
SENTINEL_BINARY = "redis-sentinel"


def _server_config(port: int, workdir: Path, upstream_port: int | None) -> str:
    lines = [
        f"bind {HOST}",
        f"port {port}",
        "protected-mode no",
        "daemonize no",
        f"dir {workdir}",
        'save ""',
        "appendonly no",
        "repl-diskless-sync yes",
        "repl-diskless-sync-delay 0",
        "repl-ping-replica-period 1",
        "repl-timeout 10",
        'logfile ""',
    ]
    if upstream_port is not None:
        lines.append(f"replicaof {HOST} {upstream_port}")
    return "\n".join(lines) + "\n"


def start_servers(
    directory: Path,
    plan: Plan,
    regions: tuple[str, ...],
    upstream_ports: Mapping[str, int],
    environments: Mapping[str, Mapping[str, str]],
) -> list[Component]:
    """Start the Redis servers of `regions`: the primary, or replicas of `upstream_ports[region]`.

    `environments[region]` is added to that server's environment (the redirect to its routes).
    """
    started = []
    for region in regions:
        name = f"redis-{region}"
        port = plan.ports[name]
        workdir = directory / name
        workdir.mkdir(parents=True, exist_ok=True)
        upstream = None if region == plan.primary else upstream_ports[region]
        config = workdir / "redis.conf"
        config.write_text(_server_config(port, workdir, upstream))
        ensure_free(port, name)
        role = "primary" if region == plan.primary else "replica"
        started.append(
            spawn(
                directory,
                name=name,
                kind="redis",
                region=region,
                role=role,
                port=port,
                command=(SERVER_BINARY, str(config)),
                env=environments.get(region, {}),
                cwd=workdir,
            )
        )
    return started


def wait_until_replicating(servers: list[Component], timeout_seconds: float = 15.0) -> None:
    """Return once every replica reports its link to the primary up."""
    deadline = time.monotonic() + timeout_seconds
    for server in servers:
        wait_until_listening(server, max(0.1, deadline - time.monotonic()))
    for server in (s for s in servers if s.role == "replica"):
        with redis.Redis(host=HOST, port=server.port, socket_timeout=1) as client:
            while client.info("replication").get("master_link_status") != "up":
                if time.monotonic() > deadline:
                    raise EnvironmentProblem(f"{server.name} did not sync with the primary; see {server.log}")
                time.sleep(0.02)


def _sentinel_config(
    port: int,
    workdir: Path,
    settings: RedisSettings,
    my_id: str,
    primary_port: int,
    replica_ports: list[int],
    peers: list[tuple[int, str]],
) -> str:
    down_after_ms = max(1, round(settings.down_after_seconds * 1000))
    failover_timeout_ms = max(1, round(settings.failover_timeout_seconds * 1000))
    lines = [
        f"bind {HOST}",
        f"port {port}",
        "protected-mode no",
        "daemonize no",
        f"dir {workdir}",
        'logfile ""',
        f"sentinel myid {my_id}",
        "sentinel resolve-hostnames no",
        f"sentinel monitor {MASTER_NAME} {HOST} {primary_port} {settings.sentinel_quorum}",
        f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}",
        f"sentinel failover-timeout {MASTER_NAME} {failover_timeout_ms}",
        f"sentinel parallel-syncs {MASTER_NAME} 1",
    ]
    lines += [f"sentinel known-replica {MASTER_NAME} {HOST} {p}" for p in replica_ports]
    lines += [f"sentinel known-sentinel {MASTER_NAME} {HOST} {p} {i}" for p, i in peers]
    return "\n".join(lines) + "\n"


def start_sentinels(directory: Path, plan: Plan, settings: RedisSettings) -> list[Component]:
    """Start the Sentinels, one per entry of plan.sentinel_regions, all watching the primary."""
    names = [f"sentinel-{i}" for i in range(1, len(plan.sentinel_regions) + 1)]
    ids = {name: secrets.token_hex(20) for name in names}
    primary_port = plan.ports[f"redis-{plan.primary}"]
    replica_ports = [plan.ports[f"redis-{r}"] for r in plan.secondaries]
    started = []
    for name, region in zip(names, plan.sentinel_regions, strict=True):
        port = plan.ports[name]
        workdir = directory / name
        workdir.mkdir(parents=True, exist_ok=True)
        peers = [(plan.ports[other], ids[other]) for other in names if other != name]
        config = workdir / "sentinel.conf"
        config.write_text(
            _sentinel_config(port, workdir, settings, ids[name], primary_port, replica_ports, peers)
        )
        ensure_free(port, name)
        started.append(
            spawn(
                directory,
                name=name,
                kind="sentinel",
                region=region,
                role="sentinel",
                port=port,
                command=(SENTINEL_BINARY, str(config)),
                cwd=workdir,
            )
        )
    return started


def wait_until_watching(sentinels: list[Component], replicas: int, timeout_seconds: float = 15.0) -> None:
    """Return once every Sentinel knows the primary, its replicas and the other Sentinels."""
    deadline = time.monotonic() + timeout_seconds
    for sentinel in sentinels:
        wait_until_listening(sentinel, max(0.1, deadline - time.monotonic()))
        with redis.Redis(host=HOST, port=sentinel.port, socket_timeout=1, decode_responses=True) as client:
            while True:
                state = client.sentinel_master(MASTER_NAME)
                if (
                    int(state["num-slaves"]) >= replicas
                    and int(state["num-other-sentinels"]) >= len(sentinels) - 1
                    and "s_down" not in state["flags"]
                ):
                    break
                if time.monotonic() > deadline:
                    raise EnvironmentProblem(
                        f"{sentinel.name} does not see the whole topology: {state['flags']}"
                    )
                time.sleep(0.02)
