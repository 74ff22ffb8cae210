"""failover: patroni: etcd + a Patroni per region, automatic promotion when the primary's node dies."""

from __future__ import annotations

import time

import psycopg

from harness import sandbox
from harness.sandbox.components import cleanup_paths
from harness.sandbox.examples import example_scenario
from harness.watchers import PatroniWatcher
from tests.sandbox.helpers import eventually, processes_mentioning

# Patroni's minimum ttl is 20 s: a dead leader's key expires within that, then a replica promotes.
PROMOTION_BOUND_SECONDS = 45.0


def _is_primary(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=1) as connection:
            return connection.execute("SELECT NOT pg_is_in_recovery()").fetchone() == (True,)
    except psycopg.OperationalError:
        return False


def test_patroni_promotes_a_replica_when_the_primary_node_dies(sandbox_factory) -> None:
    box = sandbox_factory(example_scenario(3, failover="patroni"), components={"patroni"})
    regions = box.endpoints["regions"]
    assert {s.state for s in sandbox.status(box.directory)} == {"running"}
    assert _is_primary(regions["us-east-1"]["postgres_dsn"])
    assert not _is_primary(regions["eu-west-1"]["postgres_dsn"])
    with psycopg.connect(regions["us-east-1"]["postgres_dsn"], autocommit=True) as connection:
        connection.execute("INSERT INTO items (key, value) VALUES ('before-failover', 'kept')")
    eventually(
        lambda: (
            psycopg.connect(regions["eu-west-1"]["postgres_dsn"])
            .execute("SELECT value FROM items WHERE key = 'before-failover'")
            .fetchone()
            == ("kept",)
        )
    )

    watcher = PatroniWatcher(
        [], etcd_urls=box.endpoints["etcd_urls"], scope=box.endpoints["patroni_scope"]
    ).start()
    assert watcher.is_exact  # the leader key is watched, not polled
    killed_at = time.monotonic()
    sandbox.stop_component(box.directory, "patroni-us-east-1")
    assert not _is_primary(regions["us-east-1"]["postgres_dsn"])
    promoted = eventually(
        lambda: next(
            (r for r in ("eu-west-1", "ap-southeast-1") if _is_primary(regions[r]["postgres_dsn"])), None
        ),
        PROMOTION_BOUND_SECONDS,
        0.2,
    )
    assert time.monotonic() - killed_at < PROMOTION_BOUND_SECONDS
    eventually(lambda: len(watcher.events()) >= 2, 10)
    lost, elected = watcher.stop()[:2]
    assert (lost["kind"], elected["kind"]) == ("patroni.leader-lost", "patroni.promoted")
    assert lost["detail"] == {"old_primary": "us-east-1", "exact": True}
    assert elected["detail"] == {"old_primary": "us-east-1", "new_primary": promoted, "exact": True}
    assert killed_at < lost["at_monotonic"] <= elected["at_monotonic"]
    with psycopg.connect(regions[promoted]["postgres_dsn"]) as connection:
        assert connection.execute("SELECT value FROM items WHERE key = 'before-failover'").fetchone() == (
            "kept",
        )
    states = {s.name: s.state for s in sandbox.status(box.directory)}
    assert states["patroni-us-east-1"] == "dead"

    data_roots = cleanup_paths(box.directory)  # PostgreSQL's data lives in memory, outside the directory
    sandbox.down(box.directory)
    assert processes_mentioning(box.directory) == []
    for root in data_roots:  # Patroni killed, its PostgreSQL (a session of its own) stopped too
        assert not root.exists()
        assert processes_mentioning(root) == []
