"""harness.probes.durability: acknowledged writes lost when a primary cut off from its replicas is killed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.actions.instances import start_instance, stop_instance
from harness.actions.network import heal_regions, partition_regions
from harness.probes.durability import lost_acknowledged_writes
from harness.sandbox import Sandbox, down, up
from harness.sandbox.examples import example_scenario


@pytest.fixture
def proxied_redis(tmp_path: Path) -> Iterator[Sandbox]:
    """Redis whose replicas replicate through the fault proxy (Sentinels talk to the servers directly)."""
    directory = tmp_path / "sandbox"
    try:
        yield up(example_scenario(3), directory, components={"redis", "proxy"})
    finally:
        down(directory)


def _measures(output: dict[str, Any]) -> dict[str, Any]:
    return {m["name"]: m for m in output["measurements"]}


def test_no_write_is_lost_without_a_fault(configuration: dict[str, Any]) -> None:
    output = lost_acknowledged_writes(1.0, 20.0, 5.0, configuration)
    measures = _measures(output)
    assert output["checked"] >= 10
    assert measures["lost_writes_count"]["value"] == 0
    assert measures["rpo_seconds"]["value"] == 0


def test_writes_acknowledged_while_partitioned_are_lost_in_failover(
    proxied_redis: Sandbox, tmp_path: Path
) -> None:
    configuration = {**proxied_redis.endpoints, "harness_state_dir": str(tmp_path / "state")}
    result: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: result.update(output=lost_acknowledged_writes(6.0, 20.0, 20.0, configuration)),
        daemon=True,
    )
    thread.start()
    time.sleep(1.0)
    partition_regions("us-east-1", "eu-west-1", configuration=configuration)
    partition_regions("us-east-1", "ap-southeast-1", configuration=configuration)
    time.sleep(1.0)  # the primary acknowledges writes its replicas never receive
    stop_instance("redis-primary", configuration=configuration)
    try:
        thread.join(timeout=40)
    finally:
        heal_regions("us-east-1", "eu-west-1", configuration=configuration)
        heal_regions("us-east-1", "ap-southeast-1", configuration=configuration)
        start_instance("redis-primary", configuration=configuration)

    measures = _measures(result["output"])
    lost = measures["lost_writes_count"]["value"]
    assert 5 <= lost <= 40, measures["lost_writes_count"]["evidence"]  # about 1 s of writes at 20 Hz
    assert 0.5 <= measures["rpo_seconds"]["value"] <= 2.0, measures["rpo_seconds"]["evidence"]
    assert result["output"]["lost_keys"]
