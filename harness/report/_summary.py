"""Markdown for a pull-request comment, and the one line a terminal prints after a run."""

from __future__ import annotations

import re
from collections.abc import Sequence

from harness.model import Check, Grade, Verdict
from harness.report._format import (
    VERDICT_WORDS,
    check_sentence,
    citation_text,
    margin_text,
    measured_text,
    missing_text,
    one_line,
    score_text,
    target_text,
    verdict_counts,
    witness_texts,
)

_MARKDOWN_ICONS = {Verdict.PASS: "✅", Verdict.FAIL: "❌", Verdict.UNKNOWN: "❔"}
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")


def summary_line(grade: Grade) -> str:
    """'FAIL 62.5/100 aeon-nova: Redis failover [run-1] - failed: failover_time (...)'."""
    parts = [
        f"{VERDICT_WORDS[grade.verdict]} {score_text(grade.score)}",
        one_line(f"{grade.scenario}: {grade.experiment_title} [{grade.run_id}]"),
    ]
    failed = [c for c in grade.checks if c.verdict is Verdict.FAIL]
    unknown = [c for c in grade.checks if c.verdict is Verdict.UNKNOWN]
    if failed:
        parts.append("failed: " + "; ".join(f"{c.target} ({check_sentence(c)})" for c in failed))
    if unknown:
        parts.append(
            "unknown: "
            + ", ".join(
                f"{one_line(c.target)} (missing: {missing_text(c)})"
                if missing_text(c)
                else one_line(c.target)
                for c in unknown
            )
        )
    if grade.verdict is not Verdict.PASS and not failed and not unknown and grade.reasons:
        parts.append("; ".join(one_line(r) for r in grade.reasons))
    return " - ".join(parts)


def render_summary(grades: Sequence[Grade]) -> str:
    """Markdown: an overall line, then per run its verdict, score and a table of checks."""
    lines = ["## Resilience report", ""]
    if not grades:
        return "\n".join([*lines, "No runs were graded.", ""])
    by_verdict = {v: sum(1 for g in grades if g.verdict is v) for v in Verdict}
    tally = ", ".join(f"{n} {VERDICT_WORDS[v].lower()}" for v, n in by_verdict.items() if n)
    lines += [f"**{len(grades)} run{'s' if len(grades) != 1 else ''}: {tally}**", ""]
    for grade in grades:
        lines += _grade_section(grade)
    return "\n".join(lines)


def _grade_section(grade: Grade) -> list[str]:
    counts = verdict_counts(grade)
    icon = _MARKDOWN_ICONS[grade.verdict]
    lines = [
        f"### {icon} {VERDICT_WORDS[grade.verdict]} · {_md(grade.scenario)}: {_md(grade.experiment_title)}",
        "",
        f"Score **{score_text(grade.score)}** · {counts[Verdict.PASS]} passed, "
        f"{counts[Verdict.FAIL]} failed, {counts[Verdict.UNKNOWN]} unknown · run `{_code(grade.run_id)}`",
        "",
    ]
    lines += [f"- {_md(reason)}" for reason in grade.reasons]
    if grade.reasons:
        lines.append("")
    if not grade.checks:
        return [*lines, "No checks were graded.", ""]
    lines += [
        "| | Check | Measured | Target | Margin | Evidence | Target's source |",
        "|---|---|---|---|---|---|---|",
    ]
    for check in grade.checks:
        critical = " (critical)" if check.critical else ""
        lines.append(
            f"| {_MARKDOWN_ICONS[check.verdict]} {VERDICT_WORDS[check.verdict].lower()} "
            f"| {_md(check.target)}{critical} "
            f"| {_md(measured_text(check))} "
            f"| {_md(target_text(check))} "
            f"| {_md(margin_text(check))} "
            f"| {_md(_evidence(check))} "
            f"| {_md(citation_text(check))} |"
        )
    return [*lines, ""]


def _evidence(check: Check) -> str:
    """What is missing first (for an unknown), then the witnesses, then the evidence."""
    parts = []
    if missing := missing_text(check):
        parts.append(f"missing: {missing}")
    if check.witnesses:
        parts.append("witnesses: " + ", ".join(witness_texts(check)))
    if check.evidence:
        parts.append(check.evidence)
    return " · ".join(parts)


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, HTML and Markdown syntax escaped."""
    text = one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _code(text: str) -> str:
    """Text safe inside a Markdown code span."""
    return one_line(text).replace("`", "'")
