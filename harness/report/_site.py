"""The report folder: a directory per run, a page per system, an index; and reading run.json back.

Layout of ``out_dir``::

    index.html               every system's latest grade, the most recent runs
    index.json               light copies (no samples, events or journal) of every run written here
    systems/<scenario>.html  a system's history, trend and regressions
    <run_id>/run.json        {"record": ..., "grade": ...}
    <run_id>/junit.xml, summary.md, index.html

Every file is written to a temporary file in its folder, then renamed over the old one.
``index.json`` is how the system pages know the history of a folder without reparsing every
run.json; it is updated under a lock so concurrent runs writing to one folder do not lose entries.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from harness.errors import ConfigError
from harness.jsonfile import read_json
from harness.model import RECORD_SCHEMA_VERSION, Grade, RecordError, RunRecord
from harness.report._html import render_index_html, render_run_html, render_system_html
from harness.report._junit import render_junit
from harness.report._summary import render_summary
from harness.report._view import (
    build_index_view,
    build_run_view,
    build_system_view,
    sort_history,
    system_page_name,
)
from harness.store import write_text_atomic

# A run id names its folder: one path component, not hidden, not the systems folder.
_RUN_ID = re.compile(r"^[^./\\\x00][^/\\\x00]*$")
_MANIFEST_VERSION = 1
_T = TypeVar("_T")

History = Sequence[tuple[RunRecord, Grade]]


@dataclass(frozen=True, slots=True)
class RunReportPaths:
    """Where write_run put a run's files."""

    run_dir: Path
    run_json: Path
    junit_xml: Path
    summary_md: Path
    html: Path
    site_index: Path


def write_run(record: RunRecord, grade: Grade, out_dir: Path) -> RunReportPaths:
    """Write a run's run.json, junit.xml, summary.md and page; refresh the index and its system page."""
    out_dir = Path(out_dir)
    paths = _write_run_files(record, grade, out_dir)
    with _locked(out_dir):
        known = _merge_manifest(out_dir, [(record, grade)])
        _write_pages(out_dir, known, scenarios={record.scenario})
    return paths


def write_site(runs: History, out_dir: Path, history: History = ()) -> Path:
    """Write the runs' folders, then the index and every system page; returns index.html's path.

    ``history`` (e.g. from the store) adds earlier runs to the system pages without run pages.
    """
    out_dir = Path(out_dir)
    for record, grade in runs:
        _write_run_files(record, grade, out_dir)
    with _locked(out_dir):
        known = _merge_manifest(out_dir, runs)
        everything = [*history, *known]
        _write_pages(out_dir, everything, scenarios={record.scenario for record, _ in everything})
    return out_dir / "index.html"


def load_run(path: Path | str) -> tuple[RunRecord, Grade | None]:
    """A record and its grade from run.json; a bare RunRecord file gives no grade.

    Raises ConfigError naming the file and field for a missing, unreadable or malformed file.
    """
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(path, "", f"expected a JSON object, got {type(data).__name__}")
    if "record" in data:
        record_data, grade_data = data["record"], data.get("grade")
    else:
        record_data, grade_data = data, None
    if isinstance(record_data, dict) and record_data.get("schema_version") != RECORD_SCHEMA_VERSION:
        found = record_data.get("schema_version")
        raise ConfigError(path, "record.schema_version", f"expected {RECORD_SCHEMA_VERSION}, got {found!r}")
    record = _parse(path, "record", RunRecord.from_dict, record_data)
    if not _is_folder_name(record.run_id):
        raise ConfigError(path, "record.run_id", f"expected a name usable as a folder, got {record.run_id!r}")
    if grade_data is None:
        return record, None
    grade = _parse(path, "grade", Grade.from_dict, grade_data)
    if grade.run_id != record.run_id:
        raise ConfigError(
            path, "grade.run_id", f"expected the record's run id {record.run_id!r}, got {grade.run_id!r}"
        )
    return record, grade


