"""The canary and failover probes against real outages: a cut proxy link and a killed Redis primary."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from harness.actions.instances import start_instance, stop_instance
from harness.actions.network import heal_regions, partition_regions
from harness.errors import ConfigError
from harness.probes.canary import canary_healthy, canary_samples, read_canary_log
from harness.probes.failover import current_primary, failover_time, failover_timeline


def _in_background(probe: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run a background probe the way chaoslib does: in a thread, its result collected at the end."""
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(output=probe()), daemon=True)
    thread.start()
    return thread, result


def _measure(output: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [m for m in output["measurements"] if m["name"] == name]
    return found


def test_canary_measures_an_outage_of_known_length(http_through_proxy: dict[str, Any]) -> None:
    configuration = http_through_proxy
    thread, result = _in_background(lambda: canary_samples(4.0, ["http"], 50.0, configuration=configuration))
    time.sleep(1.0)
    partition_regions("eu-west-1", "us-east-1", configuration=configuration)
    time.sleep(1.0)  # injected outage: 1 s
    heal_regions("eu-west-1", "us-east-1", configuration=configuration)
    thread.join(timeout=15)

    output = result["output"]
    failover = _measure(output, "failover_seconds")
    assert 0.7 <= failover["value"] <= 1.5, failover["evidence"]
    assert _measure(output, "rto_seconds")["value"] >= failover["value"]
    assert _measure(output, "error_ratio")["value"] > 0.9  # fault applied → healed: nearly all failed
    assert output["requests"] >= 100  # 50 Hz for 4 s, minus slow requests
    assert len(read_canary_log(configuration["run_dir"])) == output["requests"]


def test_canary_healthy_is_false_while_the_link_is_cut(http_through_proxy: dict[str, Any]) -> None:
    assert canary_healthy(["http"], configuration=http_through_proxy) is True
    partition_regions("eu-west-1", "us-east-1", configuration=http_through_proxy)
    try:
        assert canary_healthy(["http"], configuration=http_through_proxy) is False
    finally:
        heal_regions("eu-west-1", "us-east-1", configuration=http_through_proxy)
    assert canary_healthy(["http"], configuration=http_through_proxy) is True


def test_bad_canary_arguments_are_config_errors(http_through_proxy: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="arguments:kinds"):
        canary_samples(1.0, "http", configuration=http_through_proxy)
    with pytest.raises(ConfigError, match="configuration:regions"):
        canary_healthy(["redis"], configuration=http_through_proxy)  # no Sentinels configured
    with pytest.raises(ConfigError, match="arguments:duration_seconds"):
        canary_samples(0, ["http"], configuration=http_through_proxy)


def test_failover_timeline_of_a_killed_redis_primary(configuration: dict[str, Any]) -> None:
    before = current_primary("redis", configuration)
    assert before["region"] == "us-east-1"
    thread, result = _in_background(lambda: failover_timeline(9.0, ["redis"], 20.0, 0.1, configuration))
    time.sleep(1.0)
    stopped = stop_instance("redis-primary", configuration=configuration)
    try:
        thread.join(timeout=30)
    finally:
        start_instance("redis-primary", configuration=configuration)

    output = result["output"]
    assert stopped["effect_proven"] is True
    assert output["primary_before"]["redis"] == before
    assert output["primary_after"]["redis"]["region"] in ("eu-west-1", "ap-southeast-1")
    kinds = [e["kind"] for e in output["events"]]
    assert "sentinel.+odown" in kinds and "sentinel.+switch-master" in kinds and "redis.promoted" in kinds
    failover = _measure(output, "failover_seconds")
    detection = _measure(output, "detection_seconds")
    promotion = _measure(output, "promotion_seconds")
    assert 0.5 <= detection["value"] <= 6  # down-after 1 s
    assert 0 <= promotion["value"] <= 6
    assert detection["value"] <= failover["value"] <= 8, failover["evidence"]
    assert current_primary("redis", configuration) == output["primary_after"]["redis"]


def test_failover_time_reads_the_run_canary_log(configuration: dict[str, Any]) -> None:
    thread, _ = _in_background(lambda: canary_samples(7.0, ["redis"], 20.0, configuration=configuration))
    time.sleep(0.5)
    stop_instance("redis-primary", configuration=configuration)
    try:
        output = failover_time(timeout_seconds=20, configuration=configuration)
    finally:
        start_instance("redis-primary", configuration=configuration)
        thread.join(timeout=20)
    assert 0.5 <= output["failover_seconds"] <= 10, output["evidence"]
