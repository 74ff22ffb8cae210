"""The history store on SQLite and on a real PostgreSQL: atomic, idempotent, newest first."""

from __future__ import annotations

import json
import math
import os
import random
import re
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from store_processes import BLOB_BYTES, START, grade_for, record_for

from harness.errors import ConfigError
from harness.model import Event, Grade, Measurement, Sample, Verdict
from harness.store import open_store, redact_url, resolve_store_url, write_json_atomic, write_text_atomic

PROCESSES = Path(__file__).with_name("store_processes.py")


def test_save_then_read_back_newest_first(store_url: str) -> None:
    records = [record_for(index, samples=50) for index in (3, 1, 2)]
    with open_store(store_url) as store:
        for record in records:
            store.save(record, grade_for(record))
        runs = store.runs()
        assert [r.run_id for r, _ in runs] == ["run-00003", "run-00002", "run-00001"]
        assert runs[0] == (records[0], grade_for(records[0]))  # the full record, samples included
        assert [r.run_id for r, _ in store.runs(limit=2)] == ["run-00003", "run-00002"]
        assert store.runs("another-scenario") == []
        assert [
            r.run_id for r, _ in store.runs("shop", experiment_path="experiments/redis-failover.json")
        ] == [
            "run-00003",
            "run-00002",
            "run-00001",
        ]


def test_saving_a_run_again_replaces_it(store_url: str) -> None:
    record = record_for(1, samples=10)
    regraded = Grade(record.run_id, "shop", record.experiment_title, Verdict.FAIL, 25.0, ())
    with open_store(store_url) as store:
        store.save(record, grade_for(record))
        store.save(record, grade_for(record))
        assert len(store.runs()) == 1
        store.save(record, regraded)
        assert store.runs() == [(record, regraded)]
    with open_store(store_url) as reopened:
        assert reopened.runs() == [(record, regraded)]


def test_a_grade_of_another_run_is_refused(store_url: str) -> None:
    with open_store(store_url) as store, pytest.raises(ValueError, match="run-00002"):
        store.save(record_for(1, samples=1), grade_for(record_for(2, samples=1)))


def test_light_copies_carry_derived_measurements(store_url: str) -> None:
    # rto_seconds and lost_writes_count are not given: they are derived from samples and events.
    canary = tuple(
        Sample(
            "canary", tick / 10, None if 200 <= tick < 242 else 0.002, ok=not 200 <= tick < 242, region="r"
        )
        for tick in range(600)
    )
    record = replace(record_for(7, samples=0), samples=canary, events=(Event(20.0, "fault.applied"),))
    with open_store(store_url) as store:
        store.save(record, grade_for(record))
        ((light, grade),) = store.runs(full=False)
    assert light.samples == () and light.events == () and light.journal == {}
    assert light.measurement("failover_seconds") == record.measurement("failover_seconds")
    derived = {m.name for m in light.measurements} - {m.name for m in record.measurements}
    assert "rto_seconds" in derived
    assert grade == grade_for(record)


def test_non_finite_numbers_survive_the_round_trip(store_url: str) -> None:
    record = replace(
        record_for(1, samples=1),
        measurements=(
            Measurement("failover_seconds", math.nan, "seconds"),
            Measurement("rto_seconds", 9.0, "seconds"),
        ),
        duration_seconds=math.inf,
    )
    with open_store(store_url) as store:
        store.save(
            record, grade_for(replace(record, measurements=(Measurement("failover_seconds", 1.0, "s"),)))
        )
        ((stored, _),) = store.runs()
    assert math.isnan(stored.measurement("failover_seconds").value)
    assert stored.measurement("rto_seconds").value == 9.0
    assert stored.duration_seconds == math.inf


def test_last_run_times(store_url: str) -> None:
    with open_store(store_url) as store:
        assert store.last_run_at("shop", "experiments/redis-failover.json") is None
        for index in (5, 9, 2):
            record = record_for(index, samples=1)
            store.save(record, grade_for(record))
        latest = datetime(2025, 1, 1, 11, 0, tzinfo=UTC)  # START + 9 h
        assert store.last_run_at("shop", "experiments/redis-failover.json") == latest
        assert store.last_runs("shop") == {"experiments/redis-failover.json": latest}
        assert store.last_run_at("shop", "experiments/other.json") is None


def test_started_at_in_other_offsets_sorts_by_instant(store_url: str) -> None:
    early = replace(record_for(1, samples=1), started_at="2025-01-01T05:00:00+04:00")  # 01:00 UTC
    late = record_for(2, samples=1)  # 04:00 UTC, given in UTC
    with open_store(store_url) as store:
        store.save(late, grade_for(late))
        store.save(early, grade_for(early))
        assert [r.run_id for r, _ in store.runs()] == [late.run_id, early.run_id]


