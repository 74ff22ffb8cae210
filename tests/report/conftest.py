"""Fixed runs for the report tests: pass, fail, unknown, and one with hostile text."""

from __future__ import annotations

import pytest
from report_records import failing_pair, hostile_pair, passing_pair, unknown_pair

from harness.model import Grade, RunRecord


@pytest.fixture
def passing_run() -> tuple[RunRecord, Grade]:
    return passing_pair()


@pytest.fixture
def failing_run() -> tuple[RunRecord, Grade]:
    return failing_pair()


@pytest.fixture
def unknown_run() -> tuple[RunRecord, Grade]:
    return unknown_pair()


@pytest.fixture
def hostile_run() -> tuple[RunRecord, Grade]:
    return hostile_pair()
