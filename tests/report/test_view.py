"""The run view model: formatted values, moments of the fault, what is missing said plainly."""

from __future__ import annotations

import dataclasses

import pytest
from report_records import REGIONS, make_grade, make_record, truth_pair

from harness import measures
from harness.model import Comparison, Event, FaultRecord, Verdict
from harness.report import build_run_view
from harness.report._charts import run_moments
from harness.report._format import margin_text, measured_text
from harness.units import format_quantity


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
    assert view.headline == (
        "Targets not proven: failover_time (missing: no failover_seconds measurement), "
        "replication_lag (no measurement: probe failed)."
    )
    figures = {f.label: f.value for f in view.figures}
    assert figures["Failover"] == "n/a" and figures["RPO (data-loss window)"] == "350 ms"
    assert not view.timeline.svg and view.timeline.caption == "No data: no canary samples."


def test_missing_measurements_and_load_are_no_data() -> None:
    record = make_record("no-samples", with_samples=False)
    grade = make_grade(record)
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


def test_moments_come_from_the_measures_grading_uses(passing_run) -> None:
    record = passing_run[0]
    moments = run_moments(record)
    assert (moments.fault_start, moments.fault_end) == (20.0, 40.0)
    # One outage per region, exactly the ones harness.measures grades failover from.
    assert moments.outages == tuple(measures.region_outages(measures.canary_run(record)))
    assert sorted(o.region for o in moments.outages) == sorted(REGIONS)
    graded = measures.measure(record, "failover_seconds")
    assert max(o.value_seconds for o in moments.outages) == graded.value
    # Detection where the graded figure puts it; promotion at the event grading counted.
    detection = measures.measure(record, "detection_seconds").value
    assert moments.detected == pytest.approx(20.0 + detection)
    assert "sentinel.+odown" in moments.detected_kind
    assert moments.promoted == measures.promotion_event(record).at_seconds
    assert moments.promoted_kind == "sentinel.+switch-master"


def test_caption_states_each_graded_outage(passing_run) -> None:
    view = build_run_view(*passing_run)
    for outage in run_moments(passing_run[0]).outages:
        window = outage.window
        assert (
            f"{outage.region} from t+{window.start_seconds:.2f} s to t+{window.end_seconds:.2f} s: "
            f"{outage.value_seconds:.2f} s"
        ) in view.timeline.caption


def test_a_window_still_open_when_the_fault_was_undone_is_drawn_as_a_lower_bound(failing_run) -> None:
    moments = run_moments(failing_run[0])
    assert moments.outages and all(o.lower_bound for o in moments.outages)
    caption = build_run_view(*failing_run).timeline.caption
    assert "from t+20.00 s, not recovered: > 20.00 s" in caption


def test_a_load_is_not_the_fault_the_charts_time_from(passing_run) -> None:
    record = passing_run[0]
    load = FaultRecord("load-1", "harness.actions.load.start_load", "api", 5.0, 50.0, True, "locust running")
    moments = run_moments(dataclasses.replace(record, faults=(load, *record.faults)))
    assert moments.fault_start == 20.0


def test_sentinel_events_before_the_fault_draw_no_detection_line(passing_run) -> None:
    """A +switch-master from an earlier failover (before this run's fault) is not this run's
    promotion: the chart draws only what the measures counted."""
    record = passing_run[0]
    switched = {"old_primary": "127.0.0.1:6380", "new_primary": "127.0.0.1:6379", "exact": True}
    stale = (Event(2.0, "sentinel.+odown", "s1", {}), Event(3.0, "sentinel.+switch-master", "s1", switched))
    record = dataclasses.replace(
        record,
        events=stale + tuple(e for e in record.events if not e.kind.startswith("sentinel.")),
    )
    moments = run_moments(record)
    assert moments.detected is None and moments.promoted is None


def test_events_shown_are_this_runs_only(passing_run) -> None:
    record, grade = passing_run
    earlier = Event(-12.0, "sentinel.+switch-master", "sentinel-1", {"run": "the one before"})
    record = dataclasses.replace(record, events=(earlier, *record.events))
    view = build_run_view(record, grade)
    assert all(not e.at.startswith("t+-") for e in view.events)
    assert len(view.events) == len(passing_run[0].events)


def test_check_view_shows_source_description_bound_witnesses_and_missing() -> None:
    record, grade = truth_pair()
    checks = {c.target: c for c in build_run_view(record, grade).checks}
    failover = checks["failover_time"]
    assert failover.measured == "> 39.90 s"
    assert failover.margin == "at least 9.90 s over"
    assert failover.censored.startswith("lower bound")
    assert failover.description == "Redis primary failover completes within the limit"
    assert failover.source == "seeds/aeon-nova.md §4.2 Failover"
    errors = checks["error_budget"]
    assert errors.witnesses == ("canary: 12.5%", "prometheus: 0%")
    assert errors.missing == ("agreement of the two witnesses within 0.5 points",)
    rto = checks["recovery_time"]
    assert rto.measured == "n/a" and rto.censored == ""
    assert rto.missing == (
        "canary samples of eu-west-1 from t+20.00 s to t+40.00 s",
        "canary.started event of ap-south-1",
    )


def test_headline_names_censored_failures_and_missing_evidence() -> None:
    view = build_run_view(*truth_pair())
    assert view.headline == (
        "1 of 3 targets missed: failover_time > 39.90 s (target ≤ 30.00 s, at least 9.90 s over); "
        "unknown: error_budget (missing: agreement of the two witnesses within 0.5 points), "
        "recovery_time (missing: canary samples of eu-west-1 from t+20.00 s to t+40.00 s; "
        "canary.started event of ap-south-1)."
    )


@pytest.mark.parametrize(
    ("comparison", "measured", "margin"),
    [
        (Comparison.AT_MOST, 45.0, "at least 15.00 s over"),
        (Comparison.AT_MOST, 20.0, "not known (lower bound)"),
        (Comparison.AT_LEAST, 45.0, "at least 15.00 s inside"),
        (Comparison.AT_LEAST, 20.0, "not known (lower bound)"),
    ],
)
def test_margin_of_a_lower_bound_is_only_stated_where_it_is_certain(
    comparison: Comparison, measured: float, margin: str
) -> None:
    check = dataclasses.replace(truth_pair()[1].checks[0], comparison=comparison, measured=measured)
    assert margin_text(check) == margin
    assert measured_text(check) == f"> {measured:.2f} s"


def test_key_figures_are_the_graded_values() -> None:
    record, grade = truth_pair()
    figures = {f.label: f for f in build_run_view(record, grade).figures}
    assert figures["Failover"].value == "> 39.90 s"
    assert figures["Failover"].note == "fail, target ≤ 30.00 s"
    assert figures["RTO (recovery time)"].value == "n/a"
    assert figures["RTO (recovery time)"].note.startswith("missing: canary samples of eu-west-1")
    # Not graded: derived by harness.measures from the record, as grading would.
    derived = measures.measure(record, "detection_seconds")
    assert figures["Detection"].value == format_quantity(derived.value, "seconds")


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
