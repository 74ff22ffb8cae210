"""Failback between a suite's experiments: the Redis master moved away comes back to the scenario's
primary region, every replica follows it, and the Sentinel settings borrowed for it are put back."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

import psycopg
import pytest
import redis

from harness import primaries
from harness.interrupts import CONTROLLER, Interrupted
from harness.sandbox import Sandbox, failback, postgres
from harness.sandbox.components import load_components, start_component, stop_component
from harness.sandbox.examples import example_scenario
from harness.sandbox.fixtures import SandboxFactory

HOME, AWAY = "us-east-1", "eu-west-1"


@pytest.fixture(scope="module")
def estate(sandbox_factory: SandboxFactory) -> Sandbox:
    """A Redis-only sandbox of its own: these tests move its master."""
    return sandbox_factory(example_scenario(3), components={"redis"})


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, decode_responses=True)


def _replication(endpoints: Mapping[str, Any]) -> dict[str, tuple[str, int | None, str | None]]:
    found = {}
    for region, info in endpoints["regions"].items():
        state = _client(info["redis_url"]).info("replication")
        found[region] = (state["role"], state.get("master_port"), state.get("master_link_status"))
    return found


def _port(endpoints: Mapping[str, Any], region: str) -> int:
    return int(endpoints["regions"][region]["redis_url"].rsplit(":", 1)[1].split("/")[0])


def _assert_borrowed_settings_back(endpoints: Mapping[str, Any]) -> None:
    for address in endpoints["redis_sentinels"]:
        host, _, port = address.rpartition(":")
        with redis.Redis(host=host, port=int(port), decode_responses=True) as sentinel:
            assert sentinel.execute_command("SENTINEL", "DEBUG")["INFO-PERIOD"] == "10000"
    for info in endpoints["regions"].values():
        assert _client(info["redis_url"]).config_get("replica-priority") == {"replica-priority": "100"}


def _assert_estate_home(endpoints: Mapping[str, Any], home: str) -> None:
    home_port = _port(endpoints, home)
    for address in endpoints["redis_sentinels"]:
        host, _, port = address.rpartition(":")
        with redis.Redis(host=host, port=int(port), decode_responses=True) as sentinel:
            assert int(sentinel.sentinel_get_master_addr_by_name("harness")[1]) == home_port
            # Finished, not only named: a failover still in progress when the next experiment
            # kills the primary never ends, and no new one starts.
            assert "failover_in_progress" not in sentinel.sentinel_master("harness")["flags"]
    expected = {r: ("slave", home_port, "up") for r in endpoints["regions"] if r != home}
    assert _replication(endpoints) == {home: ("master", None, None), **expected}
    _assert_borrowed_settings_back(endpoints)


def test_failback_moves_the_redis_master_home_and_every_replica_follows(estate: Sandbox) -> None:
    endpoints = estate.endpoints
    assert failback.restore_estate(endpoints, timeout_seconds=30) == ()  # home already: nothing done

    # Away first, by the same operation with another home: the scenario's primary region then
    # holds a replica, as after a failover experiment.
    away = failback.restore_estate({**endpoints, "primary_region": AWAY}, timeout_seconds=30)
    assert [(o.kind, o.moved_from, o.home, o.restored) for o in away] == [("redis", HOME, AWAY, True)]
    _assert_estate_home(endpoints, AWAY)

    # An interrupt during a failback stops it (the suite then stops) and puts back the Sentinel
    # and replica settings it borrowed; the failover it may have asked for finishes on its own.
    with CONTROLLER.installed(), pytest.raises(Interrupted):
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            failback.restore_estate(endpoints, timeout_seconds=30)
        finally:
            timer.cancel()
    _assert_borrowed_settings_back(endpoints)

    back = failback.restore_estate(endpoints, timeout_seconds=30)
    if not back:  # the failover asked for before the interrupt brought it home already
        back = failback.restore_estate({**endpoints, "primary_region": AWAY}, timeout_seconds=30)
        back = failback.restore_estate(endpoints, timeout_seconds=30)
    assert [(o.kind, o.moved_from, o.home, o.restored) for o in back] == [("redis", AWAY, HOME, True)], back
    assert back[0].line() == f"estate: Redis primary back in {HOME} after {back[0].seconds:.1f} s"
    assert primaries.redis_primary(endpoints) == primaries.Primary(
        f"127.0.0.1:{_port(endpoints, HOME)}", HOME
    )
    _assert_estate_home(endpoints, HOME)
    # Replicating, not only linked: a write at home reaches every region.
    _client(endpoints["regions"][HOME]["redis_url"]).set("failback", "home")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(_client(i["redis_url"]).get("failback") == "home" for i in endpoints["regions"].values()):
            break
        time.sleep(0.05)
    assert {r: _client(i["redis_url"]).get("failback") for r, i in endpoints["regions"].items()} == {
        r: "home" for r in endpoints["regions"]
    }
    print(f"failback figures: away {away[0].seconds:.2f} s, back {back[0].seconds:.2f} s")


def test_failback_that_cannot_ask_anyone_says_so_without_raising(estate: Sandbox) -> None:
    # A Redis server answers SENTINEL with an error: nobody names the master (and, unlike a closed
    # port, without the client's connection retries).
    server = estate.endpoints["regions"][AWAY]["redis_url"].split("//")[1].split("/")[0]
    silent = {**estate.endpoints, "redis_sentinels": [server]}
    (outcome,) = failback.restore_estate(silent, timeout_seconds=1)
    assert (outcome.kind, outcome.restored, outcome.detail) == (
        "redis",
        False,
        "no Sentinel names the Redis master",
    )
    assert "NOT back in us-east-1" in outcome.line()
    assert failback.estate_record((outcome,))["restored"] is False


def _pg(dsn: str, query: str, parameters: tuple[Any, ...] = ()) -> Any:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=2, autocommit=True) as connection:
        cursor = connection.execute(query, parameters)
        return cursor.fetchone() if cursor.description is not None else None


@pytest.fixture(scope="module")
def pg_estate(sandbox_factory: SandboxFactory) -> Sandbox:
    """PostgreSQL in the harness's own promotion mode, replication through the fault proxy."""
    return sandbox_factory(example_scenario(3), components={"postgres", "proxy"})


