"""Redis-only sandboxes: topology, replication, status of killed and paused components, failover, down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis
from redis.sentinel import Sentinel

from harness import sandbox
from harness.sandbox.examples import example_scenario
from harness.sandbox.ports import is_free
from tests.sandbox.helpers import eventually, processes_mentioning

REPLICATION_LAG_TARGET_SECONDS = 5.0


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, decode_responses=True)


def _states(directory: Path) -> dict[str, str]:
    return {s.name: s.state for s in sandbox.status(directory)}


def test_redis_sandbox_has_the_scenario_topology(redis_sandbox: sandbox.Sandbox) -> None:
    endpoints = redis_sandbox.endpoints
    assert endpoints["primary_region"] == "us-east-1"
    assert set(endpoints["regions"]) == {"us-east-1", "eu-west-1", "ap-southeast-1"}
    assert sorted(endpoints["components"]) == sorted(
        [
            "redis-us-east-1",
            "redis-eu-west-1",
            "redis-ap-southeast-1",
            "sentinel-1",
            "sentinel-2",
            "sentinel-3",
        ]
    )
    assert json.loads((redis_sandbox.directory / "endpoints.json").read_text()) == endpoints
    roles = {
        region: _client(entry["redis_url"]).info("replication")["role"]
        for region, entry in endpoints["regions"].items()
    }
    assert roles == {"us-east-1": "master", "eu-west-1": "slave", "ap-southeast-1": "slave"}
    recorded = sandbox.load_components(redis_sandbox.directory)
    assert {c.region for c in recorded.values() if c.kind == "sentinel"} == set(endpoints["regions"])
    host, port = endpoints["redis_sentinels"][0].split(":")
    with redis.Redis(host=host, port=int(port), decode_responses=True) as sentinel:
        master = sentinel.sentinel_master(endpoints["redis_master_name"])
    assert master["quorum"] == 2
    assert master["down-after-milliseconds"] == 1000
    assert master["failover-timeout"] == 3000
    assert master["num-other-sentinels"] == 2
    assert master["num-slaves"] == 2


def test_every_component_has_its_own_process_group_and_log(redis_sandbox: sandbox.Sandbox) -> None:
    recorded = sandbox.load_components(redis_sandbox.directory)
    assert {s.state for s in sandbox.status(redis_sandbox.directory)} == {"running"}
    assert len({c.pgid for c in recorded.values()}) == len(recorded)
    for component in recorded.values():
        assert os.getpgid(component.pid) == component.pgid == component.pid
        assert Path(component.log).parent == redis_sandbox.directory / "logs"
        assert Path(component.log).stat().st_size > 0


def test_write_on_primary_is_readable_in_every_region(redis_sandbox: sandbox.Sandbox) -> None:
    endpoints = redis_sandbox.endpoints
    sentinels = [tuple(s.split(":")) for s in endpoints["redis_sentinels"]]
    primary = Sentinel([(h, int(p)) for h, p in sentinels], socket_timeout=2).master_for(
        endpoints["redis_master_name"], decode_responses=True
    )
    marker = f"written-{time.monotonic_ns()}"
    primary.set("sandbox-test-key", marker)
    written_at = time.monotonic()
    for entry in endpoints["regions"].values():
        client = _client(entry["redis_url"])
        eventually(lambda c=client: c.get("sandbox-test-key") == marker, REPLICATION_LAG_TARGET_SECONDS)
    assert time.monotonic() - written_at < REPLICATION_LAG_TARGET_SECONDS


def test_killed_component_shows_as_dead_and_comes_back(sandbox_factory) -> None:
    box = sandbox_factory(example_scenario(3), components={"redis"})
    killed = sandbox.stop_component(box.directory, "redis-eu-west-1")
    assert _states(box.directory)["redis-eu-west-1"] == "dead"
    assert _states(box.directory)["redis-us-east-1"] == "running"
    restarted = sandbox.start_component(box.directory, "redis-eu-west-1")
    assert restarted.pid != killed.pid
    assert sandbox.load_components(box.directory)["redis-eu-west-1"].pid == restarted.pid
    assert _states(box.directory)["redis-eu-west-1"] == "running"
    replica = _client(box.endpoints["regions"]["eu-west-1"]["redis_url"])
    eventually(lambda: replica.info("replication")["master_link_status"] == "up")

    sandbox.pause_component(box.directory, "sentinel-2")
    assert _states(box.directory)["sentinel-2"] == "stale"
    sandbox.resume_component(box.directory, "sentinel-2")
    assert _states(box.directory)["sentinel-2"] == "running"


def test_sentinel_fails_over_and_the_old_primary_rejoins_as_replica(sandbox_factory) -> None:
    box = sandbox_factory(example_scenario(3), components={"redis"})
    endpoints = box.endpoints
    old_port = sandbox.load_components(box.directory)["redis-us-east-1"].port
    host, port = endpoints["redis_sentinels"][0].split(":")
    sentinel = redis.Redis(host=host, port=int(port), decode_responses=True)

    def master_port() -> int:
        return int(sentinel.sentinel_get_master_addr_by_name(endpoints["redis_master_name"])[1])

    sandbox.stop_component(box.directory, "redis-us-east-1")
    new_port = eventually(lambda: master_port() != old_port and master_port(), timeout_seconds=20)
    promoted = redis.Redis(port=new_port, decode_responses=True)
    assert promoted.info("replication")["role"] == "master"

    sandbox.start_component(box.directory, "redis-us-east-1")
    old = _client(endpoints["regions"]["us-east-1"]["redis_url"])
    # Sentinel reconfigures a returning old primary on its next INFO of it (every 10 s outside a
    # failover), so a loaded machine can take well over 20 s. On a loaded machine a first promotion
    # can also time out (failover-timeout 3 s) and a later epoch promote the other replica, so the
    # old primary must follow whichever server the Sentinels name now, not the first one seen.
    eventually(lambda: _replicates_from(old, master_port()), timeout_seconds=45)
    current = redis.Redis(port=master_port(), decode_responses=True)
    assert current.info("replication")["role"] == "master"
    current.set("after-failover", "yes")
    eventually(lambda: old.get("after-failover") == "yes")


def _replicates_from(server: redis.Redis, port: int) -> bool:
    """Whether `server` is a replica of `port`; False while it drops its clients, as Redis does when
    Sentinel turns a master into a replica (the connection reset is the reconfiguration, not a fault)."""
    try:
        return server.info("replication").get("master_port") == port
    except redis.ConnectionError:
        return False


def test_down_leaves_no_process_port_or_lock(sandbox_factory) -> None:
    box = sandbox_factory(example_scenario(3), components={"redis"})
    recorded = sandbox.load_components(box.directory)
    stopped = sandbox.down(box.directory)
    assert sorted(stopped) == sorted(recorded)
    for component in recorded.values():
        assert not psutil.pid_exists(component.pid) or psutil.Process(component.pid).status() == "zombie"
        assert is_free(component.port)
    assert processes_mentioning(box.directory) == []
    assert sorted(p.name for p in box.directory.iterdir()) == ["logs"]
    assert sandbox.status(box.directory) == []
    assert sandbox.down(box.directory) == []


_CRASHING_UP = """
import os, sys
from pathlib import Path
from harness import sandbox
from harness.sandbox.examples import example_scenario
sandbox.up(example_scenario(3), Path(sys.argv[1]), components={"redis"})
os.kill(os.getpid(), 9)
"""


def test_down_works_after_the_harness_process_crashed(tmp_path: Path) -> None:
    directory = tmp_path / "crashed"
    try:
        result = subprocess.run(
            [sys.executable, "-c", _CRASHING_UP, str(directory)], timeout=60, capture_output=True
        )
        assert result.returncode == -signal.SIGKILL, result.stderr.decode()
        recorded = sandbox.load_components(directory)
        assert len(recorded) == 6
        assert {s.state for s in sandbox.status(directory)} == {"running"}
    finally:
        stopped = sandbox.down(directory)
    assert sorted(stopped) == sorted(recorded)
    assert processes_mentioning(directory) == []
    assert all(is_free(c.port) for c in recorded.values())


def test_up_refuses_a_directory_with_a_running_sandbox(redis_sandbox: sandbox.Sandbox) -> None:
    from harness.errors import EnvironmentProblem

    with pytest.raises(EnvironmentProblem, match="already running"):
        sandbox.up(example_scenario(3), redis_sandbox.directory, components={"redis"})
    assert {s.state for s in sandbox.status(redis_sandbox.directory)} == {"running"}
