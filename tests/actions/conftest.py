"""Fixtures for the action tests: a fresh Redis sandbox per test, and its configuration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.sandbox import Sandbox, down, up
from harness.sandbox.examples import example_scenario


@pytest.fixture
def redis_estate(tmp_path: Path) -> Iterator[Sandbox]:
    """A Redis-only three-region sandbox (primary, two replicas, three Sentinels) of this test alone."""
    directory = tmp_path / "sandbox"
    try:
        yield up(example_scenario(3), directory, components={"redis"})
    finally:
        down(directory)


@pytest.fixture
def configuration(redis_estate: Sandbox, tmp_path: Path) -> dict[str, Any]:
    """What an experiment would receive: the sandbox's endpoints plus a private ledger directory."""
    return {**redis_estate.endpoints, "harness_state_dir": str(tmp_path / "state"), "run_id": "test-run"}
