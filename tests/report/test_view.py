"""The run view model: formatted values, moments of the fault, what is missing said plainly."""

from __future__ import annotations

import dataclasses

from report_records import make_grade, make_record

from harness.model import Verdict
from harness.report import build_run_view
from harness.report._charts import run_moments


def test_passing_view_leads_with_the_verdict(passing_run) -> None:
    view = build_run_view(*passing_run)
    assert (view.verdict.word, view.verdict.icon, view.verdict.css) == ("PASS", "✔", "pass")
    assert view.score == "100.0/100"
    assert view.headline == "All 3 targets met."
    first = view.checks[0]
    assert (first.measured, first.target_text, first.margin) == ("4.21 s", "≤ 30.00 s", "25.79 s inside")
    assert first.importance == "critical · weight 3"


def test_failing_view_says_by_how_much(failing_run) -> None:
    view = build_run_view(*failing_run)
    assert view.headline == (
        "2 of 3 targets missed: failover_time 45.20 s (target ≤ 30.00 s, 15.20 s over); "
        "replication_lag 7.50 s (target ≤ 5.00 s, 2.50 s over)."
    )
    assert view.counts == "1 passed, 2 failed, 0 unknown"


def test_unknown_view_names_what_was_not_measured(unknown_run) -> None:
    view = build_run_view(*unknown_run)
    assert view.verdict.word == "UNKNOWN"
    assert view.headline == "Targets not proven: not measured: failover_time, replication_lag."
    figures = {f.label: f.value for f in view.figures}
    assert figures["Failover"] == "n/a" and figures["RPO (data-loss window)"] == "350 ms"
    assert not view.timeline.svg and view.timeline.caption == "No data: no canary samples."


def test_missing_measurements_and_load_are_no_data(passing_run) -> None:
    record, grade = passing_run
    record = dataclasses.replace(
        record,
        measurements=tuple(m for m in record.measurements if not m.name.startswith(("load_", "rto"))),
        environment={"python": "3.11.9"},
    )
    view = build_run_view(record, grade)
    assert view.load == ()
    assert {f.label: f.value for f in view.figures}["RTO (recovery time)"] == "no data"


def test_verdict_from_reasons_alone_is_explained(passing_run) -> None:
    record, grade = passing_run
    grade = dataclasses.replace(grade, verdict=Verdict.UNKNOWN, checks=(), reasons=("steady state failed",))
    assert build_run_view(record, grade).headline == "Targets not proven: steady state failed."


def test_moments_come_from_faults_canaries_and_sentinel_events(passing_run) -> None:
    moments = run_moments(passing_run[0])
    assert (moments.fault_start, moments.fault_end) == (20.0, 40.0)
    assert moments.outage_start == 20.0
    assert 24.2 <= moments.outage_end <= 24.35
    assert moments.detected_kind == "sentinel.+odown" and abs(moments.detected - 21.1) < 1e-9
    assert moments.promoted_kind == "sentinel.+switch-master"


def test_environment_is_flattened_with_secrets_redacted() -> None:
    record = make_record("env", with_samples=False)
    record = dataclasses.replace(
        record, environment={**record.environment, "redis": {"version": "7.0", "password": "s3cret"}}
    )
    environment = {f.label: f.value for f in build_run_view(record, make_grade(record)).environment}
    assert environment["redis.version"] == "7.0"
    assert environment["redis.password"] == "(redacted)"
    assert environment["postgres_dsn"] == "postgresql://harness:(redacted)@127.0.0.1:5432/harness"
    assert "load.users" not in environment  # shown under Load instead
    load = {f.label: f.value for f in build_run_view(record, make_grade(record)).load}
    assert load["users"] == "20" and load["p99_latency_seconds"] == "45 ms"


def test_chart_text_from_records_is_literal(passing_run) -> None:
    record, grade = passing_run
    samples = tuple(dataclasses.replace(s, region="$\\frac{a}{b}$ <b>") for s in record.samples)
    view = build_run_view(dataclasses.replace(record, samples=samples), grade)
    assert "$\\frac{a}{b}$ &lt;b&gt;" in view.timeline.svg
    assert "<b>" not in view.timeline.svg
