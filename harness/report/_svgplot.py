"""A small SVG plotter for the report's trend charts: stacked panels sharing one x axis.

Written directly as SVG text, without matplotlib: a cold `harness report` would otherwise spend
most of its time loading matplotlib and its fonts (about 1 s) to draw lines and markers. Text
stays SVG text (sans-serif), like the matplotlib charts (``svg.fonttype: none``).

Pure functions of their arguments; every string that comes from data is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape

WIDTH = 900.0  # the page scales it (figure.chart svg { width: 100% })
PANEL_HEIGHT = 150.0
LEFT, RIGHT, TOP = 80.0, 20.0, 34.0
GAP = 14.0  # between panels
AXIS_BELOW = 34.0  # tick labels of the shared x axis
LEGEND_ROW = 20.0
FONT = 'font-family="DejaVu Sans, Arial, Helvetica, sans-serif"'


@dataclass(frozen=True, slots=True)
class Markers:
    """One set of points drawn with one marker shape, and its legend entry ("" for none)."""

    shape: str  # circle | cross | diamond | caret | triangle
    points: tuple[tuple[float, float], ...]  # (x, y) in data units; x as given to Plot
    colour: str
    size: float = 4.5  # across, in px
    filled: bool = True
    label: str = ""


@dataclass(frozen=True, slots=True)
class Panel:
    """One panel: a grey line through its values, marker sets, an optional dashed limit."""

    ylabel: str
    line: tuple[tuple[float, float], ...]
    markers: tuple[Markers, ...] = ()
    limit: float | None = None
    limit_colour: str = "#D55E00"
    limit_label: str = "limit"
    empty_text: str = "no data"


@dataclass(frozen=True, slots=True)
class Plot:
    """Stacked panels over one x axis: x is seconds since the epoch (dates) or run numbers."""

    title: str
    panels: tuple[Panel, ...]
    x_range: tuple[float, float]
    dates: bool
    legend: tuple[tuple[str, str, str, bool], ...] = field(default=())  # (label, shape, colour, filled)


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """At most about `count` + 1 round tick values covering [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high) or high <= low:
        high = low + 1.0
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step + 1e-9) * step
    ticks = [round(first, 10)]
    while ticks[-1] < high - step * 1e-6:  # the last tick at or above `high`: nothing is cut off
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def tick_text(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.3g}"


_DAY = 86400.0
# (step in seconds, strftime) from fine to coarse; months and years are stepped by calendar.
_DATE_STEPS = (
    (3600.0, "%H:%M"),
    (6 * 3600.0, "%m-%d %H:%M"),
    (_DAY, "%Y-%m-%d"),
    (7 * _DAY, "%Y-%m-%d"),
)


def date_ticks(low: float, high: float, count: int = 7) -> list[tuple[float, str]]:
    """Round date ticks (UTC) across [low, high], about `count` of them, with their labels."""
    span = max(high - low, 1.0)
    for step, form in _DATE_STEPS:
        if span / step <= count:
            first = math.ceil(low / step) * step
            return [(t, datetime.fromtimestamp(t, UTC).strftime(form)) for t in _frange(first, high, step)]
    start = datetime.fromtimestamp(low, UTC)
    months = next(m for m in (1, 2, 3, 6, 12, 24, 60, 120) if span / (m * 30.44 * _DAY) <= count)
    index = start.year * 12 + start.month - 1
    index += (-index) % months  # first month on the step
    ticks = []
    while True:
        moment = datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
        if moment.timestamp() > high:
            return ticks
        if moment.timestamp() >= low:
            ticks.append((moment.timestamp(), moment.strftime("%Y" if months >= 12 else "%Y-%m")))
        index += months