def _routes(endpoints: Mapping[str, Any]) -> dict[str, int]:
    return {
        link["from"]: int(link["listen"].rsplit(":", 1)[1])
        for link in endpoints["links"].values()
        if link["service"] == "postgres"
    }


def _assert_postgres_home(endpoints: Mapping[str, Any]) -> None:
    """Only the home server takes writes; every standby streams through its proxy route again, as
    when the sandbox started (a partition then cuts replication again)."""
    assert [p.region for p in primaries.postgres_primaries(endpoints)] == [HOME]
    routes = _routes(endpoints)
    for region, info in endpoints["regions"].items():
        if region != HOME:
            row = _pg(info["postgres_dsn"], "SELECT status, sender_port FROM pg_stat_wal_receiver")
            assert row == ("streaming", routes[region])


def test_failback_of_the_harness_postgres_mode_keeps_every_commit_and_the_proxy_routes(
    pg_estate: Sandbox,
) -> None:
    endpoints = pg_estate.endpoints
    dsns = {region: info["postgres_dsn"] for region, info in endpoints["regions"].items()}
    _pg(dsns[HOME], "INSERT INTO items (key, value) VALUES ('before', 'home')")

    (away,) = failback.restore_estate({**endpoints, "primary_region": AWAY}, timeout_seconds=30)
    assert (away.kind, away.moved_from, away.restored) == ("postgres", HOME, True)
    assert [p.region for p in primaries.postgres_primaries(endpoints)] == [AWAY]
    _pg(dsns[AWAY], "INSERT INTO items (key, value) VALUES ('while-away', 'eu')")

    (back,) = failback.restore_estate(endpoints, timeout_seconds=30)
    assert (back.kind, back.moved_from, back.home, back.restored) == ("postgres", AWAY, HOME, True)
    assert back.line() == f"estate: PostgreSQL primary back in {HOME} after {back.seconds:.1f} s"
    assert _pg(dsns[HOME], "SELECT string_agg(key, ',' ORDER BY key) FROM items") == ("before,while-away",)
    _assert_postgres_home(endpoints)
    print(f"postgres failback figures: away {away.seconds:.2f} s, back {back.seconds:.2f} s")


def test_failback_after_the_home_primary_was_killed_under_writes(
    pg_estate: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a primary-failure experiment leaves: the home primary killed while it took writes (its
    last WAL may never have left, so its history can fork off), a standby promoted, the old primary
    back as a standby of it. The failback still brings the estate home (a forked server is cloned
    afresh), with every commit the promoted primary had."""
    monkeypatch.setattr(failback, "_CATCH_UP_SECONDS", 0.5)  # a healthy standby catches up in ms
    endpoints = pg_estate.endpoints
    servers = {c.region: c for c in load_components(pg_estate.directory).values() if c.kind == "postgres"}
    home, away, other = servers[HOME], servers[AWAY], servers["ap-southeast-1"]
    stop = threading.Event()

    def write() -> None:
        dsn = postgres.dsn(home.port)
        with contextlib.suppress(psycopg.Error), psycopg.connect(dsn, autocommit=True) as connection:
            while not stop.is_set():
                connection.execute("INSERT INTO items (key, value) VALUES (gen_random_uuid()::text, 'x')")

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.3)
    stop_component(pg_estate.directory, home.name, signal.SIGKILL)
    stop.set()
    writer.join(5)
    assert _pg(postgres.dsn(away.port), "SELECT pg_promote(true, 10)") == (True,)
    conninfo = postgres.standby_conninfo(other.region, away.port)
    _pg(postgres.dsn(other.port), f"ALTER SYSTEM SET primary_conninfo = '{conninfo}'")
    _pg(postgres.dsn(other.port), "SELECT pg_reload_conf()")
    postgres.rejoin_as_standby(home, home.region, away.port, "")
    start_component(pg_estate.directory, home.name)
    _pg(postgres.dsn(away.port), "INSERT INTO items (key, value) VALUES ('after-kill', 'eu')")
    kept = _pg(postgres.dsn(away.port), "SELECT count(*) FROM items")

    (back,) = failback.restore_estate(endpoints, timeout_seconds=30)
    assert (back.kind, back.moved_from, back.restored) == ("postgres", AWAY, True), back.detail
    _assert_postgres_home(endpoints)
    assert _pg(postgres.dsn(home.port), "SELECT count(*) FROM items") == kept
    print(f"postgres failback after a kill: {back.seconds:.2f} s")
