"""The run page's active-active section shows what grading graded: the per-pair figures of
harness.convergence_measures and the P(visible | t) curve."""

from __future__ import annotations

from harness.model import Event, Grade, Verdict
from harness.report import build_run_view
from harness.report._html import render_run_html
from tests.truth.test_convergence_measures import agreed_digests, propagation, record, stopped


def test_the_run_page_shows_each_pair_and_the_visibility_curve() -> None:
    samples = [propagation("a->b", 4.0 + i * 0.04, 0.010 + i * 0.001) for i in range(100)]
    samples += [propagation("b->a", 4.0 + i * 0.04, 0.020) for i in range(99)]
    samples += [propagation("b->a", 7.9, 3.0, ok=False)]
    end = stopped()
    end = Event(end.at_seconds, end.kind, end.source, {**end.detail, "stale_reads": {"a->b": 12}})
    rec = record([*agreed_digests(8), end], samples)
    view = build_run_view(rec, Grade("r", "s", "t", Verdict.UNKNOWN, 0.0, ()))
    assert view.propagation is not None
    rows = {r.pair: r for r in view.propagation.rows}
    assert rows["a->b"].p50 == "60.0 ms" and rows["a->b"].p99 == "109.0 ms" and rows["a->b"].not_seen == "0"
    assert rows["b->a"].p99 == "> 3000.0 ms" and rows["b->a"].maximum == "> 3000.0 ms"
    assert rows["b->a"].not_seen == "1"
    assert rows["a->b"].stale_reads == "12" and rows["b->a"].stale_reads == "—"
    assert "<svg" in view.propagation.chart_svg and "P(visible | t)" in view.propagation.chart_svg
    assert not any(e.kind == "convergence.digest" for e in view.events)
    labels = {f.label: f.value for f in view.propagation.figures}
    assert labels["Convergence after the heal"] == "100 ms"
    assert labels["Writes discarded by last-write-wins"] == "unknown"  # no final state: never a silent 0
    html = render_run_html(view)
    assert "Propagation between regions" in html and "109.0 ms" in html


def test_a_run_without_the_probe_has_no_propagation_section() -> None:
    view = build_run_view(record([], [], with_started=False), Grade("r", "s", "t", Verdict.UNKNOWN, 0.0, ()))
    assert view.propagation is None
    assert "Propagation between regions" not in render_run_html(view)
