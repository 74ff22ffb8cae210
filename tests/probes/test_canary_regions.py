"""A canary per region, reaching Redis and PostgreSQL the way that region's clients do: through
its fault-proxy route to the primary. Cutting one region's links fails that region's canary only."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.actions.network import heal_regions, partition_regions
from harness.canary import Canary, request_once, targets_from_endpoints
from harness.sandbox import Sandbox, down, up
from harness.sandbox.examples import example_scenario

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-1"]


@pytest.fixture(scope="module")
def routed_estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    directory = tmp_path_factory.mktemp("routed-sandbox")
    try:
        yield up(example_scenario(3), directory, components={"redis", "postgres", "proxy"})
    finally:
        down(directory)


def test_one_target_per_region_through_its_routes(routed_estate: Sandbox) -> None:
    endpoints = routed_estate.endpoints
    targets = targets_from_endpoints(endpoints, ["redis", "postgres"])
    assert [(t.kind, t.region) for t in targets] == [
        *(("redis", r) for r in REGIONS),
        *(("postgres", r) for r in REGIONS),
    ]
    redis_targets = {t.region: t for t in targets if t.kind == "redis"}
    links = endpoints["links"]
    primary_redis = endpoints["regions"]["us-east-1"]["redis_url"].split("//")[1].split("/")[0]
    assert dict(redis_targets["eu-west-1"].routes)[primary_redis] == links["eu-west-1/redis"]["listen"]
    eu_redis = endpoints["regions"]["eu-west-1"]["redis_url"].split("//")[1].split("/")[0]
    assert dict(redis_targets["us-east-1"].routes)[eu_redis] == links["us-east-1/redis/eu-west-1"]["listen"]
    postgres_targets = {t.region: t for t in targets if t.kind == "postgres"}
    assert links["eu-west-1/postgres"]["listen"] in postgres_targets["eu-west-1"].dsn
    primary_postgres = endpoints["regions"]["us-east-1"]["postgres_dsn"].split("@")[1].split("/")[0]
    assert primary_postgres in postgres_targets["us-east-1"].dsn


def _await_answers(targets: list[Any], timeout_seconds: float = 30.0) -> None:
    """Wait (bounded) until every target answers one request."""
    deadline = time.monotonic() + timeout_seconds
    for target in targets:
        while error := request_once(target):  # "" once it answered
            assert time.monotonic() < deadline, f"{target.kind} {target.region}: {error}"
            time.sleep(0.2)


def _run(targets: list[Any], seconds: float) -> dict[tuple[str, str], list[dict[str, Any]]]:
    canaries = [Canary(t, rate_hz=10, timeout_seconds=1.0, max_duration_seconds=30) for t in targets]
    for canary in canaries:
        canary.start()
    time.sleep(seconds)
    return {(c.target.kind, c.target.region): c.stop() for c in canaries}


def test_cutting_a_region_fails_its_canaries_only(routed_estate: Sandbox, tmp_path: Path) -> None:
    configuration = {**routed_estate.endpoints, "harness_state_dir": str(tmp_path / "state"), "run_id": "t"}
    targets = targets_from_endpoints(configuration, ["redis", "postgres"])
    _await_answers(targets)  # Sentinel may not name the master yet on a loaded machine
    healthy = _run(targets, 1.5)
    assert all(samples and all(s["ok"] for s in samples) for samples in healthy.values()), {
        key: [s["error"] for s in samples if not s["ok"]][:1] for key, samples in healthy.items()
    }
    partition_regions("us-east-1", "ap-southeast-1", configuration=configuration)
    try:
        cut = _run(targets, 2.0)
    finally:
        heal_regions("us-east-1", "ap-southeast-1", configuration=configuration)
    for kind in ("redis", "postgres"):
        assert cut[(kind, "ap-southeast-1")] and not any(s["ok"] for s in cut[(kind, "ap-southeast-1")])
        for region in ("us-east-1", "eu-west-1"):
            assert all(s["ok"] for s in cut[(kind, region)]), (kind, region, cut[(kind, region)][:1])
