"""Runs that must not start: a second run on a busy target, production targets, open faults."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest

from harness import ledger, sandbox

from .trials import (
    EXPERIMENTS,
    Estate,
    run_harness,
    start_run,
    wait_for_fault,
    wait_until_steady,
    write_scenario,
)


def _run(
    estate: Estate, state: Path, scenario: Path, out: Path, experiment: str = "pause-replica.yaml", *extra
):
    return run_harness(
        estate, state, "run", str(EXPERIMENTS / experiment), "--scenario", str(scenario),
        "--endpoints", str(estate.endpoints_path), "--out", str(out), *extra,
    )  # fmt: skip


def test_second_run_on_a_busy_target_is_refused_naming_the_holder(estate: Estate, tmp_path: Path) -> None:
    state = tmp_path / "state"
    started = time.time()
    first = start_run(
        estate, EXPERIMENTS / "pause-replica.yaml", state, tmp_path / "out", tmp_path / "first.log"
    )
    try:
        assert wait_for_fault(state, started) is not None, (tmp_path / "first.log").read_text()
        second = _run(estate, state, estate.scenario_path, tmp_path / "out2")
        assert second.returncode == 3, second.stdout + second.stderr
        assert "target 'safety' is busy" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        assert not (tmp_path / "out2").exists() or not list((tmp_path / "out2").glob("*/run.json"))
    finally:
        first.terminate()
        first.wait(timeout=60)
    assert first.returncode == 143
    assert wait_until_steady(estate, state) == []


PRODUCTION = "environment: production\n"


@pytest.mark.parametrize(
    ("extra_scenario", "flags"),
    [
        ("", ()),
        ("allow_production: true\n", ()),
        ("", ("--allow-production",)),
    ],
    ids=["neither", "scenario-only", "flag-only"],
)
def test_production_target_is_refused_without_both_consents(
    estate: Estate, tmp_path: Path, extra_scenario: str, flags: tuple[str, ...]
) -> None:
    scenario = write_scenario(tmp_path / "prod.yaml")
    scenario.write_text(scenario.read_text().replace("environment: sandbox\n", PRODUCTION + extra_scenario))
    result = _run(estate, tmp_path / "state", scenario, tmp_path / "out", "pause-replica.yaml", *flags)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "environment: production targets are refused" in result.stderr
    assert "allow_production: true" in result.stderr and "--allow-production" in result.stderr
    assert "Traceback" not in result.stderr
    assert ledger.read_entries(tmp_path / "state") == []  # nothing was applied


def test_production_target_runs_with_both_consents(estate: Estate, tmp_path: Path) -> None:
    experiment = tmp_path / "brief.yaml"
    experiment.write_text((EXPERIMENTS / "pause-replica.yaml").read_text().replace("after: 30", "after: 0.5"))
    scenario = write_scenario(tmp_path / "prod.yaml", experiments=[experiment])
    scenario.write_text(
        scenario.read_text().replace("environment: sandbox\n", PRODUCTION + "allow_production: true\n")
    )
    result = run_harness(
        estate, tmp_path / "state", "run", str(experiment), "--scenario", str(scenario),
        "--endpoints", str(estate.endpoints_path), "--out", str(tmp_path / "out"), "--allow-production",
    )  # fmt: skip
    assert "refused" not in result.stderr
    (run_file,) = (tmp_path / "out").glob("*/run.json")
    (fault,) = json.loads(run_file.read_text())["record"]["faults"]
    assert fault["effect_proven"] is True and fault["undone_at_seconds"] is not None
    assert wait_until_steady(estate, tmp_path / "state") == []


def test_run_refuses_while_a_fault_is_open_and_recover_undoes_it(estate: Estate, tmp_path: Path) -> None:
    from harness.actions.instances import pause_instance

    state = tmp_path / "state"
    configuration = {**estate.endpoints, "harness_state_dir": str(state), "run_id": "crashed-run"}
    pause_instance("redis-eu-west-1", configuration=configuration)  # as if its run had been killed
    refused = _run(estate, state, estate.scenario_path, tmp_path / "out")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "still applied (harness.actions.instances.pause_instance on redis-eu-west-1)" in refused.stderr
    assert f"harness recover --dir {state}" in refused.stderr
    assert any(c.state != "running" for c in sandbox.status(estate.directory))

    recovered = run_harness(estate, state, "recover", "--dir", str(state))
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert "undone harness.actions.instances.pause_instance on redis-eu-west-1" in recovered.stderr
    assert "1 undone, 0 failed" in recovered.stderr
    assert ledger.open_faults(state) == []
    assert wait_until_steady(estate, state) == []

    again = run_harness(estate, state, "recover", "--dir", str(state))
    assert again.returncode == 0 and "no open faults" in again.stderr


def _children_while_running(process) -> list[str]:
    """Every child process seen while `process` ran (polled every 10 ms)."""
    import psutil

    seen: dict[int, str] = {}
    while process.poll() is None:
        try:
            for child in psutil.Process(process.pid).children(recursive=True):
                seen.setdefault(child.pid, " ".join(child.cmdline())[:120])
        except psutil.Error:
            pass
        time.sleep(0.01)
    return list(seen.values())


@pytest.mark.parametrize(
    ("command", "refusal"),
    [
        ("suite", "production"),
        ("gate", "production"),
        ("suite", "open-fault"),
        ("suite", "busy"),
        ("suite", "bad-input"),
    ],
)
def test_a_refused_suite_starts_no_process(
    estate: Estate, tmp_path: Path, command: str, refusal: str
) -> None:
    from harness import locking

    from .trials import processes_mentioning, start_harness, suite_scenario

    state, out, log = tmp_path / "state", tmp_path / "out", tmp_path / "suite.log"
    experiment = EXPERIMENTS / ("missing.yaml" if refusal == "bad-input" else "pause-replica.yaml")
    scenario = suite_scenario(tmp_path / "suite.yaml", [experiment])
    if refusal == "production":
        scenario.write_text(scenario.read_text().replace("environment: sandbox\n", PRODUCTION))
    if refusal == "open-fault":
        from harness.actions.instances import pause_instance

        configuration = {**estate.endpoints, "harness_state_dir": str(state), "run_id": "crashed-run"}
        pause_instance("redis-eu-west-1", configuration=configuration)
    expected = {"production": 3, "open-fault": 3, "busy": 3, "bad-input": 2}[refusal]
    with locking.target_lock(state, "safety") if refusal == "busy" else _nothing():
        process = start_harness(estate, state, log, command, "--scenario", str(scenario), "--out", str(out))
        children = _children_while_running(process)
    output = log.read_text()
    try:
        assert process.returncode == expected, output
        assert children == [], f"the refused {command} started {children}"
        assert not (out / "sandbox").exists()
        assert processes_mentioning(str(tmp_path)) == []
        assert "Traceback" not in output
        assert {
            "production": "environment: production targets are refused",
            "open-fault": "still applied (harness.actions.instances.pause_instance on redis-eu-west-1)",
            "busy": "target 'safety' is busy",
            "bad-input": "missing.yaml",
        }[refusal] in output
    finally:
        if refusal == "open-fault":
            assert run_harness(estate, state, "recover", "--dir", str(state)).returncode == 0
    assert wait_until_steady(estate, state) == []


@contextlib.contextmanager
def _nothing():
    yield
