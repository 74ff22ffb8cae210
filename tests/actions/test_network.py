"""harness.actions.network against the project's fault proxy carrying real Redis traffic between regions."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from harness import ledger
from harness.actions.network import (
    add_latency,
    degrade_link,
    heal_regions,
    latency_is_proven,
    partition_regions,
    remove_latency,
    restore_link,
)
from harness.errors import ConfigError
from harness.sandbox import down, stop_component, up
from harness.sandbox.examples import example_scenario

SECONDARY, PRIMARY = "eu-west-1", "us-east-1"


def _listen(configuration: dict[str, Any]) -> tuple[str, int]:
    proxy = configuration["links"][f"{SECONDARY}/redis"]["proxy"]
    with urllib.request.urlopen(f"{configuration['faultproxy_url']}/proxies/{proxy}", timeout=5) as response:
        host, _, port = json.loads(response.read())["listen"].rpartition(":")
    return host, int(port)


def _client(configuration: dict[str, Any], timeout_seconds: float = 2.0) -> redis.Redis:
    """A Redis client in the secondary region, reaching the primary through the fault proxy."""
    host, port = _listen(configuration)
    return redis.Redis(
        host=host,
        port=port,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 0),
    )


def _send(configuration: dict[str, Any], command: bytes, timeout_seconds: float = 0.5) -> bytes | None:
    """Send one raw command through the proxy; its reply, or None when none came in time."""
    with socket.create_connection(_listen(configuration), timeout=timeout_seconds) as connection:
        connection.sendall(command)
        try:
            return connection.recv(100)
        except TimeoutError:
            return None


def _primary(configuration: dict[str, Any]) -> redis.Redis:
    return redis.Redis.from_url(configuration["regions"][PRIMARY]["redis_url"], socket_timeout=2)


def _round_trip_seconds(configuration: dict[str, Any]) -> float:
    with _client(configuration, timeout_seconds=5) as client:
        client.ping()  # connect first: toxics delay data, not the handshake
        started = time.monotonic()
        client.ping()
        return time.monotonic() - started


def _open(configuration: dict[str, Any]) -> list[ledger.OpenFault]:
    return ledger.open_faults(ledger.state_dir(configuration))


def test_partition_both_ways_refuses_then_heals(linked_configuration: dict[str, Any]) -> None:
    result = partition_regions(SECONDARY, PRIMARY, configuration=linked_configuration)
    assert result["effect_proven"] is True
    assert "a request went through before, got 'refused' after" in result["evidence"]
    with pytest.raises(redis.ConnectionError), _client(linked_configuration) as client:
        client.ping()
    (fault,) = _open(linked_configuration)
    assert fault.target == f"{SECONDARY}<->{PRIMARY}"

    heal_regions(SECONDARY, PRIMARY, configuration=linked_configuration)
    with _client(linked_configuration) as client:
        assert client.ping()
    assert _open(linked_configuration) == []
    assert (
        heal_regions(PRIMARY, SECONDARY, configuration=linked_configuration)["healed"] is True
    )  # twice is safe


def test_one_way_partition_blocks_only_the_named_direction(linked_configuration: dict[str, Any]) -> None:
    # Secondary → primary blackholed: a write never arrives.
    partition_regions(SECONDARY, PRIMARY, one_way=True, configuration=linked_configuration)
    assert _send(linked_configuration, b"SET one-way:a 1\r\n") is None
    heal_regions(SECONDARY, PRIMARY, configuration=linked_configuration)
    with _primary(linked_configuration) as primary:
        assert primary.get("one-way:a") is None

    # Primary → secondary blackholed: the write arrives, its acknowledgement does not.
    result = partition_regions(PRIMARY, SECONDARY, one_way=True, configuration=linked_configuration)
    assert result["effect_proven"] is True
    assert _send(linked_configuration, b"SET one-way:b 1\r\n") is None
    with _primary(linked_configuration) as primary:
        assert primary.get("one-way:b") == b"1"
    heal_regions(PRIMARY, SECONDARY, configuration=linked_configuration)
    with _client(linked_configuration) as client:
        assert client.ping()
    assert _open(linked_configuration) == []


def test_latency_is_added_and_removed(linked_configuration: dict[str, Any]) -> None:
    before = _round_trip_seconds(linked_configuration)
    result = add_latency(PRIMARY, SECONDARY, latency_ms=100, configuration=linked_configuration)
    assert result["effect_proven"] is True, result["evidence"]
    assert "expected +200.0 ms ± 10 %" in result["evidence"]
    assert _round_trip_seconds(linked_configuration) >= 0.19  # 100 ms each way
    remove_latency(PRIMARY, SECONDARY, configuration=linked_configuration)
    assert _round_trip_seconds(linked_configuration) < before + 0.1
    assert _open(linked_configuration) == []
    remove_latency(PRIMARY, SECONDARY, configuration=linked_configuration)


def test_degraded_bandwidth_slows_transfers_until_restored(linked_configuration: dict[str, Any]) -> None:
    with _primary(linked_configuration) as primary:
        primary.set("bulk", b"x" * 60_000)

    def transfer_seconds() -> float:
        with _client(linked_configuration, timeout_seconds=10) as client:
            client.ping()
            started = time.monotonic()
            assert len(client.get("bulk")) == 60_000
            return time.monotonic() - started

    result = degrade_link(SECONDARY, PRIMARY, bandwidth_kb_per_second=100, configuration=linked_configuration)
    assert result["effect_proven"] is True, result["evidence"]
    assert "10000 B ECHO took" in result["evidence"]
    assert transfer_seconds() >= 0.4  # 60 KB at 100 KB/s: 0.6 s
    restore_link(SECONDARY, PRIMARY, configuration=linked_configuration)
    assert transfer_seconds() < 0.4
    assert _open(linked_configuration) == []


def test_recover_heals_a_partition_without_configuration(linked_configuration: dict[str, Any]) -> None:
    partition_regions(SECONDARY, PRIMARY, configuration=linked_configuration)
    add_latency(SECONDARY, PRIMARY, latency_ms=50, configuration=linked_configuration)
    results = ledger.recover(ledger.state_dir(linked_configuration))
    assert [r.is_undone for r in results] == [True, True]
    assert _round_trip_seconds(linked_configuration) < 0.1


def test_bad_input_names_the_field(linked_configuration: dict[str, Any]) -> None:
    with pytest.raises(
        ConfigError, match="configuration:links: no fault-proxy link between 'eu-west-1' and 'mars'"
    ):
        partition_regions(SECONDARY, "mars", configuration=linked_configuration)
    with pytest.raises(ConfigError, match="configuration:faultproxy_url"):
        add_latency(SECONDARY, PRIMARY, latency_ms=10, configuration={})
    with pytest.raises(ConfigError, match="arguments:latency_ms"):
        add_latency(SECONDARY, PRIMARY, latency_ms=-5, configuration=linked_configuration)
    with pytest.raises(ConfigError, match="arguments:degrade_link"):
        degrade_link(SECONDARY, PRIMARY, configuration=linked_configuration)
    assert _open(linked_configuration) == []


# ---------------------------------------------------------------- is the replication path the proxy?


@pytest.fixture
def routed_configuration(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A Redis sandbox whose replicas replicate through its own fault proxy's routes."""
    directory = tmp_path / "routed"
    try:
        sandbox = up(example_scenario(3), directory, components={"redis", "proxy"})
        yield {**sandbox.endpoints, "harness_state_dir": str(tmp_path / "state"), "run_id": "test-run"}
    finally:
        down(directory)


