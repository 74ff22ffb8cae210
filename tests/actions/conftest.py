"""Fixtures for the action tests: a fresh Redis sandbox per test, its configuration, a fault proxy."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.faultproxy import FaultProxy
from harness.sandbox import Sandbox, down, up
from harness.sandbox.examples import example_scenario


@pytest.fixture
def redis_estate(tmp_path: Path) -> Iterator[Sandbox]:
    """A Redis-only three-region sandbox (primary, two replicas, three Sentinels) of this test alone."""
    directory = tmp_path / "sandbox"
    try:
        yield up(example_scenario(3), directory, components={"redis"})
    finally:
        down(directory)


@pytest.fixture
def configuration(redis_estate: Sandbox, tmp_path: Path) -> dict[str, Any]:
    """What an experiment would receive: the sandbox's endpoints plus a private ledger directory."""
    return {**redis_estate.endpoints, "harness_state_dir": str(tmp_path / "state"), "run_id": "test-run"}


@pytest.fixture
def fault_proxy() -> Iterator[FaultProxy]:
    """The project's fault proxy, in this process, on a free loopback port."""
    server = FaultProxy()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def linked_configuration(configuration: dict[str, Any], fault_proxy: FaultProxy) -> dict[str, Any]:
    """The configuration plus a fault-proxy link from each secondary region to the primary's Redis."""
    primary = configuration["regions"][configuration["primary_region"]]["redis_url"]
    upstream = primary.removeprefix("redis://").split("/")[0]
    links = {}
    for region in configuration["regions"]:
        if region == configuration["primary_region"]:
            continue
        proxy = f"{region}-redis"
        body = json.dumps({"name": proxy, "listen": "127.0.0.1:0", "upstream": upstream}).encode()
        request = urllib.request.Request(f"{fault_proxy.api_url}/proxies", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 201
        links[f"{region}/redis"] = {
            "proxy": proxy,
            "from": region,
            "to": configuration["primary_region"],
            "service": "redis",
        }
    return {**configuration, "faultproxy_url": fault_proxy.api_url, "links": links}
