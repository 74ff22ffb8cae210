"""A run's own sandbox never outlives it: a signal while the sandbox starts tears it down, and after
kill -9 `harness recover` stops it, stores the record the run had written and removes its
temporary files."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness import ledger, leftovers, report, store

from .trials import (
    EXPERIMENTS,
    Estate,
    processes_mentioning,
    run_harness,
    start_harness,
    suite_scenario,
    wait_for_fault,
    wait_for_output,
)


def _wait_gone(text: str, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.mark.parametrize("signal_", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_the_suite_starts_its_sandbox_tears_it_down(
    estate: Estate, tmp_path: Path, signal_: signal.Signals
) -> None:
    state, out, log = tmp_path / "state", tmp_path / "out", tmp_path / "suite.log"
    scenario = suite_scenario(tmp_path / "suite.yaml", [EXPERIMENTS / "pause-replica.yaml"])
    process = start_harness(estate, state, log, "suite", "--scenario", str(scenario), "--out", str(out))
    try:
        # The primary is up, its replicas and Sentinels are still starting.
        assert wait_for_output(log, r"redis-us-east-1: redis primary on", process), log.read_text()
        assert processes_mentioning(str(tmp_path)), "the sandbox was meant to be starting"
        process.send_signal(signal_)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text()
    assert code == 128 + signal_, output
    assert f"harness: interrupted by {signal_.name}: stopped the sandbox" in output
    assert "Traceback" not in output
    assert _wait_gone(str(tmp_path)) == []
    assert ledger.read_entries(state) == []
    assert not list((state / leftovers.SANDBOXES_DIR).glob("*.json"))


@pytest.mark.parametrize("grace_seconds", [5.0, 0.0], ids=["SIGTERM-then-SIGKILL-after-5s", "SIGKILL"])
def test_after_kill_9_recover_leaves_nothing_running_including_the_sandbox(
    estate: Estate, tmp_path: Path, grace_seconds: float
) -> None:
    """A CI runner's grace period: SIGTERM, then SIGKILL after `grace_seconds` (0: SIGKILL alone)."""
    state, out, log = tmp_path / "state", tmp_path / "out", tmp_path / "run.log"
    started = time.time()
    process = start_harness(
        estate, state, log, "run", str(EXPERIMENTS / "pause-replica.yaml"),
        "--scenario", str(estate.scenario_path), "--out", str(out),
    )  # fmt: skip
    try:
        assert wait_for_fault(state, started, timeout_seconds=60) is not None, log.read_text()
        if grace_seconds:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace_seconds)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if not grace_seconds:
        # kill -9 undoes nothing: the paused replica and the run's sandbox are still there.
        assert ledger.open_faults(state), "the fault was meant to be left open"
        assert processes_mentioning(str(tmp_path)), "the run's sandbox was meant to be left running"
    else:
        assert process.returncode == 143, log.read_text()  # the grace period sufficed
    recovered = run_harness(estate, state, "recover", "--dir", str(state))
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert "Traceback" not in recovered.stderr
    if not grace_seconds:
        assert "undone harness.actions.instances.pause_instance" in recovered.stderr
        assert "stopped sandbox" in recovered.stderr
    assert ledger.open_faults(state) == []
    assert _wait_gone(str(tmp_path)) == []
    assert not list((state / leftovers.SANDBOXES_DIR).glob("*.json"))
    assert not list((state / leftovers.RUNS_DIR).glob("*.json"))


def test_recover_stores_a_written_record_the_history_lacks_and_removes_temporary_files(
    estate: Estate, tmp_path: Path
) -> None:
    """A run killed between writing run.json and its history entry (or mid atomic write)."""
    from tests.report.report_records import passing_pair

    record, grade = passing_pair()
    state, out = tmp_path / "state", tmp_path / "out"
    report.write_run(record, grade, out)
    stray = out / record.run_id / ".junit.xml.abc123.tmp"
    stray.write_text("half a file")
    os.utime(stray, (time.time() - 60, time.time() - 60))
    dead = subprocess.Popen(["true"])
    dead.wait()
    note = state / leftovers.RUNS_DIR / f"{record.run_id}.json"
    note.parent.mkdir(parents=True)
    note.write_text(
        json.dumps({"run_id": record.run_id, "out_dir": str(out), "pid": dead.pid, "create_time": 0})
    )

    recovered = run_harness(estate, state, "recover", "--dir", str(state))
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert f"stored run {record.run_id}" in recovered.stderr
    assert "removed 1 temporary file" in recovered.stderr
    assert not stray.exists() and not note.exists()
    with store.open_store(estate.env(state)["HARNESS_STORE"]) as history:
        assert [r.run_id for r, _ in history.runs(full=False)] == [record.run_id]
