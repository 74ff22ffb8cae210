"""View models: what the pages show, as frozen dataclasses of formatted strings.

Templates only lay these out; every number is formatted here, every value from a record stays
plain text (the templates escape it). The only markup is chart SVG drawn by matplotlib.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from markupsafe import Markup

from harness import measures
from harness.model import Check, FaultRecord, Grade, RunRecord, Verdict
from harness.report import _charts, _convergence, _traffic
from harness.report._format import (
    VERDICT_ICONS,
    VERDICT_WORDS,
    margin_text,
    measured_text,
    missing_text,
    one_line,
    quantity_text,
    region_text,
    score_text,
    seconds_on_run_clock,
    target_symbol_text,
    unknown_reason,
    verdict_counts,
    witness_texts,
)
from harness.report.regressions import (
    REGRESSION_MEASURES,
    Regression,
    find_regressions,
    graded_point,
    graded_value,
)
from harness.units import format_quantity, unit_of_measure

_KEY_FIGURES = (
    ("failover_seconds", "Failover"),
    ("detection_seconds", "Detection"),
    ("promotion_seconds", "Promotion"),
    ("rto_seconds", "RTO (recovery time)"),
    ("rpo_seconds", "RPO (data-loss window)"),
    ("lost_writes_count", "Lost acknowledged writes"),
    ("replication_lag_seconds", "Replication lag (worst)"),
)
_MAX_TREND_SERIES = 4  # measures drawn per experiment's trend: each is an axes to draw
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|credential|api_?key|private", re.IGNORECASE)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
MAX_HISTORY_ROWS = 100


@dataclass(frozen=True, slots=True)
class VerdictView:
    css: str  # "pass" | "fail" | "unknown"
    word: str  # "PASS"
    icon: str


@dataclass(frozen=True, slots=True)
class CheckView:
    target: str
    measure: str
    description: str  # the target's description from the scenario
    source: str  # where the target's number comes from (the system's document, section)
    verdict: VerdictView
    measured: str  # "4.21 s", "> 27.00 s" when censored
    censored: str  # why the value is a lower bound, "" when it is not one
    target_text: str  # "≤ 30.00 s"
    margin: str
    importance: str  # "critical · weight 3"
    evidence: str
    witnesses: tuple[str, ...]  # "canary: 0%", "prometheus: 12.5%" where two sources measure
    missing: tuple[str, ...]  # the evidence an unknown check lacks


@dataclass(frozen=True, slots=True)
class Fact:
    label: str
    value: str
    note: str


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    svg: Markup  # matplotlib output; empty when there is nothing to draw
    caption: str  # what the chart shows, or why it is missing


@dataclass(frozen=True, slots=True)
class FaultView:
    action: str
    target: str
    applied: str
    undone: str
    effect: VerdictView
    evidence: str


@dataclass(frozen=True, slots=True)
class EventView:
    at: str
    kind: str
    source: str
    detail: str


@dataclass(frozen=True, slots=True)
class RunView:
    run_id: str
    scenario: str
    system_page: str  # file name of the system page inside systems/
    title: str
    experiment_path: str
    started_at: str
    duration: str
    status: str
    harness_version: str
    verdict: VerdictView
    score: str
    headline: str  # did it meet its targets, and if not by how much
    counts: str  # "4 passed, 1 failed, 1 unknown"
    reasons: tuple[str, ...]
    checks: tuple[CheckView, ...]
    figures: tuple[Fact, ...]
    timeline: Chart
    lag: Chart
    load: tuple[Fact, ...]
    faults: tuple[FaultView, ...]
    events: tuple[EventView, ...]
    steady_state: tuple[Fact, ...]
    activity_errors: tuple[str, ...]
    environment: tuple[Fact, ...]
    # Active-active runs: visibility per region pair and P(visible | t) (None without the probe).
    propagation: _convergence.PropagationView | None = None
    # Global balancer runs: traffic figures and the failover timeline (None without the traffic canary).
    traffic: _traffic.TrafficView | None = None


@dataclass(frozen=True, slots=True)
class HistoryRow:
    run_id: str
    href: str  # link to the run page, "" when it was not rendered here
    started_at: str
    title: str
    verdict: VerdictView
    score: str
    failed: str  # names of failed and unknown checks
    measured: str  # what each check measured: "failover_time 4.21 s · rpo > 2.00 s"
    regression: str  # what regressed at this run, "" when nothing


@dataclass(frozen=True, slots=True)
class ExperimentView:
    """One experiment's history on its system's page: its own trend, regressions and streak."""

    title: str
    path: str
    anchor: str  # in-page id
    latest: HistoryRow
    streak: str
    pass_rate: str
    trend: Chart
    regressions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SystemView:
    scenario: str
    latest: HistoryRow
    streak: str  # "failing since 2025-01-03 12:00 UTC (4 runs)"
    pass_rate: str
    experiments: tuple[ExperimentView, ...]  # a trend each: experiments measure different things
    rows: tuple[HistoryRow, ...]  # newest first, at most MAX_HISTORY_ROWS
    rows_note: str


@dataclass(frozen=True, slots=True)
class SystemLine:
    scenario: str
    system_page: str
    latest: HistoryRow
    streak: str
    runs: str


@dataclass(frozen=True, slots=True)
class IndexView:
    generated_at: str
    headline: str
    systems: tuple[SystemLine, ...]
    recent: tuple[HistoryRow, ...]


# ---------------------------------------------------------------- run page


def build_run_view(record: RunRecord, grade: Grade) -> RunView:
    """Everything the run page shows, formatted."""
    checks = tuple(_check_view(c) for c in grade.checks)
    moments = _charts.run_moments(record)
    lag_check = next((c for c in grade.checks if c.measure == "replication_lag_seconds"), None)
    counts = verdict_counts(grade)
    return RunView(
        run_id=record.run_id,
        scenario=record.scenario,
        system_page=system_page_name(record.scenario),
        title=record.experiment_title,
        experiment_path=record.experiment_path,
        started_at=_wall(record.started_at),
        duration=format_quantity(record.duration_seconds, "seconds"),
        status=record.status,
        harness_version=record.harness_version,
        verdict=verdict_view(grade.verdict),
        score=score_text(grade.score),
        headline=_headline(grade),
        counts=(
            f"{counts[Verdict.PASS]} passed, {counts[Verdict.FAIL]} failed, {counts[Verdict.UNKNOWN]} unknown"
        ),
        reasons=grade.reasons,
        checks=checks,
        figures=_key_figures(record, grade),
        timeline=Chart(
            "Fault window",
            _charts.timeline_chart(record, moments),
            _timeline_caption(moments) if _has_probe(record, "canary") else "No data: no canary samples.",
        ),
        lag=Chart(
            "Replication lag",
            _charts.lag_chart(record, moments, lag_check.limit if lag_check else None),
            _lag_caption(record, lag_check),
        ),
        load=_load_figures(record),
        faults=tuple(_fault_view(f) for f in record.faults),
        events=tuple(
            EventView(
                seconds_on_run_clock(e.at_seconds), e.kind, e.source, _json(e.detail) if e.detail else ""
            )
            for e in sorted(run_events(record), key=lambda e: e.at_seconds)
            if not _convergence.is_bulk(e)
        ),
        steady_state=(
            Fact("Before the fault", _steady(record.steady_state_before), ""),
            Fact("After the fault", _steady(record.steady_state_after), ""),
        ),
        activity_errors=record.activity_errors,
        environment=(
            Fact("harness", record.harness_version, ""),
            *(
                Fact(key, value, "")
                for key, value in _flatten(record.environment)
                if not key.startswith("load.") and key != "load"
            ),
        ),
        propagation=_convergence.propagation_view(record),
        traffic=_traffic.traffic_view(record, grade),
    )


def run_events(record: RunRecord) -> tuple:
    """The events of this run: on its clock, from its start on.

    A negative time is before the run began (a watcher's backlog, another run's announcement):
    not this run's, so neither its table nor its charts show it.
    """
    return tuple(e for e in record.events if e.at_seconds >= 0)


def verdict_view(verdict: Verdict) -> VerdictView:
    return VerdictView(verdict.value, VERDICT_WORDS[verdict], VERDICT_ICONS[verdict])


def _check_view(check: Check) -> CheckView:
    importance = f"critical · weight {check.weight}" if check.critical else f"weight {check.weight}"
    return CheckView(
        target=check.target,
        measure=check.measure,
        description=check.description,
        source=check.source,
        verdict=verdict_view(check.verdict),
        measured=measured_text(check),
        censored=(
            "lower bound: not recovered when the fault was undone or the run ended"
            if check.lower_bound and check.measured is not None
            else ""
        ),
        target_text=target_symbol_text(check),
        margin=margin_text(check),
        importance=importance,
        evidence=check.evidence,
        witnesses=witness_texts(check),
        missing=tuple(one_line(m) for m in check.missing if one_line(m)),
    )


def _headline(grade: Grade) -> str:
    """'All 5 targets met.', or which targets were missed and by how much, or what is unproven."""
    failed = [c for c in grade.checks if c.verdict is Verdict.FAIL]
    unknown = [c for c in grade.checks if c.verdict is Verdict.UNKNOWN]
    if grade.verdict is Verdict.PASS:
        return f"All {len(grade.checks)} targets met."
    parts = [
        f"{c.target} {measured_text(c)} (target {target_symbol_text(c)}, {margin_text(c)})" for c in failed
    ]
    if unknown:
        named = ", ".join(f"{c.target} ({unknown_reason(c)})" for c in unknown)
        parts.append(f"unknown: {named}" if failed else named)
    if not parts:
        parts = [one_line(r) for r in grade.reasons] or ["no checks were graded"]
    if failed:
        return f"{len(failed)} of {len(grade.checks)} targets missed: " + "; ".join(parts) + "."
    return "Targets not proven: " + "; ".join(parts) + "."


def _key_figures(record: RunRecord, grade: Grade) -> tuple[Fact, ...]:
    """The recovery figures: the graded value where a check graded the measure (so the page and
    the verdict agree), else the measure as harness.measures derives it from the record."""
    figures = []
    for name, label in _KEY_FIGURES:
        check = next((c for c in grade.checks if c.measure == name), None)
        if check is not None:
            figures.append(Fact(label, measured_text(check), _figure_note(check)))
            continue
        measurement = measures.measure(record, name)
        if measurement is None or measurement.value is None:
            note = measurement.evidence if measurement is not None and measurement.evidence else ""
            figures.append(Fact(label, "no data", note or "not measured in this run"))
        else:
            text = quantity_text(measurement.value, measurement.unit, lower_bound=measurement.lower_bound)
            figures.append(Fact(label, text, f"not graded · {measurement.evidence}".rstrip(" ·")))
    return tuple(figures)


def _figure_note(check: Check) -> str:
    if check.measured is None:
        return f"missing: {missing_text(check)}" if missing_text(check) else one_line(check.evidence)
    return f"{check.verdict.value}, target {target_symbol_text(check)}"


def _load_figures(record: RunRecord) -> tuple[Fact, ...]:
    figures = [
        Fact(
            m.name.removeprefix("load_"),
            quantity_text(m.value, m.unit, lower_bound=m.lower_bound),
            m.evidence,
        )
        for m in record.measurements
        if m.name.startswith("load_")
    ]
    load = record.environment.get("load")
    if isinstance(load, Mapping):
        figures += [Fact(key, value, "configuration") for key, value in _flatten(load)]
    elif load is not None:
        figures.append(Fact("load", _scalar(load), "configuration"))
    return tuple(figures)


def _fault_view(fault: FaultRecord) -> FaultView:
    effect = {True: Verdict.PASS, False: Verdict.FAIL, None: Verdict.UNKNOWN}[fault.effect_proven]
    words = {True: "proven", False: "not proven", None: "not checked"}[fault.effect_proven]
    return FaultView(
        action=fault.action,
        target=fault.target,
        applied=seconds_on_run_clock(fault.applied_at_seconds),
        undone=(
            seconds_on_run_clock(fault.undone_at_seconds)
            if fault.undone_at_seconds is not None
            else "not undone"
        ),
        effect=VerdictView(effect.value, words, VERDICT_ICONS[effect]),
        evidence=fault.effect_evidence,
    )


def _timeline_caption(moments: _charts.Moments) -> str:
    parts = ["Canary success ratio and median latency of successful requests per region."]
    if moments.fault_start is not None:
        end = seconds_on_run_clock(moments.fault_end) if moments.fault_end is not None else "not undone"
        parts.append(f"Fault (hatched grey) from {seconds_on_run_clock(moments.fault_start)} to {end}.")
    if moments.outages:
        spans = "; ".join(_outage_text(o) for o in moments.outages)
        parts.append(f"Outage per region as graded (shaded in the region's colour): {spans}.")
    elif moments.fault_start is not None and moments.outages_note:
        parts.append(f"No outage drawn: {moments.outages_note}.")
    if moments.detected is not None:
        parts.append(
            f"Detected at {seconds_on_run_clock(moments.detected)} (dashed line, {moments.detected_kind})."
        )
    if moments.promoted is not None:
        parts.append(
            f"Promoted at {seconds_on_run_clock(moments.promoted)} (dash-dot line, {moments.promoted_kind})."
        )
    return " ".join(parts)


def _outage_text(outage: measures.RegionOutage) -> str:
    """'eu-west-1 from t+20.00 s to t+24.21 s: 4.21 s', or 'eu-west-1 from t+20.00 s, not recovered:
    > 20.00 s' (the graded value, a lower bound)."""
    window = outage.window
    start = f"{region_text(outage.region)} from {seconds_on_run_clock(window.start_seconds)}"
    span = (
        f"{start} to {seconds_on_run_clock(window.end_seconds)}" if window.end_seconds is not None else start
    )
    if window.end_seconds is None or outage.lower_bound:
        span += ", not recovered"
    return f"{span}: {quantity_text(outage.value_seconds, 'seconds', lower_bound=outage.lower_bound)}"