def _server(configuration: dict[str, Any], region: str) -> redis.Redis:
    return redis.Redis.from_url(
        configuration["regions"][region]["redis_url"], socket_timeout=2, decode_responses=True
    )


def _link_status(configuration: dict[str, Any], region: str) -> str:
    with _server(configuration, region) as server:
        return server.info("replication")["master_link_status"]


def _wait_for(check: Any, timeout_seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_seconds
    while not (result := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return result


def test_partition_proves_the_replica_loses_its_primary(routed_configuration: dict[str, Any]) -> None:
    result = partition_regions(SECONDARY, PRIMARY, configuration=routed_configuration)
    assert result["effect_proven"] is True, result["evidence"]
    assert f"{SECONDARY} replica replicates from" in result["evidence"]
    assert f"through proxy {SECONDARY}-redis" in result["evidence"]
    assert f"{SECONDARY} replica: master_link_status down" in result["evidence"]
    heal_regions(SECONDARY, PRIMARY, configuration=routed_configuration)
    _wait_for(lambda: _link_status(routed_configuration, SECONDARY) == "up")


def test_replication_carries_added_latency(routed_configuration: dict[str, Any]) -> None:
    def replication_seconds(key: str) -> float:
        with (
            _server(routed_configuration, PRIMARY) as primary,
            _server(routed_configuration, SECONDARY) as replica,
        ):
            started = time.monotonic()
            primary.set(key, "1")
            _wait_for(lambda: replica.get(key) == "1", 5)
            return time.monotonic() - started

    result = add_latency(SECONDARY, PRIMARY, latency_ms=150, configuration=routed_configuration)
    assert result["effect_proven"] is True, result["evidence"]
    assert f"through proxy {SECONDARY}-redis" in result["evidence"]
    assert replication_seconds("slow") >= 0.14  # the write crosses the link once
    remove_latency(SECONDARY, PRIMARY, configuration=routed_configuration)
    assert replication_seconds("fast") < 0.14


def test_after_a_failover_replication_still_crosses_the_proxies(routed_configuration: dict[str, Any]) -> None:
    sentinel_host, _, sentinel_port = routed_configuration["redis_sentinels"][0].rpartition(":")
    with redis.Redis(host=sentinel_host, port=int(sentinel_port), socket_timeout=2) as sentinel:
        before = sentinel.sentinel_get_master_addr_by_name("harness")
        stop_component(routed_configuration["sandbox_dir"], f"redis-{PRIMARY}")
        after = _wait_for(
            lambda: (found := sentinel.sentinel_get_master_addr_by_name("harness")) != before and found
        )
    ports = {
        region: int(info["redis_url"].rsplit(":", 1)[1].split("/")[0])
        for region, info in routed_configuration["regions"].items()
    }
    promoted = next(region for region, port in ports.items() if port == int(after[1]))
    (replica,) = set(ports) - {PRIMARY, promoted}
    _wait_for(lambda: _link_status(routed_configuration, replica) == "up")

    result = partition_regions(replica, promoted, configuration=routed_configuration)
    assert result["effect_proven"] is True, result["evidence"]
    assert f"through proxy {replica}-redis-{promoted}" in result["evidence"]
    heal_regions(replica, promoted, configuration=routed_configuration)


def test_a_replica_past_the_proxy_leaves_the_effect_unproven(linked_configuration: dict[str, Any]) -> None:
    # These proxies carry no replication: the sandbox's replicas reach the primary directly.
    link = linked_configuration["links"][f"{SECONDARY}/redis"]
    listen = "{}:{}".format(*_listen(linked_configuration))
    links = {f"{SECONDARY}/redis": {**link, "listen": listen}}
    configuration = {**linked_configuration, "links": links}
    primary_url = configuration["regions"][PRIMARY]["redis_url"]
    direct = primary_url.removeprefix("redis://").split("/")[0]

    result = partition_regions(SECONDARY, PRIMARY, configuration=configuration)
    assert result["effect_proven"] is False
    assert (
        f"{SECONDARY} replica replicates from {direct} directly (Sentinel reconfigured it), "
        f"not through proxy {SECONDARY}-redis"
    ) in result["evidence"]
    assert _link_status(configuration, SECONDARY) == "up"
    heal_regions(SECONDARY, PRIMARY, configuration=configuration)

    assert (
        add_latency(SECONDARY, PRIMARY, latency_ms=20, configuration=configuration)["effect_proven"] is False
    )
    remove_latency(SECONDARY, PRIMARY, configuration=configuration)
    assert _open(configuration) == []


# ---------------------------------------------------------------- proof is observed, not configured


def _proxy_to(configuration: dict[str, Any], name: str, upstream: str, service: str) -> dict[str, Any]:
    """The configuration with one more link, `name`, from the secondary region to `upstream`."""
    body = json.dumps({"name": name, "listen": "127.0.0.1:0", "upstream": upstream}).encode()
    request = urllib.request.Request(f"{configuration['faultproxy_url']}/proxies", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201
    link = {"proxy": name, "from": SECONDARY, "to": "ap-southeast-1", "service": service}
    return {**configuration, "links": {**configuration["links"], f"{SECONDARY}/{service}": link}}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_zero_latency_is_not_proven(linked_configuration: dict[str, Any]) -> None:
    result = add_latency(SECONDARY, PRIMARY, latency_ms=0, configuration=linked_configuration)
    assert result["effect_proven"] is False, result["evidence"]
    remove_latency(SECONDARY, PRIMARY, configuration=linked_configuration)
    assert _open(linked_configuration) == []
    (entry,) = [
        e for e in ledger.read_entries(ledger.state_dir(linked_configuration)) if e["event"] == "effect"
    ]
    assert entry["proven"] is False


def test_latency_proof_is_the_increase_not_the_round_trip() -> None:
    # A link with 120 ms of its own distance: asking 50 ms each way must show +100 ms.
    assert latency_is_proven(0.100, before=0.120, after=0.221)
    assert not latency_is_proven(0.100, before=0.120, after=0.125)  # the old rule: 125 ms ≥ 50 ms
    assert not latency_is_proven(0.100, before=0.120, after=0.240)  # 20 % too much
    assert latency_is_proven(0.100, before=0.0, after=0.109)
    assert not latency_is_proven(0.0, before=0.001, after=0.001)  # nothing added, nothing proven


def test_latency_on_the_links_own_distance_is_measured_as_an_increase(
    linked_configuration: dict[str, Any],
) -> None:
    proxy = linked_configuration["links"][f"{SECONDARY}/redis"]["proxy"]
    url = linked_configuration["faultproxy_url"]
    for stream in ("upstream", "downstream"):  # the regions' distance, 40 ms each way
        body = {"name": f"distance-{stream}", "type": "latency", "stream": stream,
                "attributes": {"latency": 40}}  # fmt: skip
        request = urllib.request.Request(
            f"{url}/proxies/{proxy}/toxics", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5):
            pass
    result = add_latency(SECONDARY, PRIMARY, latency_ms=30, configuration=linked_configuration)
    assert result["effect_proven"] is True, result["evidence"]
    assert "expected +60.0 ms" in result["evidence"]
    remove_latency(SECONDARY, PRIMARY, configuration=linked_configuration)


def test_a_partition_of_a_link_that_never_answered_is_not_proven(
    linked_configuration: dict[str, Any],
) -> None:
    configuration = _proxy_to(linked_configuration, "dead-redis", f"127.0.0.1:{_closed_port()}", "redis")
    configuration["links"] = {k: v for k, v in configuration["links"].items() if v["proxy"] == "dead-redis"}
    result = partition_regions(SECONDARY, "ap-southeast-1", configuration=configuration)
    assert result["effect_proven"] is False
    assert "before the fault too" in result["evidence"]
    heal_regions(SECONDARY, "ap-southeast-1", configuration=configuration)


def test_a_one_way_cut_of_a_service_with_no_request_is_not_proven(
    linked_configuration: dict[str, Any],
) -> None:
    primary = linked_configuration["regions"][PRIMARY]["redis_url"].removeprefix("redis://").split("/")[0]
    configuration = _proxy_to(linked_configuration, "opaque", primary, "kafka")
    configuration["links"] = {k: v for k, v in configuration["links"].items() if v["proxy"] == "opaque"}
    one_way = partition_regions(SECONDARY, "ap-southeast-1", one_way=True, configuration=configuration)
    assert one_way["effect_proven"] is False  # connections still accepted: the blackhole is unseen
    assert "its service has no request to send" in one_way["evidence"]
    heal_regions(SECONDARY, "ap-southeast-1", configuration=configuration)
    both = partition_regions(SECONDARY, "ap-southeast-1", configuration=configuration)
    assert both["effect_proven"] is True, both["evidence"]  # a refused connection is observed
    heal_regions(SECONDARY, "ap-southeast-1", configuration=configuration)
    slowed = degrade_link(
        SECONDARY, "ap-southeast-1", bandwidth_kb_per_second=10, configuration=configuration
    )
    assert slowed["effect_proven"] is False
    assert "carries no timed transfer" in slowed["evidence"]
    restore_link(SECONDARY, "ap-southeast-1", configuration=configuration)
    assert _open(configuration) == []


def test_a_timeout_degradation_is_proven_by_a_failed_request(linked_configuration: dict[str, Any]) -> None:
    result = degrade_link(SECONDARY, PRIMARY, timeout_ms=0, configuration=linked_configuration)
    assert result["effect_proven"] is True, result["evidence"]
    assert "got 'no answer' after" in result["evidence"]
    restore_link(SECONDARY, PRIMARY, configuration=linked_configuration)
    with _client(linked_configuration) as client:
        assert client.ping()
