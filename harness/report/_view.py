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

from harness.model import Check, Grade, RunRecord, Verdict
from harness.report import _charts
from harness.report._format import (
    COMPARISON_SYMBOLS,
    VERDICT_ICONS,
    VERDICT_WORDS,
    margin_text,
    one_line,
    score_text,
    verdict_counts,
)
from harness.report.regressions import REGRESSION_MEASURES, Regression, find_regressions
from harness.units import format_quantity

_KEY_FIGURES = (
    ("failover_seconds", "Failover"),
    ("detection_seconds", "Detection"),
    ("promotion_seconds", "Promotion"),
    ("rto_seconds", "RTO (recovery time)"),
    ("rpo_seconds", "RPO (data-loss window)"),
    ("lost_writes_count", "Lost acknowledged writes"),
    ("replication_lag_seconds", "Replication lag (worst)"),
)
_TREND_MEASURES = (
    ("failover_seconds", "failover (s)"),
    ("replication_lag_seconds", "replication lag (s)"),
    ("rto_seconds", "RTO (s)"),
)
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
    verdict: VerdictView
    measured: str
    target_text: str  # "≤ 30.00 s"
    margin: str
    importance: str  # "critical · weight 3"
    evidence: str


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


@dataclass(frozen=True, slots=True)
class HistoryRow:
    run_id: str
    href: str  # link to the run page, "" when it was not rendered here
    started_at: str
    title: str
    verdict: VerdictView
    score: str
    failed: str  # names of failed and unknown checks
    measures: tuple[str, ...]  # formatted values of the trend measures
    regression: str  # what regressed at this run, "" when nothing


@dataclass(frozen=True, slots=True)
class SystemView:
    scenario: str
    latest: HistoryRow
    streak: str  # "failing since 2025-01-03 12:00 UTC (4 runs)"
    pass_rate: str
    trend: Chart
    measure_names: tuple[str, ...]
    regressions: tuple[str, ...]
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
    measure_names: tuple[str, ...]
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
        figures=_key_figures(record),
        timeline=Chart(
            "Fault window",
            _charts.timeline_chart(record, moments),
            _timeline_caption(moments) if _has_probe(record, "canary") else "No data: no canary samples.",
        ),
        lag=Chart(
            "Replication lag",
            _charts.lag_chart(record, moments, lag_check.limit if lag_check else None),
            (
                "Client-side replication lag per region; limit "
                f"{format_quantity(lag_check.limit, 'seconds')}."
                if lag_check
                else "Client-side replication lag per region; no lag target graded."
            )
            if _has_probe(record, "replication_lag")
            else "No data: no replication lag samples.",
        ),
        load=_load_figures(record),
        faults=tuple(_fault_view(f) for f in record.faults),
        events=tuple(
            EventView(_seconds(e.at_seconds), e.kind, e.source, _json(e.detail) if e.detail else "")
            for e in sorted(record.events, key=lambda e: e.at_seconds)
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
    )


def verdict_view(verdict: Verdict) -> VerdictView:
    return VerdictView(verdict.value, VERDICT_WORDS[verdict], VERDICT_ICONS[verdict])


def _check_view(check: Check) -> CheckView:
    importance = f"critical · weight {check.weight}" if check.critical else f"weight {check.weight}"
    return CheckView(
        target=check.target,
        measure=check.measure,
        verdict=verdict_view(check.verdict),
        measured=format_quantity(check.measured, check.unit),
        target_text=f"{COMPARISON_SYMBOLS[check.comparison]} {format_quantity(check.limit, check.unit)}",
        margin=margin_text(check),
        importance=importance,
        evidence=check.evidence,
    )


def _headline(grade: Grade) -> str:
    """'All 5 targets met.', or which targets were missed and by how much, or what is unproven."""
    failed = [c for c in grade.checks if c.verdict is Verdict.FAIL]
    unknown = [c for c in grade.checks if c.verdict is Verdict.UNKNOWN]
    if grade.verdict is Verdict.PASS:
        return f"All {len(grade.checks)} targets met."
    parts = [
        f"{c.target} {format_quantity(c.measured, c.unit)} "
        f"(target {COMPARISON_SYMBOLS[c.comparison]} {format_quantity(c.limit, c.unit)}, {margin_text(c)})"
        for c in failed
    ]
    if unknown:
        parts.append("not measured: " + ", ".join(c.target for c in unknown))
    if not parts:
        parts = [one_line(r) for r in grade.reasons] or ["no checks were graded"]
    if failed:
        return f"{len(failed)} of {len(grade.checks)} targets missed: " + "; ".join(parts) + "."
    return "Targets not proven: " + "; ".join(parts) + "."


def _key_figures(record: RunRecord) -> tuple[Fact, ...]:
    figures = []
    for name, label in _KEY_FIGURES:
        measurement = record.measurement(name)
        if measurement is None:
            figures.append(Fact(label, "no data", "not measured in this run"))
        else:
            figures.append(
                Fact(label, format_quantity(measurement.value, measurement.unit), measurement.evidence)
            )
    return tuple(figures)