def _lag_caption(record: RunRecord, lag_check: Check | None) -> str:
    if not (_has_probe(record, "replication_lag") or _has_probe(record, "replication_lag_exporter")):
        return "No data: no replication lag samples."
    parts = ["Replication lag per replica: marker lag (solid), exporter lag where recorded (dotted);"]
    parts.append("a hollow triangle is a marker not seen yet (a lower bound).")
    if lag_check is not None:
        parts.append(f"Graded: {measured_text(lag_check)} against {target_symbol_text(lag_check)}.")
    else:
        parts.append("No lag target graded.")
    return " ".join(parts)


def _has_probe(record: RunRecord, probe: str) -> bool:
    return any(s.probe == probe for s in record.samples)


def _steady(held: bool | None) -> str:
    return {True: "held", False: "did not hold", None: "not evaluated"}[held]


def _wall(iso: str) -> str:
    moment = parse_time(iso)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else iso


def parse_time(iso: str) -> datetime | None:
    """A UTC datetime from the record's ISO 8601 start, or None when it is not one."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested mapping as sorted (dotted key, text) pairs; secrets and URL passwords redacted."""
    pairs = []
    for key, value in sorted(data.items(), key=lambda kv: str(kv[0])):
        name = f"{prefix}{key}"
        if _SECRET_KEY.search(str(key)):
            pairs.append((name, "(redacted)"))
        elif isinstance(value, Mapping) and value:
            pairs += _flatten(value, f"{name}.")
        else:
            pairs.append((name, _scalar(value)))
    return pairs


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return _redact_url(value)
    return _redact_url(_json(value))


