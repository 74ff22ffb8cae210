"""Charts as inline SVG, drawn by matplotlib (Agg, no pyplot state, text kept as SVG text).

Each function returns SVG markup, or "" when there is nothing to draw. Series differ by marker
and line style as well as colour, and every marked moment has a legend entry in words.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import matplotlib
import numpy as np
from markupsafe import Markup
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from harness.model import RunRecord, Verdict

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_LINESTYLES = ("-", "--", "-.", ":")
_RC = {
    "svg.fonttype": "none",  # text stays text: smaller, faster, selectable
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.frameon": False,
}
_DETECTION_KINDS = ("sentinel.+odown", "sentinel.+sdown")
_PROMOTION_KINDS = ("sentinel.+switch-master", "sentinel.+promoted-slave")
_MAX_BINS = 240


@dataclass(frozen=True, slots=True)
class Moments:
    """The marked moments of a run, in seconds since its start (None when absent)."""

    fault_start: float | None
    fault_end: float | None
    outage_start: float | None
    outage_end: float | None
    detected: float | None
    detected_kind: str
    promoted: float | None
    promoted_kind: str


def run_moments(record: RunRecord) -> Moments:
    """Fault window, canary outage window, and Sentinel detection and promotion of a run."""
    fault_start = min((f.applied_at_seconds for f in record.faults), default=None)
    undone = [f.undone_at_seconds for f in record.faults if f.undone_at_seconds is not None]
    fault_end = max(undone) if undone and len(undone) == len(record.faults) else None
    canary = sorted((s for s in record.samples if s.probe == "canary"), key=lambda s: s.at_seconds)
    after = [s for s in canary if fault_start is None or s.at_seconds >= fault_start]
    failures = [s.at_seconds for s in after if not s.ok]
    outage_start = outage_end = None
    if failures:
        outage_start = failures[0]
        outage_end = next((s.at_seconds for s in after if s.ok and s.at_seconds > failures[-1]), None)
    detected = _first_event(record, _DETECTION_KINDS)
    promoted = _first_event(record, _PROMOTION_KINDS)
    return Moments(
        fault_start=fault_start,
        fault_end=fault_end,
        outage_start=outage_start,
        outage_end=outage_end,
        detected=detected[0] if detected else None,
        detected_kind=detected[1] if detected else "",
        promoted=promoted[0] if promoted else None,
        promoted_kind=promoted[1] if promoted else "",
    )


def _first_event(record: RunRecord, kinds: Sequence[str]) -> tuple[float, str] | None:
    for kind in kinds:
        times = [e.at_seconds for e in record.events if e.kind == kind]
        if times:
            return min(times), kind
    return None


def timeline_chart(record: RunRecord, moments: Moments) -> Markup:
    """Canary success ratio and median latency per region over the run, with the fault marked."""
    by_region: dict[str, list[tuple[float, bool, float | None]]] = defaultdict(list)
    for s in record.samples:
        if s.probe == "canary":
            by_region[s.region or "(no region)"].append((s.at_seconds, s.ok, s.latency_seconds))
    if not by_region:
        return Markup("")
    times = [t for points in by_region.values() for t, _, _ in points]
    start, end = min(times), max(times)
    bin_seconds = max((end - start) / _MAX_BINS, 0.1)
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(9, 4.6))
        success_axes, latency_axes = figure.subplots(2, 1, sharex=True)
        for index, (region, points) in enumerate(sorted(by_region.items())):
            at = np.array([p[0] for p in points])
            ok = np.array([p[1] for p in points], dtype=float)
            latency = np.array([np.nan if p[2] is None or not p[1] else p[2] for p in points])
            bins = np.floor((at - start) / bin_seconds).astype(int)
            centres, success, median_ms = _binned(bins, ok, latency, start, bin_seconds)
            style = _style(index)
            success_axes.plot(centres, success * 100, label=_plain(region), **style)
            latency_axes.plot(centres, median_ms * 1000, label=_plain(region), **style)
        success_axes.set_ylabel("canary success (%)")
        success_axes.set_ylim(-5, 105)
        latency_axes.set_ylabel("median latency (ms)")
        latency_axes.set_xlabel("seconds since run start")
        for axes in (success_axes, latency_axes):
            _mark_moments(axes, moments, label=axes is success_axes)
        success_axes.set_title("Canary success and latency per region")
        _legend_below(figure, success_axes, latency_axes)
        return _svg(figure)


def _binned(
    bins: np.ndarray, ok: np.ndarray, latency: np.ndarray, start: float, bin_seconds: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per occupied bin: centre time, success ratio, median latency of successful requests."""
    order = np.argsort(bins, kind="stable")
    bins, ok, latency = bins[order], ok[order], latency[order]
    occupied, first = np.unique(bins, return_index=True)
    success = np.add.reduceat(ok, first) / np.diff(np.append(first, len(bins)))
    medians = np.array(
        [
            np.nanmedian(chunk) if not np.isnan(chunk).all() else np.nan
            for chunk in np.split(latency, first[1:])
        ]
    )
    return start + (occupied + 0.5) * bin_seconds, success, medians


