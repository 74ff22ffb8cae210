"""Loader errors: one line naming file and field, exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.loading import load_experiment, load_scenario
from harness.model import Comparison

VALID = """\
name: demo
regions:
  - name: us-east-1
    primary: true
  - name: eu-west-1
    requests: 800/min
links:
  - between: [us-east-1, eu-west-1]
    latency: 40ms
redis:
  sentinel_quorum: 2
  down_after: 2s
  failover_timeout: 5000ms
guardrails:
  max_error_ratio: 50%
  max_duration: 10min
targets:
  failover_time:
    measure: failover_seconds
    at_most: 30s
    critical: true
  availability:
    measure: load_failure_ratio
    at_least: 99.9%
"""


def _write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_scenario_is_loaded_in_base_units(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, VALID))
    assert scenario.name == "demo"
    assert scenario.primary_region.name == "us-east-1"
    assert scenario.links[0].latency_seconds == pytest.approx(0.040)
    assert scenario.redis.failover_timeout_seconds == pytest.approx(5.0)
    assert scenario.regions[1].requests_per_minute == pytest.approx(800)
    assert scenario.guardrails.max_error_ratio == pytest.approx(0.5)
    failover = scenario.target("failover_time")
    assert (failover.limit, failover.unit, failover.critical) == (30.0, "seconds", True)
    assert scenario.target("availability").comparison is Comparison.AT_LEAST


CASES = [
    ("missing file", None, "missing.yaml: file not found"),
    ("malformed YAML", "name: [\n", "scenario.yaml:line 2: malformed YAML"),
    ("unknown field", VALID + "colour: blue\n", "scenario.yaml:colour: unknown field"),
    (
        "wrong type",
        VALID.replace("sentinel_quorum: 2", "sentinel_quorum: two"),
        "redis.sentinel_quorum: expected a whole number",
    ),
    (
        "bad unit",
        VALID.replace("at_most: 30s", "at_most: 30"),
        "targets.failover_time.at_most: expected a duration",
    ),
    ("unit word", VALID.replace("at_most: 30s", "at_most: fast"), "got 'fast'"),
    (
        "negative limit",
        VALID.replace("at_most: 30s", "at_most: -5s"),
        "targets.failover_time.at_most: expected a non-negative",
    ),
    (
        "negative latency",
        VALID.replace("latency: 40ms", "latency: -40ms"),
        "links.0.latency: expected a non-negative",
    ),
    (
        "unknown region",
        VALID.replace("[us-east-1, eu-west-1]", "[us-east-1, mars-1]"),
        "links.0.between.1: unknown region 'mars-1'",
    ),
    (
        "ratio without %",
        VALID.replace("at_least: 99.9%", "at_least: 0.999"),
        "targets.availability.at_least: expected a percentage",
    ),
    (
        "missing measure",
        VALID.replace("    measure: failover_seconds\n", ""),
        "targets.failover_time.measure: missing required field",
    ),
    (
        "quorum too big",
        VALID.replace("sentinel_quorum: 2", "sentinel_quorum: 5"),
        "redis.sentinel_quorum: quorum 5 exceeds",
    ),
    ("top level list", "- a\n", "expected a mapping at the top level"),
    (
        "unknown measure",
        VALID.replace("measure: failover_seconds", "measure: failovr_seconds"),
        "targets.failover_time.measure: unknown measure 'failovr_seconds' (valid: ",
    ),
    (
        "experiment without targets",
        VALID + "experiments:\n  - path: scenario.yaml\n",
        "experiments.0.targets: missing required field",
    ),
]


@pytest.mark.parametrize(("case", "text", "message"), CASES, ids=[c[0] for c in CASES])
def test_scenario_errors_name_file_and_field(
    tmp_path: Path, case: str, text: str | None, message: str
) -> None:
    path = tmp_path / "missing.yaml" if text is None else _write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_scenario(path)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


CLI_CASES = [*CASES[:7], CASES[-2]]


@pytest.mark.parametrize(("case", "text", "message"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_validate_exits_2_with_one_line(
    tmp_path: Path, case: str, text: str | None, message: str
) -> None:
    path = tmp_path / "missing.yaml" if text is None else _write(tmp_path, text)
    result = subprocess.run(
        [sys.executable, "-m", "harness", "validate", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_experiment_validated_by_chaoslib(tmp_path: Path) -> None:
    path = _write(tmp_path, "description: d\nmethod: []\n", "experiment.yaml")
    with pytest.raises(ConfigError, match=r"experiment.yaml: invalid experiment: .*title"):
        load_experiment(path)


def test_experiment_extension_is_checked(tmp_path: Path) -> None:
    text = """\
title: t
description: d
extensions:
  - name: harness
    canary: {kinds: [carrier-pigeon]}
method:
  - type: action
    name: a
    provider: {type: python, module: os, func: getcwd}
"""
    with pytest.raises(ConfigError, match=r"extensions\.0\.canary\.kinds\.0: expected one of redis"):
        load_experiment(_write(tmp_path, text, "experiment.yaml"))