def _redact_url(text: str) -> str:
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if parts.password:
        netloc = f"{parts.username}:(redacted)@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return text


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def system_page_name(scenario: str) -> str:
    """File name of a system's page: the scenario with unsafe characters replaced."""
    return (_SAFE_NAME.sub("-", scenario).strip(".-") or "system") + ".html"


# ---------------------------------------------------------------- system and index pages


def build_system_view(
    history: Sequence[tuple[RunRecord, Grade]], rendered: frozenset[str] = frozenset()
) -> SystemView:
    """A system's page from its history, oldest first; `rendered` are run ids with a run page.

    Trends and regressions are per experiment: a partition and a failover measure different
    things, and one line through both would show neither.
    """
    groups = experiment_histories(history)
    regressed: dict[tuple[str, str], Regression] = {}
    experiments = []
    for key, runs in groups.items():
        regressions = find_regressions(runs)
        regressed.update({(r.run_id, r.measure): r for r in regressions})
        experiments.append(_experiment_view(key, runs, regressions, rendered))
    rows = [_history_row(record, grade, rendered, regressed) for record, grade in history]
    record = history[-1][0]
    shown = rows[::-1][:MAX_HISTORY_ROWS]
    return SystemView(
        scenario=record.scenario,
        latest=rows[-1],
        streak=_streak(history),
        pass_rate=_pass_rate(history),
        experiments=tuple(sorted(experiments, key=lambda e: (e.title, e.path))),
        rows=tuple(shown),
        rows_note=(
            f"Latest {len(shown)} of {len(rows):,} runs; the charts show all of them."
            if len(shown) < len(rows)
            else f"{len(rows):,} run{'s' if len(rows) != 1 else ''}."
        ),
    )


