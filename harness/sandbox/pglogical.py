"""An active-active PostgreSQL estate: one writable PostgreSQL 15 per region, pglogical both ways.

For ``postgres.topology: active-active``. Every region's server (component ``postgres-<region>``,
role ``active``) is a copy of the PostgreSQL template (harness.sandbox.postgres) started with
``wal_level=logical``, ``shared_preload_libraries=pglogical``, ``track_commit_timestamp=on`` and
``pglogical.conflict_resolution=last_update_wins``: when a change from another region meets a
row changed here, the one with the later commit timestamp survives on both sides.

Each server is a pglogical node (``<region>`` with dashes as underscores) whose default
replication set holds every table of ``public`` (TABLES): ``items`` (the regional APIs' table),
the two tables of the convergence probe (``convergence_elements``, ``convergence_registers``)
and the markers harness.actions.replication writes to prove a stopped intake.

Every region subscribes to every other region with ``forward_origins := '{}'``: a region
applies only the changes written *at* its provider, never those its provider received from a
third region, so a change crosses each link once and never loops.

A subscription's connection goes through the fault-proxy route ``<subscriber>-postgres-<provider>``
(topology.postgres_mesh) when the proxy runs, so a partition or latency toxic between two regions
(harness.actions.network) acts on the replication between them: the changes written in the
provider cross the route's downstream stream.

The estate is ready once every subscription reports ``replicating`` (bounded wait). The servers
are ordinary ``postgres`` components: `down`, instance faults and exporters treat them like any.

The keeper (component ``pglogical-keeper``, harness.sandbox.pglogical_keeper). pglogical
relaunches a subscription worker that failed (its link was cut, its provider restarted) only
when its database manager wakes up, and that manager naps 10 s, then 20, 40 ... up to 3 minutes
between looks: a healed link could sit idle for minutes, an artefact of pglogical, not of the
systems the sandbox stands in for. Once a second the keeper asks every server for subscriptions
that are enabled but ``down`` and wakes that server's manager (re-enabling the enabled
subscription in a transaction that locks its row, so a subscription stop_replication disabled is
never enabled again). pglogical still waits its own 5 s after a failure before relaunching: a
healed link replicates again within about 6 s.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

from harness.errors import EnvironmentProblem
from harness.sandbox import components as procs
from harness.sandbox import postgres as pg
from harness.sandbox.components import HOST, Component, spawn
from harness.sandbox.ports import ensure_free
from harness.sandbox.topology import KEEPER, Plan

ROLE = "active"
READY_TIMEOUT_SECONDS = 30.0
# pglogical's workers: a supervisor, a manager per database and an apply worker per subscription.
LOGICAL_SETTINGS = (
    "wal_level=logical",
    "shared_preload_libraries=pglogical",
    "track_commit_timestamp=on",
    "pglogical.conflict_resolution=last_update_wins",
    "max_worker_processes=16",
    # A commit is acknowledged once its WAL is flushed locally (cheap: fsync is off). With `off`,
    # decoding waits for the WAL writer's next round (up to 200 ms) before sending the change on.
    "synchronous_commit=on",
    # A link blackholed one way (no reset) is noticed after this long, then the worker reconnects.
    "wal_receiver_timeout=10s",
    "wal_sender_timeout=10s",
)
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS convergence_elements (id text PRIMARY KEY, origin text NOT NULL,"
    " written_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    "CREATE TABLE IF NOT EXISTS convergence_registers (key text PRIMARY KEY, value text NOT NULL,"
    " origin text NOT NULL, written_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    # Markers harness.actions.replication writes to observe a stopped intake.
    "CREATE TABLE IF NOT EXISTS harness_replication_markers (id text PRIMARY KEY, origin text NOT NULL,"
    " written_at timestamptz NOT NULL DEFAULT clock_timestamp())",
)
TABLES = ("items", "convergence_elements", "convergence_registers", "harness_replication_markers")


def node_name(region: str) -> str:
    return region.replace("-", "_")


def subscription_name(provider: str, subscriber: str) -> str:
    """The subscription, in the subscriber's database, to the changes written in `provider`.

    Both regions are in the name: pglogical names the provider's slot after the provider and the
    subscription only, so two subscribers of one provider need different subscription names.
    """
    return f"{node_name(provider)}_to_{node_name(subscriber)}"


def route_name(subscriber: str, provider: str) -> str:
    """The fault-proxy route the subscriber in `subscriber` reaches `provider` through."""
    return f"{subscriber}-postgres-{provider}"


def _conninfo(port: int) -> str:
    return f"host={HOST} port={port} dbname={pg.DATABASE} user={pg.USER} connect_timeout=2"


def provider_port(plan: Plan, subscriber: str, provider: str) -> int:
    """Where the subscriber connects: its route to the provider when the proxy runs, else direct."""
    route = route_name(subscriber, provider)
    return (
        plan.ports[route] if plan.has("proxy") and route in plan.ports else plan.ports[f"postgres-{provider}"]
    )


def _settings() -> tuple[str, ...]:
    """The template's server settings with the logical-replication ones in place of theirs."""
    ours = {setting.split("=", 1)[0] for setting in LOGICAL_SETTINGS}
    return (*[s for s in pg.SETTINGS if s.split("=", 1)[0] not in ours], *LOGICAL_SETTINGS)


