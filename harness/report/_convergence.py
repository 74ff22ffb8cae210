"""The active-active section of a run page: visibility latency per region pair (the table) and the
share of writes visible within t (P(visible | t), probabilistically bounded staleness), both from
`harness.convergence_measures.pair_stats`, the figures grading graded."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup

from harness import convergence_measures as cm
from harness import measures
from harness.model import Event, RunRecord
from harness.report import _charts
from harness.report._format import quantity_text

# The probe's bulk evidence: in the record for grading, too many to list on the page.
BULK_EVENTS = ("convergence.register_write", "convergence.digest")


@dataclass(frozen=True, slots=True)
class PairRow:
    pair: str
    writes: str
    p50: str
    p95: str
    p99: str
    maximum: str
    not_seen: str  # writes not seen in time (their figures are lower bounds)
    stale_reads: str  # reads sent after a write's acknowledgement that did not show it


@dataclass(frozen=True, slots=True)
class Figure:
    label: str
    value: str
    note: str  # the evidence, or why the figure is missing


@dataclass(frozen=True, slots=True)
class PropagationView:
    rows: tuple[PairRow, ...]
    chart_svg: Markup
    caption: str
    # Convergence, last-write-wins losses and violations, lost writes: shown whether or not the
    # scenario targets them (the data loss last-write-wins causes by design is visible either way).
    figures: tuple[Figure, ...] = ()


FIGURES = (
    ("Convergence after the heal", "convergence_seconds"),
    ("Writes discarded by last-write-wins", "lww_discarded_writes_count"),
    ("Last-write-wins violations", "lww_violations_count"),
    ("Acknowledged writes lost", "lost_writes_count"),
)


def _figures(record: RunRecord) -> tuple[Figure, ...]:
    shown = []
    for label, name in FIGURES:
        found = measures.measure(record, name)
        if found is None:
            continue
        value = (
            "unknown"
            if found.value is None
            else quantity_text(found.value, found.unit, lower_bound=found.lower_bound)
        )
        shown.append(Figure(label, value, found.evidence))
    return tuple(shown)


def is_bulk(event: Event) -> bool:
    return event.kind in BULK_EVENTS


def _ms(seconds: float, censored: bool = False) -> str:
    return f"{'> ' if censored else ''}{seconds * 1000:.1f} ms"


def propagation_view(record: RunRecord) -> PropagationView | None:
    """None when the run has no convergence probe."""
    found = cm.evidence(record)
    if found is None:
        return None
    if isinstance(found, str):
        return PropagationView((), Markup(""), f"No data: {found}.", _figures(record))
    stats = cm.pair_stats(record, found.pairs)
    stopped = [e for e in record.events if e.kind == "convergence.stopped"]
    stale = stopped[-1].detail.get("stale_reads") if stopped else None
    stale = stale if isinstance(stale, dict) else {}
    rows = []
    for pair, s in stats.items():
        if s is None:
            rows.append(PairRow(pair, "0", "—", "—", "—", "—", "no reading in the window", "—"))
            continue
        late = s.not_seen > 0
        rows.append(
            PairRow(
                pair,
                f"{s.writes:,}",
                _ms(s.p50, late and s.p50 >= min(v for v, seen in s.values if not seen)),
                _ms(s.p95, late and s.p95 >= min(v for v, seen in s.values if not seen)),
                _ms(s.p99, s.censored),
                _ms(s.maximum, late),
                f"{s.not_seen:,}" if s.not_seen else "0",
                f"{stale[pair]:,}" if isinstance(stale.get(pair), int) else "—",
            )
        )
    _, _, window = cm.propagation_window(record)
    bulk = sum(1 for e in record.events if is_bulk(e))
    caption = (
        f"Share of writes visible in the other region at most t after their acknowledgement, per region "
        f"pair ({window}). Resolution: one poll ({found.poll_seconds * 1000:.0f} ms) plus a read's round "
        f"trip; a write not seen in time counts as not visible. {bulk:,} register-write and digest events "
        "are in the run record, not listed below."
    )
    return PropagationView(tuple(rows), visibility_chart(stats), caption, _figures(record))


def visibility_chart(stats: dict[str, cm.PairStats | None]) -> Markup:
    """P(visible | t): per pair, a step curve of the share of writes seen within t."""
    drawn = {p: s for p, s in stats.items() if s is not None and s.writes}
    if not drawn:
        return Markup("")
    matplotlib, Figure = _charts._matplotlib()  # loaded when a run page draws, not on import
    with matplotlib.rc_context(_charts._RC):
        figure = Figure(figsize=(9, 3.2))
        axes = figure.subplots()
        seen_values = [v * 1000 for s in drawn.values() for v, ok in s.values if ok and v > 0]
        # Fast pairs (milliseconds) beside a cut one (seconds): a log axis keeps both readable.
        logarithmic = bool(seen_values) and max(seen_values) > 20 * min(seen_values)
        start = min(seen_values) if logarithmic else 0.0
        for index, (pair, s) in enumerate(sorted(drawn.items())):
            times = [start]
            shares = [0.0]
            seen = 0
            for value, ok in s.values:
                if ok:
                    seen += 1
                    times.append(max(start, value * 1000))
                    shares.append(seen / s.writes)
            style = {**_charts._style(index), "marker": None}
            axes.step(times, shares, where="post", label=_charts._plain(pair), **style)
        for level in (0.5, 0.95, 0.99):
            axes.axhline(level, color="#999999", linewidth=0.6, linestyle=":")
        axes.set_ylim(0, 1.02)
        if logarithmic:
            axes.set_xscale("log")
        else:
            axes.set_xlim(left=0)
        axes.set_xlabel(
            "t: milliseconds after the write was acknowledged" + (" (log scale)" if logarithmic else "")
        )
        axes.set_ylabel("P(visible | t)")
        axes.set_title("Writes visible in the other region within t")
        _charts._legend_below(figure, axes)
        return _charts._svg(figure)
