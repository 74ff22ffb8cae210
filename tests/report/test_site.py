"""The report folder: run files, run pages, system pages and the index, written and read back."""

from __future__ import annotations

import dataclasses
import html
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from report_records import (
    IMG_EVIDENCE,
    SCRIPT_TITLE,
    START,
    make_grade,
    make_history,
    make_record,
    truth_pair,
)

from harness import measures
from harness.errors import ConfigError
from harness.model import Grade, RunRecord, Verdict
from harness.report import find_regressions, load_run, write_run, write_site
from harness.report._format import VERDICT_COLOURS
from harness.report._view import build_system_view, experiment_key


def _text(page: str) -> str:
    """The page's visible text roughly as a reader sees it: tags dropped, entities decoded."""
    page = re.sub(r"<(svg|style)\b.*?</\1>", "", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def test_write_run_writes_four_files_and_refreshes_the_index(tmp_path: Path, failing_run) -> None:
    record, grade = failing_run
    paths = write_run(record, grade, tmp_path)
    assert paths.run_dir == tmp_path / "run-fail"
    for path in (paths.run_json, paths.junit_xml, paths.summary_md, paths.html, paths.site_index):
        assert path.is_file() and path.stat().st_size > 0
    expected = {"record": record.to_dict(), "grade": grade.to_dict()}
    assert json.loads(paths.run_json.read_text()) == json.loads(json.dumps(expected))
    assert "failover_seconds measured 45.20 s, target at most 30.00 s" in paths.junit_xml.read_text()
    assert "❌ FAIL" in paths.summary_md.read_text()
    index = _text(paths.site_index.read_text())
    assert "aeon-nova" in index and "FAIL" in index and "0 of 1 system met" in index
    assert (tmp_path / "systems" / "aeon-nova.html").is_file()
    assert not list(tmp_path.rglob("*.tmp")), "temporary files are renamed, never left behind"


def test_run_json_round_trips_through_load_run(tmp_path: Path, passing_run) -> None:
    record, grade = passing_run
    paths = write_run(record, grade, tmp_path)
    assert load_run(paths.run_json) == (record, grade)


def test_load_run_accepts_a_bare_record(tmp_path: Path, passing_run) -> None:
    path = tmp_path / "record.json"
    path.write_text(json.dumps(passing_run[0].to_dict()))
    assert load_run(path) == (passing_run[0], None)


@pytest.mark.parametrize(
    ("content", "field", "problem"),
    [
        (None, "", "no such file"),
        ("{not json", "", "expected JSON"),
        ("[1, 2]", "", "expected a JSON object"),
        ('{"record": {"run_id": "x"}}', "record.schema_version", ""),
        ('{"record": 3}', "record", "expected an object"),
    ],
)
def test_load_run_names_file_and_field(tmp_path: Path, content: str | None, field: str, problem: str) -> None:
    path = tmp_path / "run.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_run(path)
    assert caught.value.path == str(path)
    assert caught.value.field == field
    assert problem in caught.value.problem
    assert "\n" not in str(caught.value)


def test_load_run_reports_a_missing_record_field(tmp_path: Path, passing_run) -> None:
    data = {"record": passing_run[0].to_dict(), "grade": passing_run[1].to_dict()}
    del data["record"]["scenario"]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"run.json:record.scenario: missing"):
        load_run(path)


def test_load_run_refuses_a_grade_of_another_run(tmp_path: Path, passing_run, failing_run) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"record": passing_run[0].to_dict(), "grade": failing_run[1].to_dict()}))
    with pytest.raises(ConfigError, match=r"grade\.run_id"):
        load_run(path)


def test_load_run_refuses_a_run_id_that_is_a_path(tmp_path: Path, passing_run) -> None:
    record = dataclasses.replace(passing_run[0], run_id="../../etc")
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"record": record.to_dict()}))
    with pytest.raises(ConfigError, match=r"record\.run_id"):
        load_run(path)


def test_run_page_shows_verdict_checks_figures_and_charts(tmp_path: Path, failing_run) -> None:
    page = write_run(*failing_run, tmp_path).html.read_text()
    text = _text(page)
    assert "✘ FAIL" in text and "20.0/100" in text
    assert "2 of 3 targets missed" in text
    assert "failover_time 45.20 s (target ≤ 30.00 s, 15.20 s over)" in text
    rto = measures.measure(failing_run[0], "rto_seconds")  # not graded: derived as grading would
    assert rto.lower_bound and f"> {rto.value:.2f} s" in text
    assert "Lost acknowledged writes" in text
    assert "p99_latency_seconds" in text and "45 ms" in text
    assert page.count("<svg") == 2
    assert 'href="run.json"' in page and 'href="junit.xml"' in page and 'href="summary.md"' in page
    assert "hunter2" not in page, "passwords in URLs are redacted"
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "nothing to fetch"