def _copy_template(data: Path, user: str) -> None:
    shutil.copytree(pg.template(user), data, symlinks=True)
    if user:
        entry = pwd.getpwnam(user)
        for path in (data, *data.rglob("*")):
            os.lchown(path, entry.pw_uid, entry.pw_gid)
    pg.write_auto_conf(data, user, {})


def start_server(directory: Path, plan: Plan, root: Path, user: str, region: str) -> Component:
    """Copy the template into the region's data directory and start its server (not yet a node)."""
    name = f"postgres-{region}"
    data = root / name
    _copy_template(data, user)
    port = plan.ports[name]
    ensure_free(port, name)
    command = (
        str(pg.bin_dir() / "postgres"),
        "-D",
        str(data),
        *[part for setting in (*_settings(), f"port={port}") for part in ("-c", setting)],
    )
    return spawn(
        directory,
        name=name,
        kind="postgres",
        region=region,
        role=ROLE,
        port=port,
        command=command,
        cwd=data,
        user=user,
    )


def _execute(port: int, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    with psycopg.connect(pg.dsn(port), connect_timeout=2, autocommit=True) as connection:
        for statement, parameters in statements:
            connection.execute(statement, parameters)


def make_node(plan: Plan, region: str) -> None:
    """The pglogical extension, the convergence tables and the node with every table in its default set."""
    port = plan.ports[f"postgres-{region}"]
    _execute(
        port,
        [
            ("CREATE EXTENSION IF NOT EXISTS pglogical", ()),
            *[(statement, ()) for statement in SCHEMA],
            (
                "SELECT pglogical.create_node(node_name := %s, dsn := %s)",
                (node_name(region), _conninfo(port)),
            ),
            ("SELECT pglogical.replication_set_add_all_tables('default', ARRAY['public'])", ()),
        ],
    )


def subscribe(plan: Plan, subscriber: str, provider: str) -> None:
    """Subscribe `subscriber` to `provider`: no structure or data copy (every table starts empty or
    equal), and only changes that originated at the provider (forward_origins '{}')."""
    statement = (
        "SELECT pglogical.create_subscription(subscription_name := %s, provider_dsn := %s,"
        " replication_sets := ARRAY['default'], synchronize_structure := false,"
        " synchronize_data := false, forward_origins := '{}')"
    )
    arguments = (
        subscription_name(provider, subscriber),
        _conninfo(provider_port(plan, subscriber, provider)),
    )
    _execute(plan.ports[f"postgres-{subscriber}"], [(statement, arguments)])


def pairs(plan: Plan) -> list[tuple[str, str]]:
    """Every (provider, subscriber) pair of regions: the directions changes flow."""
    return [(a, b) for b in plan.regions for a in plan.regions if a != b]


def subscription_status(port: int) -> dict[str, str]:
    """Subscription name → pglogical status (replicating, initializing, down, disabled) on one server."""
    with psycopg.connect(pg.dsn(port), connect_timeout=2, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT subscription_name, status FROM pglogical.show_subscription_status()"
        )
        return {str(name): str(status) for name, status in rows.fetchall()}


def wait_until_replicating(plan: Plan, timeout_seconds: float = READY_TIMEOUT_SECONDS) -> None:
    """Return once every region's every subscription is `replicating`; EnvironmentProblem naming the
    ones that are not (and their status) after `timeout_seconds`."""
    deadline = time.monotonic() + timeout_seconds
    lagging: dict[str, str] = {}
    while True:
        lagging = {}
        for subscriber in plan.regions:
            try:
                found = subscription_status(plan.ports[f"postgres-{subscriber}"])
            except psycopg.Error as error:
                lagging[f"postgres-{subscriber}"] = (
                    str(error).strip().splitlines()[0] if str(error).strip() else "no answer"
                )
                continue
            for provider in plan.regions:
                if provider == subscriber:
                    continue
                status = found.get(subscription_name(provider, subscriber), "missing")
                if status != "replicating":
                    lagging[f"{provider}->{subscriber}"] = status
        if not lagging or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if lagging:
        named = ", ".join(f"{key} {status}" for key, status in sorted(lagging.items()))
        raise EnvironmentProblem(
            f"pglogical subscriptions not replicating within {timeout_seconds:g} s ({named}); "
            "see the postgres-<region> logs"
        )


def start(
    directory: Path,
    plan: Plan,
    proxy_ready: Future[None] | None,
    ready: Callable[[Component, str], None],
) -> list[Component]:
    """Start the estate: servers in parallel, a node each, then the subscriptions (once the proxy
    routes exist); returns once every subscription replicates."""
    user = pg.run_as()
    root = pg.data_root(directory, user)
    servers = [start_server(directory, plan, root, user, region) for region in plan.regions]

    def node(server: Component) -> None:
        pg.wait_until_ready(server)
        make_node(plan, server.region)

    # A pool of its own: the sandbox's pool runs this function, waiting on it could starve it.
    # Subscriptions in parallel: each takes several round trips across its link's latency.
    with ThreadPoolExecutor(max_workers=len(plan.regions) * (len(plan.regions) - 1)) as workers:
        for future in [workers.submit(node, server) for server in servers]:
            future.result()
        if proxy_ready is not None:
            proxy_ready.result()
        for future in [workers.submit(subscribe, plan, b, a) for a, b in pairs(plan)]:
            future.result()
    wait_until_replicating(plan)
    for server in servers:
        ready(server, f"postgres active-active, replicating from {len(plan.regions) - 1} region(s)")
    keeper = start_keeper(directory, plan)
    procs.wait_until_listening(keeper)
    ready(keeper, "pglogical keeper (relaunches failed subscriptions)")
    return [*servers, keeper]


def endpoints(plan: Plan, links: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The endpoints.json keys of the estate: its topology and every replication direction
    (``<provider>-><subscriber>``: the subscription and the `links` key its connection crosses)."""
    link_of = {str(link.get("proxy")): key for key, link in links.items()}
    replication = {
        f"{provider}->{subscriber}": {
            "subscription": subscription_name(provider, subscriber),
            "subscriber": subscriber,
            "provider": provider,
            "link": link_of.get(route_name(subscriber, provider), ""),
        }
        for provider, subscriber in pairs(plan)
    }
    return {"postgres_topology": "active-active", "replication": replication}


# ---------------------------------------------------------------- the keeper


def start_keeper(directory: Path, plan: Plan) -> Component:
    port = plan.ports[KEEPER]
    ensure_free(port, KEEPER)
    dsns = [part for region in plan.regions for part in ("--dsn", pg.dsn(plan.ports[f"postgres-{region}"]))]
    command = (sys.executable, "-m", "harness.sandbox.pglogical_keeper", "--port", str(port), *dsns)
    return spawn(directory, name=KEEPER, kind="keeper", region="", role="", port=port, command=command)
