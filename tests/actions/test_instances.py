"""actions.instances against a real Redis sandbox: every fault takes effect and its undo restores it."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from harness import ledger
from harness.actions.instances import (
    fail_region,
    pause_instance,
    restore_region,
    resume_instance,
    start_instance,
    stop_instance,
)
from harness.errors import ConfigError
from harness.sandbox import load_components


def _eventually(check: Callable[[], bool], timeout_seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def _port(configuration: dict[str, Any], name: str) -> int:
    return load_components(Path(configuration["sandbox_dir"]))[name].port


def _pings(port: int) -> bool:
    """Whether a Redis server answers PING on the port within 0.3 s (raw socket: no client retries)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(7) == b"+PONG\r\n"
    except OSError:
        return False


def _open(configuration: dict[str, Any]) -> list[ledger.OpenFault]:
    return ledger.open_faults(ledger.state_dir(configuration))


def test_stop_and_start_instance(configuration: dict[str, Any]) -> None:
    port = _port(configuration, "redis-eu-west-1")
    stopped = stop_instance("redis-eu-west-1", configuration=configuration)
    assert stopped["effect_proven"] is True, stopped["evidence"]
    assert "refuses connections" in stopped["evidence"]
    assert not _pings(port)
    (fault,) = _open(configuration)
    assert fault.fault_id == stopped["fault_id"]
    assert fault.undo.arguments == {
        "component": "redis-eu-west-1",
        "sandbox_dir": configuration["sandbox_dir"],
    }

    started = start_instance("redis-eu-west-1", configuration=configuration)
    assert started["listening"] is True
    assert _pings(port)
    assert _open(configuration) == []
    assert (
        start_instance("redis-eu-west-1", configuration=configuration)["listening"] is True
    )  # twice is safe


def test_graceful_stop_of_the_current_primary(configuration: dict[str, Any]) -> None:
    stopped = stop_instance("redis-primary", graceful=True, configuration=configuration)
    assert stopped["component"] == "redis-us-east-1"
    assert stopped["signal"] == "SIGTERM"
    assert stopped["effect_proven"] is True
    start_instance("redis-us-east-1", configuration=configuration)
    assert _pings(_port(configuration, "redis-us-east-1"))


def test_pause_and_resume_instance(configuration: dict[str, Any]) -> None:
    port = _port(configuration, "redis-ap-southeast-1")
    paused = pause_instance("redis-ap-southeast-1", configuration=configuration)
    try:
        assert paused["effect_proven"] is True
        assert not _pings(port)  # connects (the kernel still accepts) but never answers
    finally:
        resumed = resume_instance("redis-ap-southeast-1", configuration=configuration)
    assert resumed["paused"] is False
    assert _pings(port)
    assert _open(configuration) == []
    assert resume_instance("redis-ap-southeast-1", configuration=configuration)["paused"] is False


def test_fail_and_restore_region(configuration: dict[str, Any]) -> None:
    region = "ap-southeast-1"
    members = [c for c in load_components(Path(configuration["sandbox_dir"])).values() if c.region == region]
    assert {c.kind for c in members} == {"redis", "sentinel"}
    failed = fail_region(region, configuration=configuration)
    assert failed["effect_proven"] is True, failed["evidence"]
    assert sorted(failed["components"]) == sorted(c.name for c in members)
    assert not any(_pings(c.port) for c in members)

    restored = restore_region(region, configuration=configuration)
    assert restored["listening"] is True
    assert all(_pings(c.port) for c in members)
    assert _open(configuration) == []


def test_recover_undoes_a_stopped_instance_without_configuration(configuration: dict[str, Any]) -> None:
    port = _port(configuration, "sentinel-2")
    stop_instance("sentinel-2", configuration=configuration)
    assert not _pings(port)
    results = ledger.recover(ledger.state_dir(configuration))
    assert [r.is_undone for r in results] == [True]
    assert _eventually(lambda: _pings(port), timeout_seconds=10)
    assert _open(configuration) == []


def test_killed_primary_comes_back_as_a_replica(configuration: dict[str, Any]) -> None:
    old_port = _port(configuration, "redis-us-east-1")
    stop_instance("redis-primary", configuration=configuration)

    def primary_port() -> int:
        host, _, port = configuration["redis_sentinels"][0].rpartition(":")
        with redis.Redis(host=host, port=int(port), socket_timeout=1) as sentinel:
            return int(sentinel.sentinel_get_master_addr_by_name(configuration["redis_master_name"])[1])

    assert _eventually(lambda: primary_port() != old_port)  # down-after 1 s, then election
    start_instance("redis-us-east-1", configuration=configuration)

    def is_replica() -> bool:
        with redis.Redis(host="127.0.0.1", port=old_port, socket_timeout=1) as client:
            return client.info("replication")["role"] == "slave"

    assert _eventually(is_replica)
    assert stop_instance("redis-primary", configuration=configuration)["component"] != "redis-us-east-1"


def test_bad_names_are_config_errors(configuration: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="no sandbox component 'redis-mars'"):
        stop_instance("redis-mars", configuration=configuration)
    with pytest.raises(ConfigError, match="no sandbox component in region 'mars-1'"):
        fail_region("mars-1", configuration=configuration)
    with pytest.raises(ConfigError, match="configuration:sandbox_dir"):
        stop_instance("redis-us-east-1", configuration={})
    assert _open(configuration) == []


def test_rollback_by_alias_starts_the_server_the_ledger_names(configuration: dict[str, Any]) -> None:
    stopped = stop_instance("redis-primary", configuration=configuration)
    started = start_instance("redis-primary", configuration=configuration)
    assert started["component"] == stopped["component"] == "redis-us-east-1"
    assert started["listening"] is True
    assert start_instance("redis-primary", configuration=configuration)["started"] is False  # nothing open
