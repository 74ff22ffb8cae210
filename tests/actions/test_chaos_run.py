"""One experiment by plain `chaos run` in a subprocess; its journal (not its exit code) is checked."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import ledger
from harness.sandbox import Sandbox, down, up
from harness.sandbox.examples import example_scenario

ROOT = Path(__file__).resolve().parents[2]
CHAOS = Path(sys.executable).with_name("chaos")  # the venv running the tests
EXPERIMENT = ROOT / "experiments" / "region-partition.yaml"


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[Sandbox]:
    directory = tmp_path / "sandbox"
    try:
        yield up(example_scenario(3), directory, components={"redis", "proxy", "api"})
    finally:
        down(directory)


def _runs(journal: dict[str, Any], key: str = "run") -> dict[str, dict[str, Any]]:
    return {entry["activity"]["name"]: entry for entry in journal[key]}


def test_region_partition_by_plain_chaos_run(estate: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state"
    variables = tmp_path / "vars.json"
    configuration = {**estate.endpoints, "harness_state_dir": str(state), "run_dir": str(tmp_path / "run")}
    variables.write_text(json.dumps({"configuration": configuration}))
    journal_path = tmp_path / "journal.json"
    subprocess.run(
        [
            str(CHAOS),
            "run",
            "--journal-path",
            str(journal_path),
            "--var-file",
            str(variables),
            str(EXPERIMENT),
        ],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,  # the journal is the evidence, never the exit code
    )
    journal = json.loads(journal_path.read_text())
    assert journal["status"] == "completed", journal.get("run")
    assert journal["steady_states"]["before"]["steady_state_met"] is True

    runs = _runs(journal)
    partition = runs["partition-remote-region"]["output"]
    assert partition["effect_proven"] is True, partition["evidence"]
    assert "a request went through before, got 'refused' after" in partition["evidence"]
    (rto,) = runs["recovery-time"]["output"]["measurements"]
    assert 9 <= rto["value"] <= 16, rto["evidence"]  # a 10 s partition, healed by the method
    lag = runs["replication-lag-through-the-cut"]["output"]  # sampled through the cut and the heal
    assert [s for s in lag["samples"] if s["probe"] == "replication_lag" and s["ok"]]
    assert [entry["status"] for entry in journal["rollbacks"]] == ["succeeded"]
    assert ledger.open_faults(state) == []