def test_unknown_run_page_says_no_data(tmp_path: Path, unknown_run) -> None:
    page = write_run(*unknown_run, tmp_path).html.read_text()
    text = _text(page)
    assert "? UNKNOWN" in text
    assert "Targets not proven: failover_time (missing: no failover_seconds measurement)" in text
    assert "No data: no canary samples." in text and "No data: no replication lag samples." in text
    assert page.count("<svg") == 0


def test_hostile_text_is_escaped_on_every_page(tmp_path: Path, hostile_run) -> None:
    record, grade = hostile_run
    record = dataclasses.replace(record, scenario='sys"><b>x</b>')
    grade = dataclasses.replace(grade, scenario=record.scenario)
    write_run(record, grade, tmp_path)
    pages = [*tmp_path.rglob("*.html")]
    assert len(pages) == 3
    for page in pages:
        source = page.read_text()
        assert "<script" not in source and "<img" not in source and "<b>x" not in source
    run_page = (tmp_path / "run-hostile" / "index.html").read_text()
    assert html.escape(SCRIPT_TITLE, quote=False) in run_page
    assert html.escape(IMG_EVIDENCE, quote=False).replace('"', "&#34;") in run_page


def test_site_with_one_run_many_runs_and_empty_history(tmp_path: Path, passing_run) -> None:
    write_site([passing_run], tmp_path / "one")
    system = _text((tmp_path / "one" / "systems" / "aeon-nova.html").read_text())
    assert "passing in all 1 run since 2025-03-01 02:00:00 UTC" in system
    assert "No regression found" in system

    history = make_history(60, step_at=40)
    index = write_site([], tmp_path / "many", history=history)
    system_page = (tmp_path / "many" / "systems" / "aeon-nova.html").read_text()
    system = _text(system_page)
    assert "failing since 2025-04-10 02:00:00 UTC (20 runs)" in system
    assert "40 of 60 runs passed (67%)" in system
    assert "failover_seconds regressed at run aeon-nova-00" in system
    assert system_page.count("<svg") == 1
    assert "No runs yet" not in _text(index.read_text())

    empty = write_site([], tmp_path / "empty")
    assert "No runs yet." in _text(empty.read_text())


def test_history_table_is_capped_and_says_so(tmp_path: Path) -> None:
    write_site([], tmp_path, history=make_history(130))
    system = _text((tmp_path / "systems" / "aeon-nova.html").read_text())
    assert "Latest 100 of 130 runs; the charts show all of them." in system
    assert "aeon-nova-0129" in system and "aeon-nova-0029" not in system


def test_index_lists_every_system_with_its_latest_run(tmp_path: Path, passing_run) -> None:
    other = make_record("other-1", scenario="finnexus", failover_seconds=70.0, with_samples=False)
    write_run(*passing_run, tmp_path)
    write_run(other, make_grade(other, failover_limit=60.0), tmp_path)
    index = (tmp_path / "index.html").read_text()
    text = _text(index)
    assert "1 of 2 systems met their resilience targets" in text
    assert 'href="systems/aeon-nova.html"' in index and 'href="systems/finnexus.html"' in index
    assert 'href="run-pass/index.html"' in index and 'href="other-1/index.html"' in index
    manifest = json.loads((tmp_path / "index.json").read_text())
    assert {e["record"]["run_id"] for e in manifest["runs"]} == {"run-pass", "other-1"}
    assert all(e["record"]["samples"] == [] for e in manifest["runs"])


def test_index_is_rebuilt_from_run_folders_when_its_data_is_lost(tmp_path: Path, passing_run) -> None:
    write_run(*passing_run, tmp_path)
    (tmp_path / "index.json").write_text("{damaged")
    other = make_record("run-2", with_samples=False)
    write_run(other, make_grade(other), tmp_path)
    manifest = json.loads((tmp_path / "index.json").read_text())
    assert {e["record"]["run_id"] for e in manifest["runs"]} == {"run-pass", "run-2"}


def test_writing_a_run_again_replaces_it(tmp_path: Path, passing_run, failing_run) -> None:
    record, grade = passing_run
    write_run(record, grade, tmp_path)
    regraded: Grade = dataclasses.replace(failing_run[1], run_id=record.run_id)
    write_run(record, regraded, tmp_path)
    manifest = json.loads((tmp_path / "index.json").read_text())
    assert [e["grade"]["verdict"] for e in manifest["runs"]] == ["fail"]


def test_write_run_refuses_a_run_id_that_is_a_path(tmp_path: Path, passing_run) -> None:
    record: RunRecord = dataclasses.replace(passing_run[0], run_id="../escape")
    with pytest.raises(ValueError, match="cannot name a folder"):
        write_run(record, passing_run[1], tmp_path / "out")
    assert not (tmp_path / "escape").exists()


