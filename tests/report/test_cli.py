"""`harness report`: run files and stored history in, report folder out; bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from report_records import make_history
from typer.testing import CliRunner

from harness import store
from harness.cli.report import register
from harness.report import write_run


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """A root so that `report` stays a subcommand, as in the real app."""

    register(app)
    return app


def _invoke(app: typer.Typer, *args: str):
    return CliRunner().invoke(app, ["report", *map(str, args)])


def test_report_renders_run_files(app, tmp_path: Path, passing_run, failing_run) -> None:
    files = [write_run(*run, tmp_path / "runs").run_json for run in (passing_run, failing_run)]
    result = _invoke(app, *files, "--out", tmp_path / "site")
    assert result.exit_code == 0, result.output
    assert "PASS 100.0/100" in result.output and "FAIL 20.0/100" in result.output
    for page in ("index.html", "run-pass/index.html", "run-fail/junit.xml", "systems/aeon-nova.html"):
        assert (tmp_path / "site" / page).is_file()


def test_missing_run_file_exits_2_with_one_line(app, tmp_path: Path) -> None:
    result = _invoke(app, tmp_path / "nope.json", "--out", tmp_path / "site")
    assert result.exit_code == 2
    assert result.output.strip() == f"harness: {tmp_path / 'nope.json'}: no such file"
    assert not (tmp_path / "site").exists()


def test_malformed_run_file_exits_2_naming_the_field(app, tmp_path: Path, passing_run) -> None:
    data = {"record": passing_run[0].to_dict(), "grade": passing_run[1].to_dict()}
    del data["grade"]["verdict"]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    result = _invoke(app, path)
    assert result.exit_code == 2
    assert result.output.strip() == f"harness: {path}:grade.verdict: missing"


def test_ungraded_record_exits_2(app, tmp_path: Path, passing_run) -> None:
    path = tmp_path / "record.json"
    path.write_text(json.dumps(passing_run[0].to_dict()))
    result = _invoke(app, path)
    assert result.exit_code == 2 and f"{path}:grade: missing" in result.output


def test_nothing_to_report_exits_2(app) -> None:
    result = _invoke(app)
    assert result.exit_code == 2 and "give one or more run.json files" in result.output


def test_scenario_reads_the_stored_history(app, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    with store.open_store(url) as history:
        for record, grade in make_history(30, step_at=22):
            history.save(record, grade)
    result = _invoke(app, "--scenario", "aeon-nova", "--store", url, "--out", tmp_path / "site")
    assert result.exit_code == 0, result.output
    assert "30 stored run(s) of aeon-nova" in result.output
    page = (tmp_path / "site" / "systems" / "aeon-nova.html").read_text()
    assert "30 runs." in page and "aeon-nova-0029" in page and "regressed at run" in page