def experiment_key(record: RunRecord) -> str:
    """Which experiment a run ran: its file's name, so moving the file keeps its history."""
    return record.experiment_path.replace("\\", "/").rsplit("/", 1)[-1] or record.experiment_title


def experiment_histories(
    history: Sequence[tuple[RunRecord, Grade]],
) -> dict[str, list[tuple[RunRecord, Grade]]]:
    """The history split by experiment, each oldest first as given."""
    groups: dict[str, list[tuple[RunRecord, Grade]]] = {}
    for record, grade in history:
        groups.setdefault(experiment_key(record), []).append((record, grade))
    return groups


def _experiment_view(
    key: str,
    history: Sequence[tuple[RunRecord, Grade]],
    regressions: Sequence[Regression],
    rendered: frozenset[str],
) -> ExperimentView:
    regressed = {(r.run_id, r.measure) for r in regressions}
    series = []
    for measure, unit in _trend_measures(history):
        points = [graded_point(record, grade, measure) for record, grade in history]
        series.append(
            _charts.TrendSeries(
                label=f"{measure} ({_UNIT_LABELS.get(unit, unit)})",
                values=tuple(value for value, _ in points),
                verdicts=tuple(_check_verdict(grade, measure) for _, grade in history),
                lower_bounds=tuple(bound for _, bound in points),
                limit=_latest_limit(history, measure),
                regressed=tuple((record.run_id, measure) in regressed for record, _ in history),
                scale=_UNIT_SCALES.get(unit, 1.0),
            )
        )
    record, grade = history[-1]
    trend = _charts.trend_chart(
        [parse_time(r.started_at) for r, _ in history], [g.score for _, g in history], series
    )
    return ExperimentView(
        title=record.experiment_title,
        path=record.experiment_path,
        anchor="experiment-" + (_SAFE_NAME.sub("-", key).strip(".-") or "unnamed"),
        latest=_history_row(record, grade, rendered, {}),
        streak=_streak(history),
        pass_rate=_pass_rate(history),
        trend=Chart(
            "Trend",
            trend,
            "What each check measured per run against its limit (dashed), marked by the check's "
            "verdict (circle pass, cross fail, diamond unknown); a caret marks a lower bound (not "
            "recovered), an open triangle a regression. Without a graded measure, the run's score.",
        ),
        regressions=tuple(_regression_text(r) for r in regressions),
    )


