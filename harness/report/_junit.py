"""JUnit XML: one testsuite per graded run, one testcase per check.

A failed check is a ``<failure>`` whose message is measured vs target. An unknown check is an
``<error>``, not a ``<skipped>``: CI systems count skipped tests as green, and an unknown verdict
must never read as a pass (it exits 3, like an error of the harness or the environment). When the
run's verdict comes from a reason outside the checks (no checks at all, a failed steady state),
a testcase named ``verdict`` carries it, so the XML never looks greener than the grade.

Every message is the check's one-line sentence (measured vs target; for an unknown, the evidence
it lacks); the body adds the target's description and source, witnesses and the evidence.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from harness.model import Check, Grade, Verdict, combine
from harness.report._format import check_sentence, citation_text, missing_text, score_text, witness_texts

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render_junit(grades: Sequence[Grade]) -> str:
    """JUnit XML for the grades, as a string with an XML declaration."""
    root = ET.Element("testsuites", name="resilience-harness")
    totals = dict.fromkeys(("tests", "failures", "errors"), 0)
    for grade in grades:
        suite = _testsuite(grade)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _testsuite(grade: Grade) -> ET.Element:
    classname = _clean(f"{grade.scenario}.{grade.experiment_title}")
    suite = ET.Element(
        "testsuite", name=_clean(f"{grade.scenario}: {grade.experiment_title}"), id=_clean(grade.run_id)
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("run_id", grade.run_id),
        ("scenario", grade.scenario),
        ("verdict", grade.verdict.value),
        ("score", score_text(grade.score)),
    ):
        ET.SubElement(properties, "property", name=name, value=_clean(value))
    for check in grade.checks:
        case = ET.SubElement(suite, "testcase", classname=classname, name=_clean(check.target))
        if check.verdict is Verdict.FAIL:
            failure = ET.SubElement(
                case, "failure", message=_clean(check_sentence(check)), type="target_missed"
            )
            failure.text = _clean(_details(check))
        elif check.verdict is Verdict.UNKNOWN:
            error = ET.SubElement(case, "error", message=_clean(check_sentence(check)), type="unknown")
            error.text = _clean(_details(check))
        elif citation := citation_text(check):
            ET.SubElement(case, "system-out").text = _clean(f"target: {citation}")
    if not grade.checks or combine(c.verdict for c in grade.checks) is not grade.verdict:
        case = ET.SubElement(suite, "testcase", classname=classname, name="verdict")
        reasons = "; ".join(grade.reasons) or "no checks were graded"
        message = _clean(f"run verdict {grade.verdict.value}: {reasons}")
        if grade.verdict is Verdict.FAIL:
            ET.SubElement(case, "failure", message=message, type="run_failed")
        elif grade.verdict is Verdict.UNKNOWN:
            ET.SubElement(case, "error", message=message, type="unknown")
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    suite.set("skipped", "0")
    if grade.reasons:
        ET.SubElement(suite, "system-out").text = _clean("\n".join(grade.reasons))
    return suite


def _details(check: Check) -> str:
    """The body of a failure or error: the target cited, what is missing, the witnesses, the evidence."""
    lines = []
    if citation := citation_text(check):
        lines.append(f"target: {citation}")
    if missing := missing_text(check):
        lines.append(f"missing evidence: {missing}")
    if check.witnesses:
        lines.append("witnesses: " + ", ".join(witness_texts(check)))
    if check.evidence:
        lines.append(check.evidence)
    return "\n".join(lines)


def _clean(text: str) -> str:
    """The text without the characters XML 1.0 cannot carry (most control characters)."""
    return _NOT_XML.sub("", text)
