"""The full three-region sandbox: fault proxy, Redis, PostgreSQL, APIs, exporters, Prometheus."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import psycopg
import pytest

from harness import sandbox
from harness.sandbox import monitoring
from harness.sandbox.examples import example_scenario
from tests.sandbox.helpers import eventually

LAG_TARGET_SECONDS = 5.0
PARTITIONED = "ap-southeast-1"


def _request(url: str, body: Any = None, method: str = "GET") -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _promql(endpoints: dict, query: str) -> dict[str, float]:
    """region → value of an instant PromQL query."""
    url = f"{endpoints['prometheus_url']}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    _, answer = _request(url)
    return {r["metric"].get("region", ""): float(r["value"][1]) for r in answer["data"]["result"]}


@pytest.fixture(scope="module")
def full_sandbox(sandbox_factory) -> sandbox.Sandbox:
    return sandbox_factory(example_scenario(3))


def test_everything_runs_and_endpoints_follow_the_contract(full_sandbox: sandbox.Sandbox) -> None:
    report = sandbox.status(full_sandbox.directory)
    assert {s.state for s in report} == {"running"}, [s for s in report if s.state != "running"]
    endpoints = full_sandbox.endpoints
    assert json.loads((full_sandbox.directory / "endpoints.json").read_text()) == endpoints
    for key in (
        "sandbox_dir",
        "scenario",
        "primary_region",
        "regions",
        "redis_master_name",
        "redis_sentinels",
        "faultproxy_url",
        "links",
        "prometheus_url",
        "components",
    ):
        assert key in endpoints
    for region, entry in endpoints["regions"].items():
        assert set(entry) == {"api_url", "redis_url", "postgres_dsn", "primary"}
        assert entry["primary"] == (region == "us-east-1")
        status, body = _request(f"{entry['api_url']}/api/v1/health")
        assert (status, body["checks"]) == (200, {"redis": "ok", "postgres": "ok"})
    assert endpoints["links"]["eu-west-1/redis"]["proxy"] == "eu-west-1-redis"
    assert endpoints["links"][f"{PARTITIONED}/postgres"]["latency_seconds"] == pytest.approx(0.05)
    kinds = {s.kind for s in report}
    assert kinds == {
        "faultproxy",
        "redis",
        "sentinel",
        "postgres",
        "api",
        "redis-exporter",
        "postgres-exporter",
        "prometheus",
    } | ({"node-exporter", "process-exporter"} if monitoring.host_exporters() else set())
    assert sorted(endpoints["components"]) == sorted(s.name for s in report)


def test_a_write_in_the_primary_region_is_readable_in_every_region(full_sandbox: sandbox.Sandbox) -> None:
    regions = full_sandbox.endpoints["regions"]
    value = f"v-{time.monotonic_ns()}"
    status, _ = _request(
        f"{regions['us-east-1']['api_url']}/api/v1/items/everywhere", {"value": value}, "POST"
    )
    assert status == 201
    written = time.monotonic()
    for entry in regions.values():
        eventually(
            lambda e=entry: (
                _request(f"{e['api_url']}/api/v1/items/everywhere")
                == (200, {"key": "everywhere", "value": value, "source": "redis"})
            ),
            LAG_TARGET_SECONDS,
        )

        def standby_has_it(e=entry) -> bool:
            with psycopg.connect(e["postgres_dsn"], connect_timeout=2) as connection:
                row = connection.execute("SELECT value FROM items WHERE key = 'everywhere'").fetchone()
            return row == (value,)

        eventually(standby_has_it, LAG_TARGET_SECONDS)
    assert time.monotonic() - written < LAG_TARGET_SECONDS


def test_cross_region_writes_pay_the_link_latency(full_sandbox: sandbox.Sandbox) -> None:
    regions = full_sandbox.endpoints["regions"]
    url = f"{regions[PARTITIONED]['api_url']}/api/v1/items/far-away"
    assert _request(url, {"value": "warm-up"}, "POST")[0] == 201
    started = time.monotonic()
    assert _request(url, {"value": "x"}, "POST")[0] == 201
    # Redis SET and PostgreSQL INSERT each cross the 50 ms one-way link twice: at least 200 ms.
    assert time.monotonic() - started >= 0.19


def test_partition_grows_replica_lag_in_prometheus_and_heal_clears_it(full_sandbox: sandbox.Sandbox) -> None:
    endpoints = full_sandbox.endpoints
    route = endpoints["links"][f"{PARTITIONED}/redis"]["proxy"]
    proxy_url = f"{endpoints['faultproxy_url']}/proxies/{route}"
    primary = endpoints["regions"]["us-east-1"]["api_url"]
    lag_query = (
        'scalar(redis_master_repl_offset{component="redis-exporter-us-east-1"})'
        ' - on() redis_slave_repl_offset{job="redis"}'
    )
    # The two offsets are scraped at slightly different instants: "in sync" allows a few pings' bytes.
    in_sync_bytes = 5_000
    eventually(lambda: _promql(endpoints, lag_query).get(PARTITIONED, in_sync_bytes) < in_sync_bytes, 15)
    try:
        assert _request(proxy_url, {"enabled": False}, "POST")[0] == 200
        for index in range(20):
            assert (
                _request(f"{primary}/api/v1/items/during-partition-{index}", {"value": "x" * 10_000}, "POST")[
                    0
                ]
                == 201
            )

        def only_partitioned_region_behind() -> bool:
            lag = _promql(endpoints, lag_query)
            return lag.get(PARTITIONED, 0) >= 190_000 and lag.get("eu-west-1", in_sync_bytes) < in_sync_bytes

        eventually(only_partitioned_region_behind, 15)
    finally:
        _request(proxy_url, {"enabled": True}, "POST")
    eventually(lambda: _promql(endpoints, lag_query).get(PARTITIONED, in_sync_bytes) < in_sync_bytes, 15)


def test_prometheus_sees_api_requests_by_region(full_sandbox: sandbox.Sandbox) -> None:
    endpoints = full_sandbox.endpoints
    for entry in endpoints["regions"].values():
        _request(f"{entry['api_url']}/api/v1/items/missing-key")
    counts = eventually(
        lambda: (
            (c := _promql(endpoints, 'sum by (region) (harness_api_requests_total{route="items_read"})'))
            and len(c) == 3
            and c
        ),
        15,
    )
    assert set(counts) == set(endpoints["regions"])
    assert _promql(endpoints, 'up{job="faultproxy"}') == {"": 1.0}


def test_a_component_killed_by_hand_shows_as_dead(full_sandbox: sandbox.Sandbox) -> None:
    directory = full_sandbox.directory
    exporter = sandbox.load_components(directory)["postgres-exporter-eu-west-1"]
    os.killpg(exporter.pgid, signal.SIGKILL)
    state = eventually(
        lambda: (
            next(s for s in sandbox.status(directory) if s.name == exporter.name).state == "dead" and "dead"
        )
    )
    assert state == "dead"
    others = [s for s in sandbox.status(directory) if s.name != exporter.name]
    assert {s.state for s in others} == {"running"}
    sandbox.start_component(directory, exporter.name)
    assert next(s for s in sandbox.status(directory) if s.name == exporter.name).state == "running"
