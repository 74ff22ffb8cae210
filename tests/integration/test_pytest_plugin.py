"""The pytest plugin: `--harness-scenario`, the `sandbox` fixture and `chaos_experiment`, used the way
a user's test suite uses them (a separate pytest session in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = ROOT / "experiments" / "redis-primary-failure.yaml"

SCENARIO = """\
name: plugin-demo
regions:
  - {{name: us-east-1, primary: true}}
  - {{name: eu-west-1}}
redis: {{sentinel_quorum: 2, sentinels: 3, down_after: 1s, failover_timeout: 3s}}
postgres: {{failover: manual}}
targets:
  failover_time: {{measure: failover_seconds, at_most: {limit}, critical: true}}
experiments:
  - {{path: {experiment}, targets: [failover_time]}}
"""

USER_TEST = f"""\
def test_redis_primary_failure(chaos_experiment):
    record, grade = chaos_experiment({str(EXPERIMENT)!r})
    assert grade.score == 100
    assert any(f.effect_proven for f in record.faults)
"""


@pytest.mark.parametrize(("limit", "outcome"), [("30s", "1 passed"), ("100ms", "1 failed")])
def test_chaos_experiment_fixture_passes_or_fails_with_measured_vs_target(
    tmp_path: Path, limit: str, outcome: str
) -> None:
    (tmp_path / "scenario.yaml").write_text(SCENARIO.format(limit=limit, experiment=EXPERIMENT))
    (tmp_path / "test_resilience.py").write_text(USER_TEST)
    elsewhere = tmp_path / "elsewhere"  # the plugin keeps its runs under the rootdir, whatever the cwd
    elsewhere.mkdir()
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "no:locust", "-p", "no:cacheprovider", "-q",
            "--harness-scenario", str(tmp_path / "scenario.yaml"), "--rootdir", str(tmp_path),
            str(tmp_path / "test_resilience.py"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=elsewhere,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert outcome in result.stdout, result.stdout + result.stderr
    # Every run kept like `harness run` keeps it: its folder (run.json and reports) and the history.
    (run_json,) = (tmp_path / "harness-reports").glob("*/run.json")
    assert {"junit.xml", "summary.md", "index.html"} <= {p.name for p in run_json.parent.iterdir()}
    assert (tmp_path / ".harness" / "history.sqlite3").is_file() or "HARNESS_STORE" in os.environ
    if outcome == "1 failed":
        assert "failover_seconds measured" in result.stdout and "at most 100 ms" in result.stdout
