"""Fixtures for the action tests; the Redis sandbox and the fault proxy are in tests/conftest.py."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from harness.faultproxy import FaultProxy


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