# ---------------------------------------------------------------- where the history lives


def test_default_location_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_STORE", raising=False)
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    assert resolve_store_url(None) == f"sqlite:///{tmp_path / 'state' / 'history.sqlite3'}"
    with open_store(None) as store:
        store.save(record_for(1, samples=1), grade_for(record_for(1, samples=1)))
    assert (tmp_path / "state" / "history.sqlite3").exists()
    monkeypatch.setenv("HARNESS_STORE", str(tmp_path / "plain.db"))
    with open_store(None) as store:
        assert store.runs() == []
    assert (tmp_path / "plain.db").exists()
    assert resolve_store_url("sqlite:///x.db") == "sqlite:///x.db"


def test_bad_urls_and_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=re.escape("expected sqlite:///PATH, postgresql://... or a file path, got a mysql")
    ):
        open_store("mysql://user:secret@db/history")
    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("these are notes, not a database " * 100)
    with pytest.raises(ConfigError, match=f"{not_a_database}: not a SQLite history"):
        open_store(str(not_a_database))


def test_passwords_never_reach_messages() -> None:
    assert (
        redact_url("postgresql://harness:s3cret@db:5432/history")
        == "postgresql://harness:***@db:5432/history"
    )
    assert redact_url("postgresql://harness@db/history") == "postgresql://harness@db/history"


def test_unreachable_postgres_is_an_environment_problem() -> None:
    from harness.errors import EnvironmentProblem

    with pytest.raises(EnvironmentProblem, match=r"postgresql://u:\*\*\*@127.0.0.1:1/h") as error:
        open_store("postgresql://u:hunter2@127.0.0.1:1/h?connect_timeout=2")
    assert "hunter2" not in str(error.value)


# ---------------------------------------------------------------- crashes


def _kill_while_writing(url: str, first: int, acknowledged_runs: int) -> list[str]:
    """Start a writer, let it commit some runs, kill -9 it mid-stream; the ids it acknowledged."""
    writer = subprocess.Popen(
        [sys.executable, str(PROCESSES), "write", url, str(first)], stdout=subprocess.PIPE, text=True
    )
    acknowledged: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while len(acknowledged) < acknowledged_runs and time.monotonic() < deadline:
            line = writer.stdout.readline()
            if not line:
                break
            acknowledged.append(line.strip())
        time.sleep(random.uniform(0, 0.03))  # somewhere inside the next save
    finally:
        writer.kill()  # SIGKILL: no handler, no cleanup, wherever the writer is
        writer.wait(timeout=30)
        reached = len(acknowledged)
        acknowledged += writer.stdout.read().split()  # committed while we slept
        writer.stdout.close()
    assert reached == acknowledged_runs, "the writer stopped early"
    return acknowledged


def test_kill_9_mid_stream_loses_no_run_and_leaves_no_partial_one(store_url: str) -> None:
    before: set[str] = set()
    for round_runs in (6, 3, 5, 4):  # four kills, each at a random point of a save
        acknowledged = _kill_while_writing(store_url, len(before), round_runs)
        with open_store(store_url) as store:
            stored = store.runs()
        ids = {record.run_id for record, _ in stored}
        assert before <= ids  # no earlier run lost
        # Every run the writer acknowledged is there; at most the one in flight was committed too.
        assert set(acknowledged) <= ids - before
        assert len(ids - before) - len(acknowledged) in (0, 1)
        for record, grade in stored:  # and every stored run is whole
            index = int(record.run_id.removeprefix("run-"))
            assert record == record_for(index, blob_bytes=BLOB_BYTES)
            assert grade == grade_for(record)
        before = ids
    if store_url.startswith("sqlite:///"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# ---------------------------------------------------------------- record files


def test_write_json_atomic_round_trips_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "run.json"
    write_json_atomic(path, {"run_id": "a", "started_at": START})
    write_json_atomic(path, {"run_id": "b"})
    assert json.loads(path.read_text()) == {"run_id": "b"}
    assert os.listdir(path.parent) == ["run.json"]
    write_text_atomic(tmp_path / "junit.xml", "<testsuites/>")
    assert (tmp_path / "junit.xml").read_text() == "<testsuites/>"


def test_killed_writers_never_leave_a_torn_record_file(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    script = (
        "import sys\nfrom harness.store import write_json_atomic\n"
        "for i in range(1_000_000):\n"
        f"    write_json_atomic({str(path)!r}, {{'i': i, 'pad': 'x' * 200_000}})\n"
        "    print(i, flush=True)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(20):
            last = writer.stdout.readline()
    finally:
        writer.kill()
        writer.wait(timeout=30)
        writer.stdout.close()
    data = json.loads(path.read_text())
    assert data["i"] >= int(last) and data["pad"] == "x" * 200_000
