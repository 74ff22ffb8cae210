"""Charts as inline SVG: run charts drawn by matplotlib (Agg, no pyplot state, text kept as SVG
text), trend charts written directly (harness.report._svgplot).

matplotlib and numpy are imported by the functions that draw with them, not with this module:
a system page (trends only) never loads them, so a cold `harness report` of a stored history
does not pay their second of imports and font loading.

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
from typing import TYPE_CHECKING

from markupsafe import Markup

from harness import measures
from harness.model import RunRecord, Verdict
from harness.report import _svgplot
from harness.report._format import VERDICT_COLOURS, one_line, region_text

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

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
    # A fixed title position: "auto" measures every tick label below it first (a fifth of a chart).
    "axes.titley": 1.0,
}
_LIMIT_COLOUR = "#D55E00"  # a target's limit, on every chart
_MARK_COLOUR = "#000000"  # markers of lower bounds and regressions, detection lines
_MAX_BINS = 240


@dataclass(frozen=True, slots=True)
class Moments:
    """The marked moments of a run, in seconds since its start (None when absent), as graded."""

    fault_start: float | None
    fault_end: float | None
    outages: tuple[measures.RegionOutage, ...]  # per region, the outage grading timed
    outages_note: str  # why no outage is drawn, when none is ("" otherwise)
    detected: float | None
    detected_kind: str  # what marked it, in words
    promoted: float | None
    promoted_kind: str


def run_moments(record: RunRecord) -> Moments:
    """The fault, the outage windows, detection and promotion, all from harness.measures.

    The charts draw what grading graded: the same first disruptive fault, the same outage per
    region (grading's rule for where a window begins and ends), the detection grading timed and
    the promotion event it counted; never a rule of the report's own.
    """
    fault = measures.first_fault(record)
    fault_start = fault.applied_at_seconds if fault is not None else None
    run = measures.canary_run(record)
    if isinstance(run, measures.CanaryRun):
        outages = tuple(measures.region_outages(run)) if not run.problem else ()
        note = run.problem or ("" if outages else "no canary request failed after the fault")
    else:
        outages, note = (), run or "no canary samples"
    detection = measures.measure(record, "detection_seconds")
    # detection_seconds is fault applied → the detection event, so this is the event's own time.
    detected = (
        fault_start + detection.value
        if fault_start is not None and detection is not None and detection.value is not None
        else None
    )
    promotion = measures.promotion_event(record, fault) if fault is not None else None
    return Moments(
        fault_start=fault_start,
        fault_end=fault.undone_at_seconds if fault is not None else None,
        outages=outages,
        outages_note=note,
        detected=detected,
        detected_kind=one_line(detection.evidence) if detected is not None and detection else "",
        promoted=promotion.at_seconds if promotion is not None else None,
        promoted_kind=promotion.kind if promotion is not None else "",
    )


def timeline_chart(record: RunRecord, moments: Moments) -> Markup:
    """Canary success ratio and median latency per region over the run, with the fault marked."""
    by_region: dict[str, list[tuple[float, bool, float | None]]] = defaultdict(list)
    for s in record.samples:
        if s.probe == "canary":
            by_region[s.region].append((s.at_seconds, s.ok, s.latency_seconds))
    if not by_region:
        return Markup("")
    times = [t for points in by_region.values() for t, _, _ in points]
    start, end = min(times), max(times)
    bin_seconds = max((end - start) / _MAX_BINS, 0.1)
    regions = sorted(by_region)
    matplotlib, Figure = _matplotlib()
    import numpy as np

    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(9, 4.6))
        success_axes, latency_axes = figure.subplots(2, 1, sharex=True)
        for index, region in enumerate(regions):
            points = by_region[region]
            at = np.array([p[0] for p in points])
            ok = np.array([p[1] for p in points], dtype=float)
            latency = np.array([np.nan if p[2] is None or not p[1] else p[2] for p in points])
            bins = np.floor((at - start) / bin_seconds).astype(int)
            centres, success, median_ms = _binned(bins, ok, latency, start, bin_seconds)
            style = _style(index)
            success_axes.plot(centres, success * 100, label=_region_label(region), **style)
            latency_axes.plot(centres, median_ms * 1000, label=_region_label(region), **style)
        success_axes.set_ylabel("canary success (%)")
        success_axes.set_ylim(-5, 105)
        latency_axes.set_ylabel("median latency (ms)")
        latency_axes.set_xlabel("seconds since run start")
        for axes in (success_axes, latency_axes):
            _mark_moments(axes, moments, label=axes is success_axes)
        _mark_outages(success_axes, moments.outages, regions, end)
        success_axes.set_title("Canary success and latency per region")
        _legend_below(figure, success_axes, latency_axes)
        return _svg(figure)


def _mark_outages(axes, outages: Sequence[measures.RegionOutage], regions: Sequence[str], end: float) -> None:
    """Shade each region's graded outage in its colour; one still open runs to `end`."""
    from matplotlib.colors import to_rgba

    for outage in outages:
        window = outage.window
        index = regions.index(outage.region) if outage.region in regions else len(regions)
        colour = _COLOURS[index % len(_COLOURS)]
        axes.axvspan(
            window.start_seconds,
            window.end_seconds if window.end_seconds is not None else end,
            facecolor=to_rgba(colour, 0.18),
            edgecolor=to_rgba(colour, 0.7),
            hatch="\\\\",
            linewidth=0,
            label=f"outage {_region_label(outage.region)}" + (" (lower bound)" if outage.lower_bound else ""),
        )


def _region_label(region: str) -> str:
    return _plain(region_text(region))


def _binned(
    bins: np.ndarray, ok: np.ndarray, latency: np.ndarray, start: float, bin_seconds: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per occupied bin: centre time, success ratio, median latency of successful requests."""
    import numpy as np

    order = np.argsort(bins, kind="stable")
    bins, ok, latency = bins[order], ok[order], latency[order]
    occupied, first = np.unique(bins, return_index=True)
    success = np.add.reduceat(ok, first) / np.diff(np.append(first, len(bins)))
    medians = np.array(
        [
            measures.percentile(chunk[~np.isnan(chunk)], 0.5) if not np.isnan(chunk).all() else np.nan
            for chunk in np.split(latency, first[1:])
        ]
    )
    return start + (occupied + 0.5) * bin_seconds, success, medians


def lag_chart(record: RunRecord, moments: Moments, limit_seconds: float | None) -> Markup:
    """Replication lag per replica over the run against the limit: marker lag (solid), the
    exporter's lag where recorded (dotted, same colour), markers not seen yet (a lower bound)."""
    marker: dict[str, list[tuple[float, float]]] = defaultdict(list)
    exporter: dict[str, list[tuple[float, float]]] = defaultdict(list)
    bounds: list[tuple[float, float]] = []
    for s in record.samples:
        if s.value is None or not math.isfinite(s.value):
            continue
        if s.probe == "replication_lag":
            (marker[s.region] if s.ok else bounds).append((s.at_seconds, s.value))
        elif s.probe == "replication_lag_exporter":
            exporter[s.region].append((s.at_seconds, s.value))
    if not (marker or exporter or bounds):
        return Markup("")
    matplotlib, Figure = _matplotlib()
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(9, 3.2))
        axes = figure.subplots()
        for index, region in enumerate(sorted(set(marker) | set(exporter))):
            style = _style(index)
            for points, linestyle, suffix in (
                (marker[region], "-", ""),
                (exporter[region], ":", " (exporter)"),
            ):
                if points:
                    points.sort()
                    axes.plot(
                        [p[0] for p in points],
                        [p[1] for p in points],
                        **{**style, "linestyle": linestyle},
                        label=_region_label(region) + suffix,
                    )
        if bounds:
            axes.scatter(
                [p[0] for p in bounds],
                [p[1] for p in bounds],
                marker="^",
                s=40,
                facecolors="none",
                edgecolors=_MARK_COLOUR,
                zorder=3,
                label="marker not seen yet (lower bound)",
            )
        if limit_seconds is not None:
            axes.axhline(limit_seconds, color=_LIMIT_COLOUR, linestyle="--", linewidth=1.5, label="limit")
        axes.set_ylabel("replication lag (s)")
        axes.set_xlabel("seconds since run start")
        axes.set_ylim(bottom=0)
        axes.set_title("Replication lag")
        _mark_moments(axes, moments, label=True)
        _legend_below(figure, axes)
        return _svg(figure)


@dataclass(frozen=True, slots=True)
class TrendSeries:
    """One graded measure across an experiment's runs: values in base units, None where not
    measured, each with the verdict its check got (None where no check graded it)."""

    label: str
    values: tuple[float | None, ...]
    verdicts: tuple[Verdict | None, ...]
    lower_bounds: tuple[bool, ...]  # the value is a lower bound (censored)
    limit: float | None
    regressed: tuple[bool, ...]  # a regression was found at this run
    scale: float = 1.0  # drawn as value * scale (ratios as %, bytes as MB)


_VERDICT_SHAPES = {Verdict.PASS: "circle", Verdict.FAIL: "cross", Verdict.UNKNOWN: "diamond"}


def trend_chart(
    started: Sequence[datetime | None], scores: Sequence[float], series: Sequence[TrendSeries]
) -> Markup:
    """An experiment's graded measurements per run, one panel each, every point marked with its
    check's verdict; lower bounds, limits and regressions marked. Without any graded measure,
    the run's score instead.

    Drawn as SVG directly (harness.report._svgplot), not by matplotlib: the system pages are
    what `harness report` renders from a stored history, and loading matplotlib and its fonts
    would cost a cold process about a second before the first line is drawn.
    """
    if not scores:
        return Markup("")
    dates = all(s is not None for s in started)
    x = (
        [_svgplot.epoch_seconds(s) for s in started]
        if dates
        else [float(i) for i in range(1, len(scores) + 1)]
    )  # type: ignore[arg-type]
    if not series:
        series = [TrendSeries("score", tuple(scores), (None,) * len(scores), (False,) * len(scores), None,
                              (False,) * len(scores))]  # fmt: skip
    dense = len(scores) > 100
    legend: dict[str, tuple[str, str, str, bool]] = {}
    panels = []
    for line in series:
        shown = [(x[i], v * line.scale) for i, v in enumerate(line.values) if v is not None]
        markers = []
        for verdict, shape in _VERDICT_SHAPES.items():
            chosen = tuple(shown[k] for k, (i, _) in enumerate(_indexed(line)) if line.verdicts[i] is verdict)
            if chosen:
                colour = VERDICT_COLOURS[verdict]
                markers.append(_svgplot.Markers(shape, chosen, colour, 3.5 if dense else 4.5))
                legend.setdefault(verdict.value, (verdict.value, shape, colour, True))
        censored = tuple(shown[k] for k, (i, _) in enumerate(_indexed(line)) if line.lower_bounds[i])
        if censored:
            markers.append(_svgplot.Markers("caret", censored, _MARK_COLOUR, 7.0))
            legend.setdefault("lower", ("lower bound (not recovered)", "caret", _MARK_COLOUR, True))
        limit = line.limit * line.scale if line.limit is not None else None
        if limit is not None:
            legend.setdefault("limit", ("limit", "dashed", _LIMIT_COLOUR, False))
        flagged = tuple(shown[k] for k, (i, _) in enumerate(_indexed(line)) if line.regressed[i])
        if flagged:
            markers.append(_svgplot.Markers("triangle", flagged, _MARK_COLOUR, 10.0, filled=False))
            legend.setdefault("regression", ("regression", "triangle", _MARK_COLOUR, False))
        panels.append(
            _svgplot.Panel(one_line(line.label), tuple(shown), tuple(markers), limit, _LIMIT_COLOUR)
        )
    by = "run start (UTC)" if dates else "run number"
    plot = _svgplot.Plot(
        title=f"What each check measured per run, against its limit, by {by}",
        panels=tuple(panels),
        x_range=(min(x), max(x)),
        dates=dates,
        legend=tuple(legend.values()),
    )
    return Markup(_svgplot.render(plot))


def _indexed(line: TrendSeries) -> list[tuple[int, float]]:
    """(run index, value) of the runs where the series has a value, in order."""
    return [(i, v) for i, v in enumerate(line.values) if v is not None]


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
    if moments.detected is not None:
        axes.axvline(
            moments.detected,
            color=_MARK_COLOUR,
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
    width, height = figure.get_size_inches()
    # As many columns as the longest label lets fit across the figure (about 0.07 in a character).
    longest = max((len(label) for label in labels), default=0)
    columns = max(1, min(5, int(width // (0.55 + 0.07 * longest))))
    rows = math.ceil(len(labels) / columns)
    bottom = 0.55 + 0.2 * rows
    figure.subplots_adjust(
        left=0.8 / width, right=1 - 0.15 / width, top=1 - 0.35 / height, bottom=bottom / height, hspace=0.2
    )
    if handles:
        figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), columns))


def _matplotlib():  # -> (the matplotlib module, its Figure class)
    """matplotlib and its Figure class, imported on first use (run charts only)."""
    import matplotlib
    from matplotlib.figure import Figure

    return matplotlib, Figure


def _svg(figure: Figure) -> Markup:
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    buffer = io.StringIO()
    FigureCanvasSVG(figure).print_svg(buffer, metadata=dict.fromkeys(("Creator", "Date", "Format", "Type")))
    text = buffer.getvalue()
    # Inline in HTML: drop the XML declaration and DOCTYPE that precede <svg>.
    return Markup(text[text.index("<svg") :])
