"""harness.probes.health and harness.probes.recovery against a real HTTP server behind the fault proxy."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from harness.actions.network import heal_regions, partition_regions
from harness.errors import ConfigError
from harness.probes.health import api_healthy, health_checks
from harness.probes.recovery import recovery_time


def _in_background(probe: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(output=probe()), daemon=True)
    thread.start()
    return thread, result


def test_health_checks_declare_a_region_down_after_the_threshold(
    http_through_proxy: dict[str, Any], api
) -> None:
    assert api_healthy(configuration=http_through_proxy) is True
    thread, result = _in_background(lambda: health_checks(3.0, 0.1, 0.5, 3, configuration=http_through_proxy))
    time.sleep(0.8)
    api.healthy = False
    assert api_healthy("eu-west-1", configuration=http_through_proxy) is False
    time.sleep(1.0)  # about 10 failed checks: declared down after the third
    api.healthy = True
    thread.join(timeout=10)

    output = result["output"]
    (measurement,) = output["measurements"]
    assert 0.4 <= measurement["value"] <= 1.3, measurement["evidence"]
    assert measurement["lower_bound"] is False
    assert [t["state"] for t in output["transitions"]["eu-west-1"]] == ["down", "up"]
    assert 20 <= len(output["samples"]) <= 31
    assert any(s["error"] == "HTTP 503" for s in output["samples"])


def test_health_checks_never_declare_a_brief_blip(http_through_proxy: dict[str, Any], api) -> None:
    thread, result = _in_background(lambda: health_checks(1.5, 0.1, 0.5, 3, configuration=http_through_proxy))
    time.sleep(0.5)
    api.healthy = False
    time.sleep(0.12)  # one or two failed checks, below the threshold of 3
    api.healthy = True
    thread.join(timeout=10)
    (measurement,) = result["output"]["measurements"]
    assert measurement["value"] == 0
    assert "no region reached 3 consecutive failures" in measurement["evidence"]


def test_health_arguments_are_checked(http_through_proxy: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="arguments:regions"):
        api_healthy("mars-1", configuration=http_through_proxy)
    with pytest.raises(ConfigError, match="arguments:failure_threshold"):
        health_checks(1.0, 0.5, 0.5, 0, configuration=http_through_proxy)
    with pytest.raises(ConfigError, match="configuration:regions"):
        api_healthy(configuration={})


def test_recovery_time_measures_fault_start_to_green(http_through_proxy: dict[str, Any]) -> None:
    configuration = http_through_proxy
    thread, result = _in_background(lambda: recovery_time(15.0, ["http"], 20.0, 0.5, configuration))
    time.sleep(0.7)
    partition_regions("eu-west-1", "us-east-1", configuration=configuration)
    time.sleep(1.0)
    heal_regions("eu-west-1", "us-east-1", configuration=configuration)
    thread.join(timeout=20)
    (rto,) = result["output"]["measurements"]
    assert rto["name"] == "rto_seconds"
    assert 0.8 <= rto["value"] <= 1.6, rto["evidence"]
    assert not thread.is_alive()


def test_recovery_time_started_after_recovery_is_unknown(http_through_proxy: dict[str, Any]) -> None:
    partition_regions("eu-west-1", "us-east-1", configuration=http_through_proxy)
    heal_regions("eu-west-1", "us-east-1", configuration=http_through_proxy)
    time.sleep(0.3)
    output = recovery_time(5.0, ["http"], 20.0, 0.3, http_through_proxy)
    (rto,) = output["measurements"]
    assert rto["value"] is None
    assert "missed" in rto["evidence"]
