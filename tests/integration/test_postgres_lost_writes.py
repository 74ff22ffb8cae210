"""RPO evidence for PostgreSQL: acknowledged canary writes the primary no longer has are found; with
synchronous commit, the harness's manual failover (kill, promote, repoint) loses none."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import psycopg
import pytest

from harness import primaries
from harness.actions.instances import promote_standby, start_instance, stop_instance
from harness.canary import Canary, lost_writes, targets_from_endpoints
from harness.errors import ConfigError
from harness.sandbox import up
from harness.sandbox.examples import example_scenario
from harness.sandbox.postgres import wants_synchronous_commit


def _acked_at_least(canary: Canary, count: int, timeout_seconds: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while len(canary.acked_writes()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(canary.acked_writes()) >= count


def test_lost_acknowledged_postgres_writes_are_counted(tmp_path: Path) -> None:
    with up(example_scenario(2), tmp_path / "sandbox", components={"postgres"}) as sandbox:
        target = targets_from_endpoints(sandbox.endpoints, ["postgres"])[0]  # the primary region's
        canary = Canary(target, rate_hz=20).start()
        _acked_at_least(canary, 10, 10)
        canary.stop()
        acked = canary.acked_writes()
        assert lost_writes(target, acked) == []
        gone = acked[3]
        with psycopg.connect(target.dsn, autocommit=True) as connection:
            connection.execute("DELETE FROM harness_canary WHERE key = %s", (gone.key,))
        assert lost_writes(target, acked) == [gone]


def _synchronous_scenario():
    return dataclasses.replace(
        example_scenario(3), settings={"sandbox_requirements": {"postgres_synchronous_commit": True}}
    )


def test_synchronous_commit_is_a_validated_scenario_setting() -> None:
    assert wants_synchronous_commit(_synchronous_scenario()) is True
    assert wants_synchronous_commit(example_scenario(3)) is False
    bad = dataclasses.replace(
        example_scenario(3), settings={"sandbox_requirements": {"postgres_synchronous_commit": "yes"}}
    )
    with pytest.raises(ConfigError, match=r"settings\.sandbox_requirements\.postgres_synchronous_commit"):
        wants_synchronous_commit(bad)


def test_manual_failover_with_synchronous_commit_loses_no_acknowledged_write(tmp_path: Path) -> None:
    with up(_synchronous_scenario(), tmp_path / "sandbox", components={"postgres"}) as sandbox:
        configuration = {**sandbox.endpoints, "harness_state_dir": str(tmp_path / "state"), "run_id": "t"}
        old = primaries.postgres_primary(configuration)
        assert old is not None and old.region == "us-east-1"
        with psycopg.connect(configuration["regions"]["us-east-1"]["postgres_dsn"]) as connection:
            assert connection.execute("SHOW synchronous_commit").fetchone() == ("on",)
            assert connection.execute("SHOW synchronous_standby_names").fetchone()[0].startswith("ANY 1 (")

        target = targets_from_endpoints(sandbox.endpoints, ["postgres"])[0]  # the primary region's
        canary = Canary(target, rate_hz=50).start()
        try:
            _acked_at_least(canary, 30)
            killed = stop_instance("postgres-primary", configuration=configuration)
            assert killed["effect_proven"] is True, killed["evidence"]
            promoted = promote_standby(configuration=configuration)
            acked_by_then = len(canary.acked_writes())
            _acked_at_least(canary, acked_by_then + 20)  # clients found the new primary
        finally:
            canary.stop()

        assert promoted["promoted"] is True
        (event,) = promoted["events"]
        assert event["kind"] == "postgres.promoted"
        assert event["detail"]["exact"] is True
        assert event["detail"]["old_primary"] == old.address
        assert event["detail"]["new_primary"] != old.address
        assert event["at_monotonic"] >= killed["at_monotonic"]
        new = primaries.postgres_primary(configuration)
        assert new is not None and new.address == event["detail"]["new_primary"]
        assert lost_writes(target, canary.acked_writes()) == []

        # The other standby follows the new primary: a write there reaches it.
        (follower,) = set(configuration["regions"]) - {old.region, new.region}
        with psycopg.connect(configuration["regions"][new.region]["postgres_dsn"], autocommit=True) as c:
            c.execute("INSERT INTO items (key, value) VALUES ('after-promotion', 'kept')")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with psycopg.connect(configuration["regions"][follower]["postgres_dsn"]) as c:
                if c.execute("SELECT value FROM items WHERE key = 'after-promotion'").fetchone():
                    break
            time.sleep(0.1)
        else:
            pytest.fail(f"{follower} does not replicate from the promoted {new.region}")

        # The old primary comes back as a standby: never two primaries.
        started = start_instance("postgres-primary", configuration=configuration)
        assert started["rejoined_as_standby_of"] == new.address
        assert [p.address for p in primaries.postgres_primaries(configuration)] == [new.address]