def lag_chart(record: RunRecord, moments: Moments, limit_seconds: float | None) -> Markup:
    """Replication lag samples per region over the run, against the limit."""
    by_region: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in record.samples:
        if s.probe == "replication_lag" and s.value is not None and math.isfinite(s.value):
            by_region[s.region or "(no region)"].append((s.at_seconds, s.value))
    if not by_region:
        return Markup("")
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(9, 3.2))
        axes = figure.subplots()
        for index, (region, points) in enumerate(sorted(by_region.items())):
            points.sort()
            axes.plot([p[0] for p in points], [p[1] for p in points], label=_plain(region), **_style(index))
        if limit_seconds is not None:
            axes.axhline(limit_seconds, color="#D55E00", linestyle="--", linewidth=1.5, label="limit")
        axes.set_ylabel("replication lag (s)")
        axes.set_xlabel("seconds since run start")
        axes.set_ylim(bottom=0)
        axes.set_title("Replication lag")
        _mark_moments(axes, moments, label=True)
        _legend_below(figure, axes)
        return _svg(figure)


def trend_chart(
    started: Sequence[datetime | None],
    scores: Sequence[float],
    verdicts: Sequence[Verdict],
    series: Sequence[tuple[str, Sequence[float | None], float | None, Sequence[bool]]],
) -> Markup:
    """A system's score and key measurements per run; regressions marked.

    ``series`` holds (label, values, limit, regressed flags), one axes each.
    """
    if not scores:
        return Markup("")
    x: Sequence[object] = started if all(s is not None for s in started) else range(1, len(scores) + 1)
    rows = 1 + len(series)
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(9, 1.3 + 1.6 * rows))
        axes_list = np.atleast_1d(figure.subplots(rows, 1, sharex=True))
        score_axes = axes_list[0]
        score_axes.plot(x, scores, color="#999999", linewidth=0.8, zorder=1)
        for verdict, marker, colour in (
            (Verdict.PASS, "o", "#009E73"),
            (Verdict.FAIL, "X", "#D55E00"),
            (Verdict.UNKNOWN, "d", "#777777"),
        ):
            chosen = [i for i, v in enumerate(verdicts) if v is verdict]
            if chosen:
                score_axes.scatter(
                    [x[i] for i in chosen],
                    [scores[i] for i in chosen],
                    marker=marker,
                    color=colour,
                    s=18 if len(scores) <= 100 else 6,
                    zorder=2,
                    label=verdict.value,
                )
        score_axes.set_ylim(-5, 105)
        score_axes.set_ylabel("score")
        score_axes.set_title("Score and key measurements per run")
        regression_labelled = False
        for axes, (label, values, limit, regressed) in zip(axes_list[1:], series, strict=True):
            points = [(x[i], v) for i, v in enumerate(values) if v is not None]
            if points:
                axes.plot(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    color="#0072B2",
                    marker="." if len(points) <= 100 else None,
                    linewidth=1,
                    label=label,
                )
            else:
                axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center", va="center")
            if limit is not None:
                axes.axhline(limit, color="#D55E00", linestyle="--", linewidth=1.2, label="limit")
            flagged = [i for i, r in enumerate(regressed) if r and values[i] is not None]
            if flagged:
                axes.scatter(
                    [x[i] for i in flagged],
                    [values[i] for i in flagged],
                    marker="^",
                    s=90,
                    facecolors="none",
                    edgecolors="#000000",
                    linewidths=1.5,
                    zorder=3,
                    label=None if regression_labelled else "regression",
                )
                regression_labelled = True
            axes.set_ylabel(label)
            axes.set_ylim(bottom=0)
        axes_list[-1].set_xlabel("run start (UTC)" if x is started else "run number")
        if x is started:
            locator = AutoDateLocator()
            axes_list[-1].xaxis.set_major_locator(locator)
            axes_list[-1].xaxis.set_major_formatter(ConciseDateFormatter(locator))
        _legend_below(figure, *axes_list)
        return _svg(figure)


