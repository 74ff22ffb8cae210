"""harness.actions.load: Locust as a subprocess against the sandbox's real regional APIs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness import ledger
from harness.actions.load import start_load, stop_load
from harness.errors import ConfigError
from harness.sandbox import Sandbox, down, up
from harness.sandbox.examples import example_scenario

SEED_004_RATES = {"us-east-1": 1000, "eu-west-1": 800, "ap-southeast-1": 600}  # requests per minute


@pytest.fixture(scope="module")
def api_estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    directory = tmp_path_factory.mktemp("api-sandbox")
    try:
        yield up(example_scenario(3), directory, components={"redis", "api"})
    finally:
        down(directory)


@pytest.fixture
def api_configuration(api_estate: Sandbox, tmp_path: Path) -> dict[str, Any]:
    return {
        **api_estate.endpoints,
        "harness_state_dir": str(tmp_path / "state"),
        "run_dir": str(tmp_path / "run"),
    }


def _measure(output: dict[str, Any], name: str) -> float:
    (value,) = [m["value"] for m in output["measurements"] if m["name"] == name]
    return value


def test_load_runs_at_the_scenario_rates_and_stops(api_configuration: dict[str, Any]) -> None:
    started = start_load(60, SEED_004_RATES, configuration=api_configuration)
    try:
        assert started["effect_proven"] is True, started["evidence"]
        assert [t["region"] for t in started["targets"]] == list(SEED_004_RATES)
        assert psutil.pid_exists(started["pid"])
        time.sleep(4)
    finally:
        output = stop_load(configuration=api_configuration)
    assert output["stopped"] is True
    assert (
        not psutil.pid_exists(started["pid"])
        or psutil.Process(started["pid"]).status() == psutil.STATUS_ZOMBIE
    )
    assert 20 <= _measure(output, "load_rps") <= 60  # 2400 requests per minute is 40 per second
    assert _measure(output, "load_failure_ratio") < 0.1  # a read may reach a replica before the write does
    assert 0 < _measure(output, "load_p99_latency_seconds") < 2
    by_name = {s["name"]: s["requests"] for s in output["stats"]}
    assert by_name["us-east-1 write"] > by_name["ap-southeast-1 write"]  # 1000 vs 600 per minute
    assert ledger.open_faults(ledger.state_dir(api_configuration)) == []
    assert stop_load(configuration=api_configuration)["stopped"] is False  # twice is safe
    assert json.loads(Path(f"{started['stats_prefix']}.json").read_text())


def test_recover_stops_a_load_left_running(api_configuration: dict[str, Any]) -> None:
    started = start_load(60, {"eu-west-1": 300}, configuration=api_configuration)
    results = ledger.recover(ledger.state_dir(api_configuration))
    assert [r.is_undone for r in results] == [True]
    assert (
        not psutil.pid_exists(started["pid"])
        or psutil.Process(started["pid"]).status() == psutil.STATUS_ZOMBIE
    )


def test_bad_rates_name_the_field(api_configuration: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"arguments:requests_per_minute\.mars-1"):
        start_load(10, {"mars-1": 100}, configuration=api_configuration)
    with pytest.raises(ConfigError, match=r"arguments:requests_per_minute\.eu-west-1: expected 0 < rate"):
        start_load(10, {"eu-west-1": "fast"}, configuration=api_configuration)
    with pytest.raises(ConfigError, match="no scenario_path"):
        start_load(10, configuration=api_configuration)
    assert ledger.open_faults(ledger.state_dir(api_configuration)) == []