# Trend axes in a readable unit; values stay in base units everywhere else.
_UNIT_LABELS = {"seconds": "s", "ratio": "%", "bytes": "MB", "count": "count", "rps": "req/s"}
_UNIT_SCALES = {"ratio": 100.0, "bytes": 1e-6}


def _check_verdict(grade: Grade, measure: str) -> Verdict | None:
    return next((c.verdict for c in grade.checks if c.measure == measure), None)


def _trend_measures(history: Sequence[tuple[RunRecord, Grade]]) -> list[tuple[str, str]]:
    """(measure, unit) of what the experiment's checks graded, most recently graded first, at most
    _MAX_TREND_SERIES; a history without checks falls back to the regression measures it has."""
    found: dict[str, str] = {}
    for _, grade in reversed(history):
        for check in grade.checks:
            found.setdefault(check.measure, check.unit)
    if not found:
        for measure in REGRESSION_MEASURES:
            if any(graded_value(r, g, measure) is not None for r, g in history):
                found[measure] = unit_of_measure(measure) or ""
    return list(found.items())[:_MAX_TREND_SERIES]


def build_index_view(
    histories: Mapping[str, Sequence[tuple[RunRecord, Grade]]], rendered: frozenset[str] = frozenset()
) -> IndexView:
    """The overview: every system's latest grade and streak, and the most recent runs."""
    systems = []
    everything = []
    for scenario in sorted(histories):
        history = histories[scenario]
        if not history:
            continue
        record, grade = history[-1]
        systems.append(
            SystemLine(
                scenario=scenario,
                system_page=system_page_name(scenario),
                latest=_history_row(record, grade, rendered, {}),
                streak=_streak(history),
                runs=f"{len(history):,}",
            )
        )
        everything += history[-20:]
    everything.sort(key=lambda pair: _sort_key(pair[0]), reverse=True)
    meeting = sum(1 for s in systems if s.latest.verdict.css == "pass")
    headline = (
        f"{meeting} of {len(systems)} system{'s' if len(systems) != 1 else ''} met their resilience targets "
        "in their latest run."
        if systems
        else "No runs yet."
    )
    return IndexView(
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        headline=headline,
        systems=tuple(systems),
        recent=tuple(_history_row(r, g, rendered, {}) for r, g in everything[:20]),
    )