def _plain(text: str) -> str:
    """Data as literal chart text: no mathtext, and not hidden from the legend by a leading '_'."""
    text = text.replace("$", r"\$")
    return f" {text}" if text.startswith("_") else text


def _style(index: int) -> dict[str, object]:
    return {
        "color": _COLOURS[index % len(_COLOURS)],
        "marker": _MARKERS[index % len(_MARKERS)],
        "linestyle": _LINESTYLES[index % len(_LINESTYLES)],
        "markersize": 3.5,
        "linewidth": 1.3,
    }


def _mark_moments(axes, moments: Moments, *, label: bool) -> None:
    """Shade the fault and outage windows and draw detection and promotion lines."""

    def named(text: str) -> str | None:
        return text if label else None

    if moments.fault_start is not None:
        end = moments.fault_end if moments.fault_end is not None else axes.get_xlim()[1]
        axes.axvspan(
            moments.fault_start,
            end,
            facecolor=(0.6, 0.6, 0.6, 0.15),
            edgecolor=(0.4, 0.4, 0.4, 0.5),
            hatch="//",
            linewidth=0,
            label=named("fault"),
        )
    if moments.outage_start is not None:
        end = moments.outage_end if moments.outage_end is not None else axes.get_xlim()[1]
        axes.axvspan(
            moments.outage_start,
            end,
            facecolor=(0.90, 0.62, 0.0, 0.2),
            edgecolor=(0.80, 0.45, 0.0, 0.6),
            hatch="\\\\",
            linewidth=0,
            label=named("failover window (canary)"),
        )
    if moments.detected is not None:
        axes.axvline(
            moments.detected,
            color="#000000",
            linestyle="--",
            linewidth=1.2,
            label=named(_plain(f"detected ({moments.detected_kind})")),
        )
    if moments.promoted is not None:
        axes.axvline(
            moments.promoted,
            color="#CC79A7",
            linestyle="-.",
            linewidth=1.5,
            label=named(_plain(f"promoted ({moments.promoted_kind})")),
        )


def _legend_below(figure: Figure, *axes_list) -> None:
    handles, labels, seen = [], [], set()
    for axes in axes_list:
        for handle, label in zip(*axes.get_legend_handles_labels(), strict=True):
            if label not in seen:
                seen.add(label)
                handles.append(handle)
                labels.append(label)
    # Fixed margins in inches: tight_layout would cost a third of a 1,000-run page's budget.
    columns = 5
    rows = math.ceil(len(labels) / columns)
    width, height = figure.get_size_inches()
    bottom = 0.55 + 0.2 * rows
    figure.subplots_adjust(
        left=0.8 / width, right=1 - 0.15 / width, top=1 - 0.35 / height, bottom=bottom / height, hspace=0.2
    )
    if handles:
        figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), columns))


def _svg(figure: Figure) -> Markup:
    buffer = io.StringIO()
    FigureCanvasSVG(figure).print_svg(buffer, metadata=dict.fromkeys(("Creator", "Date", "Format", "Type")))
    text = buffer.getvalue()
    # Inline in HTML: drop the XML declaration and DOCTYPE that precede <svg>.
    return Markup(text[text.index("<svg") :])
