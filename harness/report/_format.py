"""Words, symbols and colours for verdicts and checks, shared by every output.

The HTML pages, the charts, JUnit, the Markdown summary and the terminal line all say a check
the same way because they all call these: a censored value reads "> 27.00 s" everywhere, an
unknown check names the evidence it lacks everywhere, a verdict has one colour everywhere.
"""

from __future__ import annotations

import re

from harness.model import Check, Comparison, Grade, Verdict
from harness.units import format_quantity

VERDICT_WORDS = {Verdict.PASS: "PASS", Verdict.FAIL: "FAIL", Verdict.UNKNOWN: "UNKNOWN"}
VERDICT_ICONS = {Verdict.PASS: "✔", Verdict.FAIL: "✘", Verdict.UNKNOWN: "?"}
# Dark enough for text on white (contrast ≥ 4.5:1) and told apart by the charts' markers too.
VERDICT_COLOURS = {Verdict.PASS: "#1b7f4b", Verdict.FAIL: "#b3261e", Verdict.UNKNOWN: "#5f6368"}
COMPARISON_WORDS = {Comparison.AT_MOST: "at most", Comparison.AT_LEAST: "at least"}
COMPARISON_SYMBOLS = {Comparison.AT_MOST: "≤", Comparison.AT_LEAST: "≥"}
LOWER_BOUND_PREFIX = "> "  # a censored value: the system had not recovered, the truth is larger

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_WHITESPACE = re.compile(r"\s+")


def one_line(text: str) -> str:
    """The text on one line: control characters dropped, runs of whitespace made one space."""
    return _WHITESPACE.sub(" ", _CONTROL.sub("", text)).strip()


def score_text(score: float) -> str:
    """'87.5/100'."""
    return f"{score:.1f}/100"


def region_text(region: str) -> str:
    """A canary's or replica's region as shown: '(no region)' when the record names none."""
    return region or "(no region)"


def seconds_on_run_clock(value: float) -> str:
    """'t+20.00 s': a moment of a run, in seconds since it started."""
    return f"t+{value:.2f} s"


def quantity_text(value: float | None, unit: str, *, lower_bound: bool = False) -> str:
    """'4.21 s', '> 27.00 s' for a lower bound, 'n/a' when there is no value."""
    text = format_quantity(value, unit)
    return f"{LOWER_BOUND_PREFIX}{text}" if lower_bound and value is not None else text


def measured_text(check: Check) -> str:
    """The check's measured value: '4.21 s', '> 27.00 s' when censored, 'n/a' when not measured."""
    return quantity_text(check.measured, check.unit, lower_bound=check.lower_bound)


def target_text(check: Check) -> str:
    """'at most 30.00 s'."""
    return f"{COMPARISON_WORDS[check.comparison]} {format_quantity(check.limit, check.unit)}"


def target_symbol_text(check: Check) -> str:
    """'≤ 30.00 s'."""
    return f"{COMPARISON_SYMBOLS[check.comparison]} {format_quantity(check.limit, check.unit)}"


def margin_text(check: Check) -> str:
    """How far inside or outside the limit the measurement is: '25.79 s inside', '15.20 s over'.

    A lower bound only bounds the margin from one side: beyond the limit it is 'at least … over'
    (at most) or 'at least … inside' (at least); on the other side the margin is not known.
    """
    margin = check.margin
    if margin is None:
        return "n/a"
    amount = format_quantity(abs(margin), check.unit)
    beyond = "over" if check.comparison is Comparison.AT_MOST else "short"
    if check.lower_bound:
        # The truth is at least `measured`: it can only move further up.
        rises_out = check.comparison is Comparison.AT_MOST
        if rises_out and margin < 0:
            return f"at least {amount} over"
        if not rises_out and margin >= 0:
            return f"at least {amount} inside"
        return "not known (lower bound)"
    return f"{amount} inside" if margin >= 0 else f"{amount} {beyond}"


def witness_texts(check: Check) -> tuple[str, ...]:
    """'canary: 0%', 'prometheus: 12.5%': each witness of the check with its value."""
    return tuple(f"{one_line(name)}: {format_quantity(value, check.unit)}" for name, value in check.witnesses)


def missing_text(check: Check) -> str:
    """The evidence an unknown check lacks, '; '-separated; '' when nothing is named."""
    return "; ".join(one_line(item) for item in check.missing if one_line(item))


def citation_text(check: Check) -> str:
    """'<description> (source: <source>)', either part alone, or ''."""
    description, source = one_line(check.description), one_line(check.source)
    if description and source:
        return f"{description} (source: {source})"
    return description or (f"source: {source}" if source else "")


def unknown_reason(check: Check) -> str:
    """Why a check is unknown, in a few words: 'missing: …' when scoring named the missing
    evidence, else its evidence, else 'no measurement'."""
    missing = missing_text(check)
    return f"missing: {missing}" if missing else (one_line(check.evidence) or "no measurement")


def check_sentence(check: Check) -> str:
    """One line for a check: measured vs target, and for an unknown what evidence it lacks.

    'failover_seconds measured 45.20 s, target at most 30.00 s';
    'failover_seconds measured > 45.20 s, target at most 30.00 s' (censored);
    'failover_seconds unknown (missing: canary samples of eu-west-1), target at most 30.00 s'.
    """
    parts = []
    if check.verdict is Verdict.UNKNOWN:
        parts.append(f"{check.measure} unknown ({unknown_reason(check)})")
        if check.measured is not None:
            parts.append(f"measured {measured_text(check)}")
    else:
        parts.append(f"{check.measure} measured {measured_text(check)}")
    parts.append(f"target {target_text(check)}")
    if check.witnesses:
        parts.append("witnesses " + ", ".join(witness_texts(check)))
    return ", ".join(parts)


def verdict_counts(grade: Grade) -> dict[Verdict, int]:
    """How many checks of the grade have each verdict."""
    counts = dict.fromkeys(Verdict, 0)
    for check in grade.checks:
        counts[check.verdict] += 1
    return counts
