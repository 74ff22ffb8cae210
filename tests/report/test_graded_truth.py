"""End to end: a record with known truth graded by harness.scoring, then rendered. Every output
says exactly what grading graded: the same value, the same censoring, the same windows."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import measures, scoring
from harness.model import Event, ExperimentRef, FaultRecord, RunRecord, Sample, Scenario, Target, Verdict
from harness.report import build_run_view, render_junit, render_summary, write_run
from harness.report._charts import run_moments

RATE_HZ = 20.0
TIMEOUT = 1.0
OLD, NEW = "127.0.0.1:6379", "127.0.0.1:6380"


def _canary(region: str, down: tuple[float, float], end: float = 40.0) -> list[Sample]:
    """A canary at 20 Hz against a server that refuses from down[0] to down[1]."""
    samples = []
    for tick in range(int(end * RATE_HZ)):
        sent = tick / RATE_HZ
        refused = down[0] <= sent < down[1]
        samples.append(
            Sample("canary", sent, None if refused else 0.001, not refused, region, 0.001,
                   "ConnectionError: refused" if refused else "")
        )  # fmt: skip
    return samples


def _graded(us_down: tuple[float, float], eu_down: tuple[float, float]) -> tuple[RunRecord, scoring.Grade]:
    """Fault at t+10 s undone at t+25 s; a Sentinel promotion at t+13 s."""
    events = [
        *(Event(0.0, "canary.started", "runner",
                {"region": r, "kind": "redis", "rate_hz": RATE_HZ, "timeout_seconds": TIMEOUT})
          for r in ("us-east-1", "eu-west-1")),
        Event(11.0, "sentinel.+odown", "sentinel-1", {"exact": True}),
        Event(13.0, "sentinel.+switch-master", "sentinel-1", {"old_primary": OLD, "new_primary": NEW,
                                                               "exact": True}),
    ]  # fmt: skip
    record = RunRecord(
        run_id="graded-truth",
        scenario="aeon-nova",
        experiment_title="Redis primary failover",
        experiment_path="experiments/redis-primary-failover.yaml",
        harness_version="0",
        started_at="2026-01-01T00:00:00+00:00",
        duration_seconds=40.0,
        status="completed",
        steady_state_before=True,
        steady_state_after=True,
        events=tuple(events),
        samples=tuple(_canary("us-east-1", us_down) + _canary("eu-west-1", eu_down)),
        faults=(
            FaultRecord(
                "f-1",
                "harness.actions.instances.stop_instance",
                "redis-primary",
                10.0,
                25.0,
                True,
                "port refuses",
            ),
        ),
    )
    scenario = Scenario(
        name="aeon-nova",
        path="scenarios/aeon-nova.yaml",
        targets=(
            Target("failover_time", "failover_seconds", 5.0, "seconds", critical=True,
                   description="Redis failover completes within 5 s", source="seeds/aeon-nova.md §4.2"),
            Target("recovery", "rto_seconds", 30.0, "seconds",
                   description="Every region serves again", source="seeds/aeon-nova.md §4.1"),
        ),
        experiments=(ExperimentRef("experiments/redis-primary-failover.yaml",
                                   targets=("failover_time", "recovery")),),
    )  # fmt: skip
    return record, scoring.grade(record, scenario)


def test_the_run_page_draws_and_says_the_graded_failover() -> None:
    record, grade = _graded((10.0, 13.5), (10.0, 12.0))
    check = next(c for c in grade.checks if c.target == "failover_time")
    assert check.source == "seeds/aeon-nova.md §4.2"  # scoring cites the target
    view = build_run_view(record, grade)
    figures = {f.label: f.value for f in view.figures}
    assert figures["Failover"] == f"{check.measured:.2f} s"
    moments = run_moments(record)
    longest = max(moments.outages, key=lambda o: o.value_seconds)
    assert longest.region == "us-east-1" and longest.value_seconds == check.measured
    assert f"us-east-1 from t+{longest.window.start_seconds:.2f} s" in view.timeline.caption
    assert moments.promoted == 13.0 and moments.detected == pytest.approx(11.0)
    shown = next(c for c in view.checks if c.target == "failover_time")
    assert shown.source == "seeds/aeon-nova.md §4.2"
    assert shown.description == "Redis failover completes within 5 s"


def test_a_region_still_down_at_the_undo_is_censored_in_every_output(tmp_path: Path) -> None:
    record, grade = _graded((10.0, 13.5), (10.0, 30.0))
    check = next(c for c in grade.checks if c.target == "failover_time")
    assert check.lower_bound and check.verdict is Verdict.FAIL
    bound = f"> {check.measured:.2f} s"
    assert (
        next(c for c in build_run_view(record, grade).checks if c.target == "failover_time").measured == bound
    )
    failure = ET.fromstring(render_junit([grade])).find(".//testcase[@name='failover_time']/failure")
    assert f"measured {bound}" in failure.get("message")
    assert f"&gt; {check.measured:.2f} s" in render_summary([grade])
    eu = next(o for o in run_moments(record).outages if o.region == "eu-west-1")
    assert eu.lower_bound and eu.value_seconds == check.measured
    page = write_run(record, grade, tmp_path).html.read_text()
    assert f"eu-west-1 from t+{eu.window.start_seconds:.2f} s to t+" in page
    assert f"not recovered: &gt; {check.measured:.2f} s" in page


def test_an_unknown_check_names_the_missing_evidence_in_every_output() -> None:
    record, grade = _graded((10.0, 13.5), (10.0, 12.0))
    # eu-west-1 stops sampling during the fault: its canary evidence has a gap.
    record = dataclasses.replace(
        record,
        samples=tuple(s for s in record.samples if not (s.region == "eu-west-1" and 11 < s.at_seconds < 20)),
    )
    scenario_grade = scoring.grade(record, _scenario_of(grade, record))
    check = next(c for c in scenario_grade.checks if c.target == "failover_time")
    assert check.verdict is Verdict.UNKNOWN and check.missing
    missing = check.missing[0]
    assert (
        missing
        in next(
            c for c in build_run_view(record, scenario_grade).checks if c.target == "failover_time"
        ).missing
    )
    error = ET.fromstring(render_junit([scenario_grade])).find(".//testcase[@name='failover_time']/error")
    assert missing.split(":")[0] in error.get("message")
    assert measures.canary_run(record).problem  # the chart draws no outage either
    assert run_moments(record).outages == ()


def _scenario_of(grade: scoring.Grade, record: RunRecord) -> Scenario:
    targets = tuple(
        Target(c.target, c.measure, c.limit, c.unit, c.comparison, c.critical, None, c.description, c.source)
        for c in grade.checks
    )
    return Scenario(
        name=record.scenario,
        path="scenarios/aeon-nova.yaml",
        targets=targets,
        experiments=(ExperimentRef(record.experiment_path, targets=tuple(t.name for t in targets)),),
    )
