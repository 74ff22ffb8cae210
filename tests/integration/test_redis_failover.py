"""The walking skeleton end to end: real Redis + Sentinels, the CLI, the record, the exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.sandbox import load_components, stop_component, up
from harness.sandbox.examples import example_scenario

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = ROOT / "experiments" / "redis-primary-failure.yaml"

SCENARIO = """\
name: skeleton
regions:
  - {{name: us-east-1, primary: true}}
  - {{name: eu-west-1}}
  - {{name: ap-southeast-1}}
redis: {{sentinel_quorum: 2, sentinels: 3, down_after: 1s, failover_timeout: 3s}}
targets:
  failover_time: {{measure: failover_seconds, at_most: {failover}, critical: true}}
  detection_time: {{measure: detection_seconds, at_most: 10s}}
  promotion_time: {{measure: promotion_seconds, at_most: 30s}}
  rto: {{measure: rto_seconds, at_most: 60s}}
  lost_writes: {{measure: lost_writes_count, at_most: 1000}}
experiments:
  - {{path: {experiment}, targets: [failover_time, detection_time, promotion_time, rto, lost_writes]}}
"""


def _harness(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HARNESS_STATE_DIR": str(tmp_path / "state"),
        "HARNESS_STORE": f"sqlite:///{tmp_path}/h.db",
    }
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


def _scenario(tmp_path: Path, failover: str) -> Path:
    path = tmp_path / "skeleton.yaml"
    path.write_text(SCENARIO.format(failover=failover, experiment=EXPERIMENT))
    return path


def _run_dir(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if (p / "run.json").exists()]
    return run_dir


def test_generous_target_passes_with_exit_0_and_a_strict_one_fails_with_exit_1(tmp_path: Path) -> None:
    """One real failover, graded twice: by `harness run` against a generous target, then offline by
    `harness score` against a strict one (the same measurement must fail it, with the measured value
    in JUnit). One run instead of two keeps the suite's time."""
    out = tmp_path / "reports"
    result = _harness(
        tmp_path, "run", str(EXPERIMENT), "--scenario", str(_scenario(tmp_path, "30s")), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    run = json.loads((_run_dir(out) / "run.json").read_text())
    grade, record = run["grade"], run["record"]
    assert grade["verdict"] == "pass"
    checks = {c["measure"]: c for c in grade["checks"]}
    assert 0 < checks["failover_seconds"]["measured"] < 30
    assert 0 < checks["detection_seconds"]["measured"] < 10
    (fault,) = record["faults"]
    assert fault["effect_proven"] is True and "refuses connections" in fault["effect_evidence"]
    assert fault["undone_at_seconds"] is not None
    assert record["steady_state_before"] is True
    assert any(e["kind"] == "sentinel.+switch-master" for e in record["events"])
    assert (_run_dir(out) / "index.html").exists() and (_run_dir(out) / "summary.md").exists()

    strict = tmp_path / "strict"
    strict.mkdir()
    regraded = tmp_path / "regraded"
    result = _harness(
        tmp_path, "score", str(_run_dir(out) / "run.json"), "--scenario", str(_scenario(strict, "100ms")),
        "--out", str(regraded),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    junit = ET.parse(_run_dir(regraded) / "junit.xml").getroot()
    cases = junit.findall(".//testcase")
    assert len(cases) == 5
    failures = [case.find("failure") for case in cases if case.find("failure") is not None]
    assert len(failures) == 1
    message = failures[0].get("message")
    assert "failover_seconds measured" in message and "at most 100 ms" in message


@pytest.fixture
def stopped_target(tmp_path: Path):
    """A Redis sandbox whose primary was killed before the experiment starts."""
    sandbox = up(example_scenario(3), tmp_path / "sandbox", components={"redis"})
    try:
        for component in load_components(sandbox.directory).values():
            if component.kind == "redis":
                stop_component(sandbox.directory, component.name, signal.SIGKILL)
        endpoints = tmp_path / "endpoints.json"
        endpoints.write_text(json.dumps(sandbox.endpoints))
        yield endpoints
    finally:
        sandbox.down()


def test_target_down_before_the_fault_is_unknown_with_exit_3(tmp_path: Path, stopped_target: Path) -> None:
    out = tmp_path / "reports"
    result = _harness(
        tmp_path,
        "run",
        str(EXPERIMENT),
        "--scenario",
        str(_scenario(tmp_path, "30s")),
        "--endpoints",
        str(stopped_target),
        "--out",
        str(out),
    )
    assert result.returncode == 3, result.stderr
    run = json.loads((_run_dir(out) / "run.json").read_text())
    assert run["record"]["steady_state_before"] is False
    assert run["grade"]["verdict"] == "unknown"
    assert any("steady state did not hold" in r for r in run["grade"]["reasons"])
    assert "Traceback" not in result.stderr
