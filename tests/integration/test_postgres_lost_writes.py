"""RPO evidence for PostgreSQL: acknowledged canary writes the primary no longer has are found."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from harness.canary import Canary, lost_writes, targets_from_endpoints
from harness.sandbox import up
from harness.sandbox.examples import example_scenario


def test_lost_acknowledged_postgres_writes_are_counted(tmp_path: Path) -> None:
    with up(example_scenario(2), tmp_path / "sandbox", components={"postgres"}) as sandbox:
        (target,) = targets_from_endpoints(sandbox.endpoints, ["postgres"])
        canary = Canary(target, rate_hz=20).start()
        deadline = time.monotonic() + 10
        while len(canary.acked_writes()) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        canary.stop()
        acked = canary.acked_writes()
        assert len(acked) >= 10
        assert lost_writes(target, acked) == []
        gone = acked[3]
        with psycopg.connect(target.dsn, autocommit=True) as connection:
            connection.execute("DELETE FROM harness_canary WHERE key = %s", (gone.key,))
        assert lost_writes(target, acked) == [gone]