def _parse(path: Path, field: str, parse: Callable[[Mapping[str, Any]], _T], data: object) -> _T:
    if not isinstance(data, dict):
        raise ConfigError(path, field, f"expected an object, got {type(data).__name__}")
    try:
        return parse(data)
    except RecordError as error:  # the model names the field path: samples[12].ok
        raise ConfigError(path, f"{field}.{error.field}" if error.field else field, error.problem) from None
    except KeyError as error:
        raise ConfigError(path, f"{field}.{error.args[0]}", "missing") from None
    except (TypeError, ValueError, AttributeError) as error:
        raise ConfigError(path, field, f"malformed: {error}") from None


def _is_folder_name(run_id: object) -> bool:
    return isinstance(run_id, str) and bool(_RUN_ID.match(run_id)) and run_id != "systems"


def _write_run_files(record: RunRecord, grade: Grade, out_dir: Path) -> RunReportPaths:
    if not _is_folder_name(record.run_id):
        raise ValueError(f"run_id {record.run_id!r} cannot name a folder")
    run_dir = out_dir / record.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = RunReportPaths(
        run_dir=run_dir,
        run_json=run_dir / "run.json",
        junit_xml=run_dir / "junit.xml",
        summary_md=run_dir / "summary.md",
        html=run_dir / "index.html",
        site_index=out_dir / "index.html",
    )
    document = {"record": record.to_dict(), "grade": grade.to_dict()}
    write_text_atomic(paths.run_json, json.dumps(document, indent=1, ensure_ascii=False, default=str) + "\n")
    write_text_atomic(paths.junit_xml, render_junit([grade]))
    write_text_atomic(paths.summary_md, render_summary([grade]))
    write_text_atomic(paths.html, render_run_html(build_run_view(record, grade)))
    return paths


def _write_pages(out_dir: Path, runs: History, scenarios: set[str]) -> None:
    histories: dict[str, list[tuple[RunRecord, Grade]]] = defaultdict(list)
    for record, grade in runs:
        histories[record.scenario].append((record, grade))
    histories = {scenario: sort_history(pairs) for scenario, pairs in histories.items()}
    rendered = frozenset(page.parent.name for page in out_dir.glob("*/index.html"))
    (out_dir / "systems").mkdir(exist_ok=True)
    for scenario in scenarios:
        view = build_system_view(histories[scenario], rendered)
        write_text_atomic(out_dir / "systems" / system_page_name(scenario), render_system_html(view))
    write_text_atomic(out_dir / "index.html", render_index_html(build_index_view(histories, rendered)))


def _merge_manifest(out_dir: Path, runs: History) -> list[tuple[RunRecord, Grade]]:
    """index.json with these runs added or replaced; returns everything it now holds."""
    known = {record.run_id: (record, grade) for record, grade in _read_manifest(out_dir)}
    for record, grade in runs:
        known[record.run_id] = (_light(record), grade)
    entries = [{"record": record.to_dict(), "grade": grade.to_dict()} for record, grade in known.values()]
    document = {"schema_version": _MANIFEST_VERSION, "runs": entries}
    write_text_atomic(out_dir / "index.json", json.dumps(document, ensure_ascii=False, default=str) + "\n")
    return list(known.values())


def _read_manifest(out_dir: Path) -> list[tuple[RunRecord, Grade]]:
    """The runs index.json lists; rebuilt from the run folders when it is missing or unreadable."""
    try:
        document = json.loads((out_dir / "index.json").read_text(encoding="utf-8"))
        if document.get("schema_version") != _MANIFEST_VERSION:
            raise ValueError("schema_version")
        return [(RunRecord.from_dict(e["record"]), Grade.from_dict(e["grade"])) for e in document["runs"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    found = []
    for run_json in sorted(out_dir.glob("*/run.json")):
        try:
            record, grade = load_run(run_json)
        except ConfigError:
            continue  # not ours, or damaged: the index lists what can be read
        if grade is not None:
            found.append((_light(record), grade))
    return found


def _light(record: RunRecord) -> RunRecord:
    return dataclasses.replace(record, samples=(), events=(), journal={})


@contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".index.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
