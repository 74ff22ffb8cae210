"""Fixed runs for the report tests: pass, fail, unknown, and one with hostile text."""

from __future__ import annotations

import pytest
from report_records import IMG_EVIDENCE, SCRIPT_TITLE, make_grade, make_record

from harness.model import Grade, RunRecord


@pytest.fixture
def passing_run() -> tuple[RunRecord, Grade]:
    record = make_record("run-pass")
    return record, make_grade(record)


@pytest.fixture
def failing_run() -> tuple[RunRecord, Grade]:
    record = make_record(
        "run-fail",
        outage=(20.0, 65.0),
        failover_seconds=45.2,
        lag_seconds=7.5,
        evidence="canary: first failure t+20.00 s, no success before t+65.2 s",
    )
    return record, make_grade(record)


@pytest.fixture
def unknown_run() -> tuple[RunRecord, Grade]:
    record = make_record("run-unknown", failover_seconds=None, lag_seconds=None, with_samples=False)
    return record, make_grade(record)


@pytest.fixture
def hostile_run() -> tuple[RunRecord, Grade]:
    """A record whose title and probe evidence try to inject markup."""
    record = make_record("run-hostile", title=SCRIPT_TITLE, evidence=IMG_EVIDENCE, failover_seconds=31.0)
    return record, make_grade(record)
