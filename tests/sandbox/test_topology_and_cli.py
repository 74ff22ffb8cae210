"""Bad topologies are refused before anything starts; the CLI's exit codes and output."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import sandbox
from harness.errors import ConfigError
from harness.model import Link
from harness.sandbox.examples import example_scenario
from harness.sandbox.topology import component_names, plan

CLI = [sys.executable, "-c", "import sys; from harness.sandbox.cli import app; app(sys.argv[1:])"]

SCENARIO = """\
name: tiny
regions:
  - {name: us-east-1, primary: true}
  - {name: eu-west-1}
  - {name: ap-southeast-1}
links:
  - {between: [us-east-1, eu-west-1], latency: 5ms}
  - {between: [us-east-1, ap-southeast-1], latency: 50ms}
redis: {sentinel_quorum: 2, down_after: 1s, failover_timeout: 3s}
targets:
  replication_lag: {measure: replication_lag_seconds, at_most: 5s}
"""


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, check=False)


def test_plan_names_every_component_and_gives_distinct_ports() -> None:
    wanted = plan(example_scenario(3))
    names = component_names(wanted)
    assert "faultproxy" in names and "prometheus" in names and "sentinel-3" in names
    assert {f"api-{r}" for r in wanted.regions} <= set(names)
    assert len(set(wanted.ports.values())) == len(wanted.ports)
    assert wanted.latency_seconds == {"eu-west-1": 0.005, "ap-southeast-1": 0.05}
    assert wanted.sentinel_regions == ("us-east-1", "eu-west-1", "ap-southeast-1")
    assert component_names(plan(example_scenario(3), {"redis"})) == [
        "redis-us-east-1",
        "redis-eu-west-1",
        "redis-ap-southeast-1",
        "sentinel-1",
        "sentinel-2",
        "sentinel-3",
    ]


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"links": (Link("us-east-1", "mars-1", 0.05),)}, "links.0.between.1", "unknown region 'mars-1'"),
        ({"links": (Link("us-east-1", "eu-west-1", -0.005),)}, "links.0.latency", "non-negative"),
        (
            {"settings": {"sandbox": {"ports": {"redis-us-east-1": 25000, "sentinel-1": 25000}}}},
            "settings.sandbox.ports.sentinel-1",
            "duplicate port 25000",
        ),
        (
            {"settings": {"sandbox": {"ports": {"redis-mars-1": 25000}}}},
            "settings.sandbox.ports.redis-mars-1",
            "no such component",
        ),
    ],
)
def test_bad_topology_names_file_and_field(tmp_path: Path, change: dict, field: str, problem: str) -> None:
    scenario = dataclasses.replace(example_scenario(3), path="scenarios/bad.yaml", **change)
    with pytest.raises(ConfigError) as raised:
        sandbox.up(scenario, tmp_path / "never", components={"redis"})
    assert raised.value.field == field
    assert str(raised.value).startswith(f"scenarios/bad.yaml:{field}: ")
    assert problem in str(raised.value)
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (
            lambda text: text.replace("[us-east-1, ap-southeast-1]", "[us-east-1, mars-1]"),
            "links.1.between.1",
        ),
        (lambda text: text.replace("latency: 5ms", "latency: -5ms"), "links.0.latency"),
        (
            lambda text: (
                text + "settings:\n  sandbox:\n    ports: {redis-us-east-1: 25001, sentinel-2: 25001}\n"
            ),
            "settings.sandbox.ports.sentinel-2",
        ),
    ],
)
def test_cli_exits_2_on_a_bad_topology(tmp_path: Path, edit, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(edit(SCENARIO))
    result = _cli("up", "--scenario", str(path), "--dir", str(tmp_path / "box"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"{path}:{field}: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_up_status_down(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(SCENARIO)
    box = tmp_path / "box"
    try:
        started = _cli("up", "--scenario", str(path), "--dir", str(box), "--component", "redis")
        assert started.returncode == 0, started.stderr
        assert "sentinel-3" in started.stdout and "redis_sentinels" in started.stdout
        endpoints = json.loads((box / "endpoints.json").read_text())
        assert endpoints["scenario"] == "tiny"
        report = _cli("status", "--dir", str(box), "--json")
        assert report.returncode == 0
        assert {entry["state"] for entry in json.loads(report.stdout)} == {"running"}
        assert len(json.loads(report.stdout)) == 6
    finally:
        stopped = _cli("down", "--dir", str(box))
    assert stopped.returncode == 0
    assert "stopped 6 components" in stopped.stdout
    after = _cli("status", "--dir", str(box), "--json")
    assert (after.returncode, json.loads(after.stdout)) == (3, [])


def test_cli_exits_3_naming_a_missing_binary(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(SCENARIO)
    result = subprocess.run(
        [*CLI, "up", "--scenario", str(path), "--dir", str(tmp_path / "box"), "--component", "redis"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": str(tmp_path)},
    )
    assert result.returncode == 3
    assert "redis-server not found" in result.stderr and "install-system-packages" in result.stderr
