"""Long work shows progress: expected durations from past runs or declared waits, and a line naming
what is being waited for once a wait has lasted a while."""

from __future__ import annotations

import json
import time

from harness.progress import (
    RUN_OVERHEAD_SECONDS,
    WaitNotice,
    declared_wait_seconds,
    expected_seconds,
    format_duration,
)

EXPERIMENT = {
    "method": [
        {"type": "action", "name": "cut", "pauses": {"before": 2, "after": 10}},
        {"type": "probe", "name": "look"},
        {"type": "action", "name": "odd", "pauses": {"after": "${hold}"}},  # unknown until the run
    ],
    "rollbacks": [{"type": "action", "name": "heal", "pauses": {"before": 1.5}}],
}


def test_expected_duration_is_the_median_of_past_runs_else_the_declared_waits() -> None:
    assert declared_wait_seconds(EXPERIMENT) == 13.5
    assert expected_seconds(EXPERIMENT, []) == 13.5 + RUN_OVERHEAD_SECONDS
    assert expected_seconds(EXPERIMENT, [30.0, 10.0, 20.0]) == 20.0


def test_durations_read_as_minutes_and_seconds() -> None:
    assert format_duration(8.2) == "8s"
    assert format_duration(75) == "1m15s"


def test_a_wait_is_named_once_it_outlasts_the_notice_period() -> None:
    lines: list[str] = []
    with WaitNotice(lines.append, notice_seconds=0.3) as notice:
        notice.say("running")
        notice.waiting_for("the 30 s pause after cut")
        time.sleep(0.8)
    assert lines[0] == "running"
    assert len(lines) == 2 and lines[1].startswith("waiting for the 30 s pause after cut (")


def test_no_notice_while_lines_keep_coming() -> None:
    lines: list[str] = []
    with WaitNotice(lines.append, notice_seconds=0.4) as notice:
        notice.waiting_for("the sandbox to start")
        for index in range(6):
            notice.say(f"component {index} ready")
            time.sleep(0.1)
    assert not any(line.startswith("waiting") for line in lines)


def test_the_suite_prints_elapsed_and_expected_remaining_time(estate, tmp_path) -> None:
    from .trials import EXPERIMENTS, run_harness, suite_scenario

    experiment = tmp_path / "brief.yaml"
    experiment.write_text((EXPERIMENTS / "pause-replica.yaml").read_text().replace("after: 30", "after: 0.5"))
    scenario = suite_scenario(tmp_path / "suite.yaml", [experiment])
    state = tmp_path / "state"
    args = ("suite", "--scenario", str(scenario), "--endpoints", str(estate.endpoints_path), "--out")
    first = run_harness(estate, state, *args, str(tmp_path / "out"))
    assert first.returncode in (0, 1, 3), first.stderr
    # No history yet: the declared pause (0.5 s) plus a run's overhead.
    assert "[1/1] brief.yaml: about 4s; 0s elapsed, about 4s left" in first.stderr, first.stderr
    (run_file,) = (tmp_path / "out").glob("*/run.json")
    took = json.loads(run_file.read_text())["record"]["duration_seconds"]
    second = run_harness(estate, state, *args, str(tmp_path / "out2"))
    # Now the first run's duration, from the history.
    assert f"[1/1] brief.yaml: about {format_duration(took)}; " in second.stderr, second.stderr