def _frange(first: float, last: float, step: float) -> list[float]:
    count = int((last - first) // step) + 1
    return [first + i * step for i in range(max(0, count))]


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _poly(points: Sequence[tuple[float, float]], close: bool = True) -> str:
    text = "M" + "L".join(f"{_number(x)} {_number(y)}" for x, y in points)
    return text + "Z" if close else text


def _shape_path(shape: str, x: float, y: float, size: float) -> str:
    """Path data of one marker centred on (x, y)."""
    r = size / 2
    if shape == "circle":
        arc = f"a{_number(r)} {_number(r)} 0 1 0"
        return f"M{_number(x - r)} {_number(y)}{arc} {_number(2 * r)} 0{arc} {_number(-2 * r)} 0"
    if shape == "diamond":
        return _poly([(x, y - r), (x + r, y), (x, y + r), (x - r, y)])
    if shape == "cross":
        down = _poly([(x - r, y - r), (x + r, y + r)], close=False)
        return down + _poly([(x - r, y + r), (x + r, y - r)], close=False)
    if shape == "caret":  # caret up: the truth lies above
        return _poly([(x, y - r), (x + r, y + r * 0.2), (x - r, y + r * 0.2)])
    return _poly([(x, y - r), (x + r, y + r), (x - r, y + r)])  # triangle up


def _line(x1: float, y1: float, x2: float, y2: float, style: str = "") -> str:
    ends = f'x1="{_number(x1)}" y1="{_number(y1)}" x2="{_number(x2)}" y2="{_number(y2)}"'
    return f"<line {ends}{' ' + style if style else ''}/>"


def _marker_element(shape: str, d: str, colour: str, filled: bool) -> str:
    if shape == "cross":
        return f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.8"/>'
    if filled:
        return f'<path d="{d}" fill="{colour}" stroke="none"/>'
    return f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.5"/>'


def legend_columns(labels: Sequence[str], width: float = WIDTH) -> int:
    longest = max((len(label) for label in labels), default=0)
    return max(1, min(5, int(width // (40 + 7.5 * longest))))


def render(plot: Plot) -> str:
    """The plot as one <svg> element."""
    labels = [entry[0] for entry in plot.legend]
    columns = legend_columns(labels)
    rows = math.ceil(len(labels) / columns) if labels else 0
    panels_height = len(plot.panels) * PANEL_HEIGHT + (len(plot.panels) - 1) * GAP
    height = TOP + panels_height + AXIS_BELOW + rows * LEGEND_ROW + 8
    plot_width = WIDTH - LEFT - RIGHT
    x_low, x_high = plot.x_range
    if x_high <= x_low:
        x_low, x_high = x_low - 1.0, x_high + 1.0
    pad = (x_high - x_low) * 0.02  # markers at the ends stay inside the frame
    x_low, x_high = x_low - pad, x_high + pad

    def sx(x: float) -> float:
        return LEFT + (x - x_low) / (x_high - x_low) * plot_width

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_number(WIDTH)}" height="{_number(height)}" '
        f'viewBox="0 0 {_number(WIDTH)} {_number(height)}" role="img" {FONT} font-size="12">',
        f"<title>{escape(plot.title)}</title>",
        f'<text x="{_number(LEFT + plot_width / 2)}" y="20" text-anchor="middle">{escape(plot.title)}</text>',
    ]
    if plot.dates:
        x_ticks = date_ticks(plot.x_range[0], plot.x_range[1])
    else:
        x_ticks = [(t, tick_text(t)) for t in nice_ticks(plot.x_range[0], plot.x_range[1], 8) if t >= 1]
    for index, panel in enumerate(plot.panels):
        top = TOP + index * (PANEL_HEIGHT + GAP)
        bottom = top + PANEL_HEIGHT
        values = [y for _, y in panel.line] + [y for m in panel.markers for _, y in m.points]
        if panel.limit is not None:
            values.append(panel.limit)
        y_ticks = nice_ticks(0.0, max(values, default=1.0) or 1.0)
        y_high = y_ticks[-1] if y_ticks[-1] > 0 else 1.0

        def sy(y: float, top: float = top, y_high: float = y_high) -> float:
            return top + PANEL_HEIGHT - (y / y_high) * PANEL_HEIGHT

        out.append('<g stroke="#d9d9d9" stroke-width="0.8">')
        for tick in y_ticks:
            y = sy(tick)
            out.append(_line(LEFT, y, LEFT + plot_width, y))
        for tick, _ in x_ticks:
            x = sx(tick)
            out.append(
                f'<line x1="{_number(x)}" y1="{_number(top)}" x2="{_number(x)}" y2="{_number(bottom)}"/>'
            )
        out.append("</g>")
        out.append(
            f'<path d="M{_number(LEFT)} {_number(top)}V{_number(bottom)}H{_number(LEFT + plot_width)}" '
            'fill="none" stroke="#333333" stroke-width="1"/>'
        )
        out.append('<g text-anchor="end" font-size="11">')
        for tick in y_ticks:
            out.append(f'<text x="{_number(LEFT - 6)}" y="{_number(sy(tick) + 4)}">{tick_text(tick)}</text>')
        out.append("</g>")
        middle = top + PANEL_HEIGHT / 2
        out.append(
            f'<text x="16" y="{_number(middle)}" text-anchor="middle" font-size="11" '
            f'transform="rotate(-90 16 {_number(middle)})">{escape(panel.ylabel)}</text>'
        )
        if not panel.line and not any(m.points for m in panel.markers):
            out.append(
                f'<text x="{_number(LEFT + plot_width / 2)}" y="{_number(middle)}" text-anchor="middle">'
                f"{escape(panel.empty_text)}</text>"
            )
        if len(panel.line) > 1:
            d = "M" + "L".join(f"{_number(sx(x))} {_number(sy(y))}" for x, y in panel.line)
            out.append(f'<path d="{d}" fill="none" stroke="#999999" stroke-width="1"/>')
        if panel.limit is not None:
            y = sy(panel.limit)
            dashed = f'stroke="{panel.limit_colour}" stroke-width="1.5" stroke-dasharray="6 4"'
            out.append(_line(LEFT, y, LEFT + plot_width, y, dashed))
        for markers in panel.markers:
            if markers.points:
                d = "".join(_shape_path(markers.shape, sx(x), sy(y), markers.size) for x, y in markers.points)
                out.append(_marker_element(markers.shape, d, markers.colour, markers.filled))
    axis_y = TOP + panels_height
    out.append('<g text-anchor="middle" font-size="11">')
    for tick, text in x_ticks:
        out.append(f'<text x="{_number(sx(tick))}" y="{_number(axis_y + 16)}">{escape(text)}</text>')
    out.append("</g>")
    legend_top = axis_y + AXIS_BELOW
    column_width = (WIDTH - LEFT) / columns
    for index, (label, shape, colour, filled) in enumerate(plot.legend):
        x = LEFT + (index % columns) * column_width
        y = legend_top + (index // columns) * LEGEND_ROW
        if shape == "dashed":
            out.append(_line(x, y, x + 22, y, f'stroke="{colour}" stroke-width="1.5" stroke-dasharray="6 4"'))
        else:
            out.append(_marker_element(shape, _shape_path(shape, x + 11, y, 8), colour, filled))
        out.append(f'<text x="{_number(x + 30)}" y="{_number(y + 4)}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def epoch_seconds(moment: datetime) -> float:
    """A datetime as seconds since the epoch (naive ones read as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(seconds=1)
