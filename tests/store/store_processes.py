"""Deterministic runs, and the child processes the store and lock tests kill.

python store_processes.py write URL FIRST   save runs FIRST, FIRST+1, ... printing each id once committed
python store_processes.py lock STATE_DIR TARGET [URL]   hold the target's lock, print "locked", sleep
python store_processes.py team URL FIRST COUNT SHARED GO   a team's runner: open the history, wait for the
    file GO, save runs FIRST..FIRST+COUNT-1 and the runs 90000..90000+SHARED-1 every runner saves too
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta

from harness.model import Check, Comparison, FaultRecord, Grade, Measurement, RunRecord, Sample, Verdict

START = datetime(2025, 1, 1, 2, 0, tzinfo=UTC)


# Writers save runs this large so that most of a save is spent inside the database transaction
# (encoding JSON is the rest): a kill at a random moment then most often lands mid-transaction.
BLOB_BYTES = 4_000_000


def record_for(index: int, samples: int = 100, blob_bytes: int = 0) -> RunRecord:
    """Run number `index`: the same content every time it is built."""
    return RunRecord(
        run_id=f"run-{index:05d}",
        scenario="shop",
        experiment_title="Redis primary failover",
        experiment_path="experiments/redis-failover.json",
        harness_version="0.1.0",
        started_at=(START + timedelta(hours=index)).isoformat(),
        duration_seconds=60.0,
        status="completed",
        faults=(
            FaultRecord("f", "harness.actions.instances.stop_instance", "redis-primary", 20.0, 40.0, True),
        ),
        samples=tuple(
            Sample("canary", tick * 0.03, 0.002 + (index * tick) % 7 * 1e-4, region="us-east-1")
            for tick in range(samples)
        ),
        measurements=(Measurement("failover_seconds", 4.0 + index % 5 * 0.1, "seconds"),),
        journal={"blob": str(index % 10) * blob_bytes} if blob_bytes else {},
    )


def grade_for(record: RunRecord) -> Grade:
    failover = record.measurement("failover_seconds").value
    check = Check(
        "failover_time",
        "failover_seconds",
        Verdict.PASS,
        failover,
        30.0,
        "seconds",
        Comparison.AT_MOST,
        3,
        True,
        "",
    )
    return Grade(record.run_id, record.scenario, record.experiment_title, Verdict.PASS, 100.0, (check,))


def _write(url: str, first: int) -> None:
    from harness.store import open_store

    with open_store(url) as store:
        for index in range(first, first + 100_000):
            record = record_for(index, blob_bytes=BLOB_BYTES)
            store.save(record, grade_for(record))
            print(record.run_id, flush=True)


def _lock(state_dir: str, target: str, url: str | None) -> None:
    from harness.locking import target_lock

    with target_lock(state_dir, target, store_url=url):
        print("locked", flush=True)
        time.sleep(120)


def _team(url: str, first: int, count: int, shared: int, go: str) -> None:
    from pathlib import Path

    from harness.store import open_store

    with open_store(url) as store:  # every runner creates the schema if missing, at the same time
        deadline = time.monotonic() + 30
        while not Path(go).exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        for index in [*range(first, first + count), *range(90_000, 90_000 + shared)]:
            record = record_for(index, samples=20)
            store.save(record, grade_for(record))
    print("done", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        _write(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "team":
        _team(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    else:
        _lock(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