def _load_figures(record: RunRecord) -> tuple[Fact, ...]:
    figures = [
        Fact(m.name.removeprefix("load_"), format_quantity(m.value, m.unit), m.evidence)
        for m in record.measurements
        if m.name.startswith("load_")
    ]
    load = record.environment.get("load")
    if isinstance(load, Mapping):
        figures += [Fact(key, value, "configuration") for key, value in _flatten(load)]
    elif load is not None:
        figures.append(Fact("load", _scalar(load), "configuration"))
    return tuple(figures)


def _fault_view(fault) -> FaultView:
    effect = {True: Verdict.PASS, False: Verdict.FAIL, None: Verdict.UNKNOWN}[fault.effect_proven]
    words = {True: "proven", False: "not proven", None: "not checked"}[fault.effect_proven]
    return FaultView(
        action=fault.action,
        target=fault.target,
        applied=_seconds(fault.applied_at_seconds),
        undone=_seconds(fault.undone_at_seconds) if fault.undone_at_seconds is not None else "not undone",
        effect=VerdictView(effect.value, words, VERDICT_ICONS[effect]),
        evidence=fault.effect_evidence,
    )


def _timeline_caption(moments: _charts.Moments) -> str:
    parts = ["Canary success ratio and median latency per region."]
    if moments.fault_start is not None:
        end = _seconds(moments.fault_end) if moments.fault_end is not None else "not undone"
        parts.append(f"Fault (hatched grey) from {_seconds(moments.fault_start)} to {end}.")
    if moments.outage_start is not None:
        end = _seconds(moments.outage_end) if moments.outage_end is not None else "end of run (not recovered)"
        parts.append(f"Failover window (hatched orange) from {_seconds(moments.outage_start)} to {end}.")
    if moments.detected is not None:
        parts.append(f"Detected at {_seconds(moments.detected)} (dashed line, {moments.detected_kind}).")
    if moments.promoted is not None:
        parts.append(f"Promoted at {_seconds(moments.promoted)} (dash-dot line, {moments.promoted_kind}).")
    return " ".join(parts)


def _has_probe(record: RunRecord, probe: str) -> bool:
    return any(s.probe == probe for s in record.samples)


def _steady(held: bool | None) -> str:
    return {True: "held", False: "did not hold", None: "not evaluated"}[held]


def _seconds(value: float) -> str:
    return f"t+{value:.2f} s"


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
    """A system's page from its history, oldest first; `rendered` are run ids with a run page."""
    regressions = find_regressions(history)
    regressed: dict[tuple[str, str], Regression] = {(r.run_id, r.measure): r for r in regressions}
    rows = [_history_row(record, grade, rendered, regressed) for record, grade in history]
    series = []
    for measure, label in _TREND_MEASURES:
        values = [_value(record, measure) for record, _ in history]
        if measure in REGRESSION_MEASURES or any(v is not None for v in values):
            flags = [(record.run_id, measure) in regressed for record, _ in history]
            series.append((label, values, _latest_limit(history, measure), flags))
    trend = _charts.trend_chart(
        [parse_time(record.started_at) for record, _ in history],
        [grade.score for _, grade in history],
        [grade.verdict for _, grade in history],
        series,
    )
    record = history[-1][0]
    shown = rows[::-1][:MAX_HISTORY_ROWS]
    return SystemView(
        scenario=record.scenario,
        latest=rows[-1],
        streak=_streak(history),
        pass_rate=_pass_rate(history),
        trend=Chart(
            "Trend",
            trend,
            "Score per run (circle pass, cross fail, diamond unknown) and key measurements against their "
            "limits (dashed); an open triangle marks a regression.",
        ),
        measure_names=tuple(label for _, label in _TREND_MEASURES),
        regressions=tuple(_regression_text(r) for r in regressions),
        rows=tuple(shown),
        rows_note=(
            f"Latest {len(shown)} of {len(rows):,} runs; the chart shows all of them."
            if len(shown) < len(rows)
            else f"{len(rows):,} run{'s' if len(rows) != 1 else ''}."
        ),
    )


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
        measure_names=tuple(label for _, label in _TREND_MEASURES),
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
        measures=tuple(format_quantity(_value(record, m), "seconds") for m, _ in _TREND_MEASURES),
        regression="; ".join(
            _regression_text(regressed[(record.run_id, m)])
            for m in REGRESSION_MEASURES
            if (record.run_id, m) in regressed
        ),
    )


def _value(record: RunRecord, measure: str) -> float | None:
    measurement = record.measurement(measure)
    return measurement.value if measurement else None


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
    return (
        f"{regression.measure} regressed at run {regression.run_id}: median "
        f"{format_quantity(regression.recent_median, 'seconds')} over its last {regression.recent_runs} "
        f"runs vs {format_quantity(regression.baseline_median, 'seconds')} over the "
        f"{regression.baseline_runs} before "
        f"(Mann-Whitney p={regression.p_value:.2g})"
    )
