"""Fixtures for the schedule, due and gate tests: a CLI runner and a scenario on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

SCENARIO_YAML = """\
name: shop
regions:
  - name: us-east-1
    primary: true
  - name: eu-west-1
targets:
  failover_time:
    measure: failover_seconds
    at_most: 30s
    critical: true
  replication_lag:
    measure: replication_lag_seconds
    at_most: 5s
  lost_writes:
    measure: lost_writes_count
    at_most: 0
experiments:
  - path: experiments/redis-failover.json
    cadence: daily
    targets: [failover_time, replication_lag, lost_writes]
  - path: experiments/partition.json
    cadence: weekly
    targets: [replication_lag]
  - path: experiments/region-drill.json
    cadence: quarterly
    targets: [failover_time, lost_writes]
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with scenarios/shop.yaml and its experiment files; the working directory."""
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "shop.yaml").write_text(SCENARIO_YAML)
    (tmp_path / "experiments").mkdir()
    for name in ("redis-failover.json", "partition.json", "region-drill.json"):
        (tmp_path / "experiments" / name).write_text('{"title": "x", "method": []}')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARNESS_STORE", raising=False)
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / ".harness"))
    return tmp_path