def _sort_key(record: RunRecord) -> tuple[datetime, str]:
    return (parse_time(record.started_at) or datetime.min.replace(tzinfo=UTC), record.run_id)


def sort_history(history: Sequence[tuple[RunRecord, Grade]]) -> list[tuple[RunRecord, Grade]]:
    """Oldest first, by start time then run id; a run id seen twice keeps its last pair."""
    unique = {record.run_id: (record, grade) for record, grade in history}
    return sorted(unique.values(), key=lambda pair: _sort_key(pair[0]))


def _history_row(
    record: RunRecord, grade: Grade, rendered: frozenset[str], regressed: Mapping[tuple[str, str], Regression]
) -> HistoryRow:
    not_passed = [f"{c.target} ({c.verdict.value})" for c in grade.checks if c.verdict is not Verdict.PASS]
    return HistoryRow(
        run_id=record.run_id,
        href=f"{quote(record.run_id)}/index.html" if record.run_id in rendered else "",
        started_at=_wall(record.started_at),
        title=record.experiment_title,
        verdict=verdict_view(grade.verdict),
        score=score_text(grade.score),
        failed=", ".join(not_passed) if not_passed else ("; ".join(grade.reasons) if grade.reasons else ""),
        measured=" · ".join(f"{c.target} {measured_text(c)}" for c in grade.checks),
        regression="; ".join(
            _regression_text(regression)
            for (run_id, _), regression in regressed.items()
            if run_id == record.run_id
        ),
    )


def _latest_limit(history: Sequence[tuple[RunRecord, Grade]], measure: str) -> float | None:
    for _, grade in reversed(history):
        for check in grade.checks:
            if check.measure == measure:
                return check.limit
    return None


def _streak(history: Sequence[tuple[RunRecord, Grade]]) -> str:
    latest = history[-1][1].verdict
    count = 0
    for _, grade in reversed(history):
        if grade.verdict is not latest:
            break
        count += 1
    since = _wall(history[-count][0].started_at)
    word = {Verdict.PASS: "passing", Verdict.FAIL: "failing", Verdict.UNKNOWN: "unknown"}[latest]
    if count == len(history):
        return f"{word} in all {count} run{'s' if count != 1 else ''} since {since}"
    return f"{word} since {since} ({count} run{'s' if count != 1 else ''})"


def _pass_rate(history: Sequence[tuple[RunRecord, Grade]]) -> str:
    passed = sum(1 for _, grade in history if grade.verdict is Verdict.PASS)
    return f"{passed:,} of {len(history):,} runs passed ({100 * passed / len(history):.0f}%)"


def _regression_text(regression: Regression) -> str:
    unit = unit_of_measure(regression.measure) or ""
    return (
        f"{regression.measure} regressed at run {regression.run_id}: median "
        f"{format_quantity(regression.recent_median, unit)} over its last {regression.recent_runs} "
        f"runs vs {format_quantity(regression.baseline_median, unit)} over the "
        f"{regression.baseline_runs} before "
        f"(Mann-Whitney p={regression.p_value:.2g})"
    )
