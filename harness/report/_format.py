"""Words for verdicts and checks, shared by the HTML, JUnit, Markdown and terminal outputs."""

from __future__ import annotations

import re

from harness.model import Check, Comparison, Grade, Verdict
from harness.units import format_quantity

VERDICT_WORDS = {Verdict.PASS: "PASS", Verdict.FAIL: "FAIL", Verdict.UNKNOWN: "UNKNOWN"}
VERDICT_ICONS = {Verdict.PASS: "✔", Verdict.FAIL: "✘", Verdict.UNKNOWN: "?"}
COMPARISON_WORDS = {Comparison.AT_MOST: "at most", Comparison.AT_LEAST: "at least"}
COMPARISON_SYMBOLS = {Comparison.AT_MOST: "≤", Comparison.AT_LEAST: "≥"}

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_WHITESPACE = re.compile(r"\s+")


def one_line(text: str) -> str:
    """The text on one line: control characters dropped, runs of whitespace made one space."""
    return _WHITESPACE.sub(" ", _CONTROL.sub("", text)).strip()


def score_text(score: float) -> str:
    """'87.5/100'."""
    return f"{score:.1f}/100"


def target_text(check: Check) -> str:
    """'at most 30.00 s'."""
    return f"{COMPARISON_WORDS[check.comparison]} {format_quantity(check.limit, check.unit)}"


def margin_text(check: Check) -> str:
    """How far inside or outside the limit the measurement is: '25.79 s inside', '15.20 s over'."""
    margin = check.margin
    if margin is None:
        return "n/a"
    amount = format_quantity(abs(margin), check.unit)
    if margin >= 0:
        return f"{amount} inside"
    return f"{amount} {'over' if check.comparison is Comparison.AT_MOST else 'short'}"


def check_sentence(check: Check) -> str:
    """'failover_seconds measured 4.21 s, target at most 30.00 s', or why it is unknown."""
    if check.measured is None:
        reason = one_line(check.evidence) or "no measurement"
        return f"{check.measure} unknown ({reason}), target {target_text(check)}"
    return (
        f"{check.measure} measured {format_quantity(check.measured, check.unit)}, target {target_text(check)}"
    )


def verdict_counts(grade: Grade) -> dict[Verdict, int]:
    """How many checks of the grade have each verdict."""
    counts = dict.fromkeys(Verdict, 0)
    for check in grade.checks:
        counts[check.verdict] += 1
    return counts
