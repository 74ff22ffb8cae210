"""A shipped experiment run by `harness run` and by plain `chaos run` with the harness control: the
same verdict per check, and CTK's exit code and journal status follow the harness's verdict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness import ledger, loading, runner, scoring
from harness.sandbox import Sandbox, down, up

ROOT = Path(__file__).resolve().parents[2]
CHAOS = Path(sys.executable).with_name("chaos")
EXPERIMENT = ROOT / "experiments" / "redis-primary-failure.yaml"

# failover_time's 1 ms cannot be met: the gated check fails, so CTK must exit 1 with the journal
# `failed` although chaoslib itself sees a completed run; the other targets pass.
SCENARIO = f"""\
name: side-by-side
regions:
  - {{name: us-east-1, primary: true}}
  - {{name: eu-west-1}}
  - {{name: ap-southeast-1}}
redis: {{sentinel_quorum: 2, sentinels: 3, down_after: 1s, failover_timeout: 3s}}
targets:
  failover_time: {{measure: failover_seconds, at_most: 1ms, critical: true}}
  detection_time: {{measure: detection_seconds, at_most: 10s}}
  rto: {{measure: rto_seconds, at_most: 60s}}
  lost_writes: {{measure: lost_writes_count, at_most: 1000}}
experiments:
  - {{path: {EXPERIMENT}, targets: [failover_time, detection_time, rto, lost_writes]}}
"""


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Path]]:
    base = tmp_path_factory.mktemp("side-by-side")
    scenario = base / "side-by-side.yaml"
    scenario.write_text(SCENARIO)
    directory = base / "sandbox"
    try:
        yield up(loading.load_scenario(scenario), directory, components={"redis"}), scenario
    finally:
        down(directory)


def _verdicts(grade: dict) -> dict[str, str]:
    return {check["target"]: check["verdict"] for check in grade["checks"]}


def test_plain_chaos_run_with_the_control_grades_like_harness_run(
    estate: tuple[Sandbox, Path], tmp_path: Path
) -> None:
    sandbox, scenario = estate
    var_file = sandbox.directory / "ctk-vars.json"  # written next to endpoints.json by the sandbox
    experiment = yaml.safe_load(EXPERIMENT.read_text())
    provider = {"type": "python", "module": "harness.control", "arguments": {"scenario": str(scenario)}}
    experiment["controls"] = [{"name": "harness", "provider": provider}]  # the one entry a user adds
    (tmp_path / "user").mkdir()
    copy = tmp_path / "user" / EXPERIMENT.name  # the scenario lists the experiment by file name
    copy.write_text(yaml.safe_dump(experiment, sort_keys=False))
    state = tmp_path / "state"
    journal_path = tmp_path / "ctk" / "journal.json"
    env = {**os.environ, "HARNESS_STATE_DIR": str(state), "HARNESS_STORE": f"sqlite:///{tmp_path}/h.db"}
    result = subprocess.run(
        [str(CHAOS), "run", "--journal-path", str(journal_path), "--var-file", str(var_file), str(copy)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    journal = json.loads(journal_path.read_text())
    assert result.returncode == 1, result.stderr[-3000:]
    assert journal["status"] == "failed" and journal["deviated"] is False
    assert journal["harness"]["verdict"] == "fail"
    run_dir = Path(journal["harness"]["run_json"]).parent
    assert run_dir.parent == journal_path.parent  # next to the journal
    for name in ("run.json", "junit.xml", "summary.md", "index.html"):
        assert (run_dir / name).is_file(), name
    by_ctk = json.loads((run_dir / "run.json").read_text())
    faults = by_ctk["record"]["faults"]  # journalled through the ledger, proven, undone by the rollback
    assert [f["action"] for f in faults] == ["harness.actions.instances.stop_instance"], faults
    assert faults[0]["effect_proven"] and faults[0]["undone_at_seconds"] is not None
    assert ledger.open_faults(state) == []

    context = runner.RunContext(
        scenario=loading.load_scenario(scenario),
        out_dir=tmp_path / "harness",
        endpoints=sandbox.endpoints,
        state_dir=state,
    )
    record = runner.run_experiment(EXPERIMENT, context)
    by_harness = scoring.grade(record, context.scenario).to_dict()

    assert _verdicts(by_ctk["grade"]) == _verdicts(by_harness)
    assert _verdicts(by_harness) == {
        "failover_time": "fail",
        "detection_time": "pass",
        "rto": "pass",
        "lost_writes": "pass",
    }, by_harness["reasons"]
    assert by_ctk["grade"]["verdict"] == by_harness["verdict"] == "fail"