def test_run_ids_with_spaces_and_hashes_get_working_links(tmp_path: Path) -> None:
    record = make_record("20250301T020000Z-aeon nova-fail #2", with_samples=False)
    write_run(record, make_grade(record), tmp_path)
    assert (tmp_path / record.run_id / "index.html").is_file()
    assert (
        'href="20250301T020000Z-aeon%20nova-fail%20%232/index.html"' in (tmp_path / "index.html").read_text()
    )


def _two_experiments() -> list[tuple]:
    """30 daily failover runs (~4 s), then 10 partition runs (~12 s) of the same system."""
    history = make_history(30)
    for index in range(10):
        record = make_record(
            f"partition-{index:02d}",
            title="Region partition",
            started_at=START + timedelta(days=30 + index),
            failover_seconds=12.0 + 0.1 * index,
            with_samples=False,
        )
        record = dataclasses.replace(record, experiment_path="experiments/region-partition.yaml")
        history.append((record, make_grade(record)))
    return history


def test_trends_and_regressions_are_per_experiment() -> None:
    history = _two_experiments()
    # Mixed into one series, the partition's longer outages would read as a failover regression.
    assert find_regressions(history)
    view = build_system_view(history)
    assert [e.title for e in view.experiments] == ["Redis primary failover", "Region partition"]
    assert all(e.regressions == () for e in view.experiments)
    assert [e.pass_rate for e in view.experiments] == [
        "30 of 30 runs passed (100%)",
        "10 of 10 runs passed (100%)",
    ]
    assert all(e.trend.svg for e in view.experiments)
    assert view.experiments[1].latest.run_id == "partition-09"


def test_experiment_key_is_the_file_name() -> None:
    record = make_record("x", with_samples=False)
    moved = dataclasses.replace(record, experiment_path="/elsewhere/redis-primary-failover.yaml")
    assert experiment_key(record) == experiment_key(moved) == "redis-primary-failover.yaml"


def test_system_page_has_a_section_and_trend_per_experiment(tmp_path: Path) -> None:
    write_site([], tmp_path, history=_two_experiments())
    page = (tmp_path / "systems" / "aeon-nova.html").read_text()
    assert page.count('<section class="experiment"') == 2
    assert page.count("<svg") == 2
    assert 'href="#experiment-region-partition.yaml"' in page
    text = _text(page)
    assert "No regression found" in text and "regressed" not in text
    assert "failover_time 12.90 s · replication_lag 800 ms · rpo 350 ms" in text


def test_run_page_shows_source_censoring_witnesses_and_missing(tmp_path: Path) -> None:
    page = write_run(*truth_pair(), tmp_path).html.read_text()
    text = _text(page)
    assert "failover_time failover_seconds Redis primary failover completes within the limit" in text
    assert "> 39.90 s lower bound ≤ 30.00 s at least 9.90 s over" in text
    assert "Source: seeds/aeon-nova.md §4.2 Failover" in text
    assert "lower bound: not recovered when the fault was undone or the run ended." in text
    assert "Missing evidence: agreement of the two witnesses within 0.5 points" in text
    assert "Witnesses: canary: 12.5% prometheus: 0%" in text
    assert (
        "Missing evidence: canary samples of eu-west-1 from t+20.00 s to t+40.00 s "
        "canary.started event of ap-south-1"
    ) in text
    assert "<cite>seeds/aeon-nova.md §4.2 Failover</cite>" in page


def test_verdict_colours_come_from_one_table(tmp_path: Path, failing_run) -> None:
    page = write_run(*failing_run, tmp_path).html.read_text()
    for verdict, colour in VERDICT_COLOURS.items():
        assert f"--{verdict.value}: {colour};" in page
    system = (tmp_path / "systems" / "aeon-nova.html").read_text()
    assert VERDICT_COLOURS[Verdict.FAIL].lower() in system.lower()  # the trend's fail marker


def test_hostile_citations_missing_and_witness_names_are_escaped(tmp_path: Path) -> None:
    record, grade = truth_pair()
    checks = tuple(
        dataclasses.replace(
            c,
            description=SCRIPT_TITLE,
            source=IMG_EVIDENCE,
            missing=tuple(IMG_EVIDENCE for _ in c.missing),
            witnesses=tuple((SCRIPT_TITLE, v) for _, v in c.witnesses),
        )
        for c in grade.checks
    )
    paths = write_run(record, dataclasses.replace(grade, checks=checks), tmp_path)
    for path in (paths.html, paths.summary_md, paths.junit_xml):
        source = path.read_text()
        assert "<script" not in source and "<img" not in source, path.name
    assert html.escape(SCRIPT_TITLE, quote=False) in paths.html.read_text()
