"""JUnit XML, the Markdown summary and the terminal line, from fixed grades."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

from report_records import IMG_EVIDENCE, SCRIPT_TITLE, truth_pair

from harness.model import Grade, Verdict
from harness.report import render_junit, render_summary, summary_line


def _cases(xml: str) -> dict[str, ET.Element]:
    return {case.get("name"): case for case in ET.fromstring(xml).iter("testcase")}


def test_junit_has_a_testcase_per_check_and_counts(passing_run, failing_run, unknown_run) -> None:
    grades = [passing_run[1], failing_run[1], unknown_run[1]]
    root = ET.fromstring(render_junit(grades))
    suites = root.findall("testsuite")
    assert [s.get("id") for s in suites] == ["run-pass", "run-fail", "run-unknown"]
    assert [len(s.findall("testcase")) for s in suites] == [3, 3, 3]
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("9", "2", "2")
    properties = {p.get("name"): p.get("value") for p in suites[1].iter("property")}
    assert properties["verdict"] == "fail" and properties["score"] == "20.0/100"


def test_junit_failure_message_is_measured_vs_target(failing_run) -> None:
    cases = _cases(render_junit([failing_run[1]]))
    failure = cases["failover_time"].find("failure")
    assert failure.get("message") == "failover_seconds measured 45.20 s, target at most 30.00 s"
    assert "no success before" in failure.text
    assert cases["rpo"].find("failure") is None and cases["rpo"].find("error") is None


def test_junit_passing_check_message_format_matches_the_issue(passing_run) -> None:
    grade = passing_run[1]
    check = dataclasses.replace(grade.checks[0], verdict=Verdict.FAIL)
    xml = render_junit([dataclasses.replace(grade, verdict=Verdict.FAIL, checks=(check,))])
    message = _cases(xml)["failover_time"].find("failure").get("message")
    assert message == "failover_seconds measured 4.21 s, target at most 30.00 s"


def test_junit_unknown_check_is_an_error_never_skipped(unknown_run) -> None:
    xml = render_junit([unknown_run[1]])
    cases = _cases(xml)
    error = cases["failover_time"].find("error")
    assert error.get("type") == "unknown"
    assert error.get("message") == (
        "failover_seconds unknown (missing: no failover_seconds measurement), target at most 30.00 s"
    )
    assert "missing evidence: no failover_seconds measurement" in error.text
    # Without named missing evidence, the message says what the evidence says.
    assert "no measurement: probe failed" in cases["replication_lag"].find("error").get("message")
    assert ET.fromstring(xml).find(".//skipped") is None


def test_junit_verdict_from_reasons_gets_its_own_testcase(passing_run) -> None:
    grade = dataclasses.replace(
        passing_run[1], verdict=Verdict.UNKNOWN, reasons=("fault effect not proven: redis-primary",)
    )
    error = _cases(render_junit([grade]))["verdict"].find("error")
    assert error.get("message") == "run verdict unknown: fault effect not proven: redis-primary"


def test_junit_with_no_checks_is_not_green() -> None:
    grade = Grade("r", "s", "t", Verdict.UNKNOWN, 0.0, ())
    root = ET.fromstring(render_junit([grade]))
    assert root.get("tests") == "1" and root.get("errors") == "1"


def test_junit_escapes_markup_and_drops_control_characters(hostile_run) -> None:
    grade = hostile_run[1]
    check = dataclasses.replace(grade.checks[0], evidence=IMG_EVIDENCE + "\x00\x1b[31m")
    xml = render_junit([dataclasses.replace(grade, checks=(check,))])
    root = ET.fromstring(xml)  # still well-formed
    assert "<script>" not in xml and "<img" not in xml
    assert root.find("testsuite").get("name") == f"aeon-nova: {SCRIPT_TITLE}"
    assert root.find(".//failure").text.splitlines()[-1] == IMG_EVIDENCE + "[31m"


def test_summary_markdown_has_a_row_per_check(passing_run, failing_run, unknown_run) -> None:
    text = render_summary([passing_run[1], failing_run[1], unknown_run[1]])
    assert "**3 runs: 1 pass, 1 fail, 1 unknown**" in text
    assert "### ❌ FAIL · aeon-nova: Redis primary failover" in text
    assert "| ❌ fail | failover\\_time (critical) | 45.20 s | at most 30.00 s | 15.20 s over |" in text
    assert "| ❔ unknown | failover\\_time (critical) | n/a | at most 30.00 s | n/a |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 3 * 4  # header + 3 checks per run


def test_summary_escapes_html_and_table_syntax(hostile_run) -> None:
    grade = hostile_run[1]
    check = dataclasses.replace(grade.checks[0], evidence="a | b\nnext line " + IMG_EVIDENCE)
    text = render_summary([dataclasses.replace(grade, checks=(check,))])
    assert "<script>" not in text and "<img" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    row = next(line for line in text.splitlines() if "failover" in line and line.startswith("|"))
    assert "a \\| b next line" in row


def test_summary_of_nothing_says_so() -> None:
    assert "No runs were graded." in render_summary([])


def test_summary_line_names_failed_checks(failing_run, passing_run, unknown_run) -> None:
    line = summary_line(failing_run[1])
    assert line.startswith("FAIL 20.0/100 - aeon-nova: Redis primary failover [run-fail]")
    assert "failover_time (failover_seconds measured 45.20 s, target at most 30.00 s)" in line
    assert summary_line(passing_run[1]) == "PASS 100.0/100 - aeon-nova: Redis primary failover [run-pass]"
    assert summary_line(unknown_run[1]).endswith(
        "unknown: failover_time (missing: no failover_seconds measurement), replication_lag"
    )
    assert "\n" not in summary_line(dataclasses.replace(failing_run[1], experiment_title="two\nlines"))


def test_junit_says_censored_witnesses_missing_and_source() -> None:
    grade = truth_pair()[1]
    cases = _cases(render_junit([grade]))
    assert len(cases) == len(grade.checks)
    failure = cases["failover_time"].find("failure")
    assert failure.get("message") == "failover_seconds measured > 39.90 s, target at most 30.00 s"
    assert failure.text.splitlines()[0] == (
        "target: Redis primary failover completes within the limit (source: seeds/aeon-nova.md §4.2 Failover)"
    )
    witnesses = cases["error_budget"].find("error")
    assert witnesses.get("message") == (
        "slo_error_ratio unknown (missing: agreement of the two witnesses within 0.5 points), "
        "measured 0%, target at most 1%, witnesses canary: 12.5%, prometheus: 0%"
    )
    rto = cases["recovery_time"].find("error")
    assert rto.get("message") == (
        "rto_seconds unknown (missing: canary samples of eu-west-1 from t+20.00 s to t+40.00 s; "
        "canary.started event of ap-south-1), target at most 60.00 s"
    )
    assert ET.fromstring(render_junit([grade])).find(".//skipped") is None


def test_junit_passing_check_cites_its_target(passing_run) -> None:
    out = _cases(render_junit([passing_run[1]]))["failover_time"].find("system-out")
    assert out.text == (
        "target: Redis primary failover completes within the limit (source: seeds/aeon-nova.md §4.2 Failover)"
    )


def test_summary_markdown_says_censored_witnesses_missing_and_source() -> None:
    text = render_summary([truth_pair()[1]])
    rows = {
        line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| ❌") or "❔" in line
    }
    assert rows["failover\\_time (critical)"].startswith(
        "| ❌ fail | failover\\_time (critical) | &gt; 39.90 s | at most 30.00 s | at least 9.90 s over |"
    )
    assert rows["failover\\_time (critical)"].endswith(
        "| Redis primary failover completes within the limit (source: seeds/aeon-nova.md §4.2 Failover) |"
    )
    assert (
        "| missing: agreement of the two witnesses within 0.5 points · witnesses: canary: 12.5%, "
        in (rows["error\\_budget"])
    )
    assert (
        "| missing: canary samples of eu-west-1 from t+20.00 s to t+40.00 s; canary.started event"
        in (rows["recovery\\_time"])
    )


def test_summary_line_names_missing_evidence() -> None:
    line = summary_line(truth_pair()[1])
    assert "failover_time (failover_seconds measured > 39.90 s, target at most 30.00 s)" in line
    assert "unknown: error_budget (missing: agreement of the two witnesses within 0.5 points)" in line
