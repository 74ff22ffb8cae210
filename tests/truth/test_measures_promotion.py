"""Detection and promotion, and the promotion a failover experiment must show, from known events."""

from __future__ import annotations

import pytest
from measure_records import Outage, canary_stream, fault, record, started

from harness import measures, scoring
from harness.model import Event

RATE = 16.0
OLD, NEW = "127.0.0.1:7001", "127.0.0.1:7002"


def _killed_primary(events: list[Event], target: str = "redis-primary", undone: float = 25.0, **kwargs):
    samples = canary_stream("us-east-1", [Outage(10.0, 16.0)], rate_hz=RATE, end=30.0)
    events = [started("us-east-1", RATE, kind="http"), *events]
    return record(samples, [fault(10.0, undone, target=target)], events, **kwargs)


def _switch(at: float, old: str = OLD, new: str = NEW) -> Event:
    return Event(at, "sentinel.+switch-master", "sentinel 127.0.0.1:26379",
                 {"message": "m", "old_primary": old, "new_primary": new})  # fmt: skip


def _odown(at: float) -> Event:
    return Event(at, "sentinel.+odown", "sentinel 127.0.0.1:26379", {"message": "m"})


def test_a_failover_without_a_promotion_is_missed_even_when_the_canary_recovered() -> None:
    # Sentinel never promoted; the rollback restarted the old primary and the canary recovered.
    unpromoted = _killed_primary([_odown(15.0)])
    failover = measures.measure(unpromoted, "failover_seconds")
    assert failover.value == pytest.approx(6.001)
    assert failover.missed_because.startswith(
        "no promotion: no new primary was named (sentinel.+switch-master, patroni.promoted, "
        "postgres.promoted, redis.promoted) between harness.actions.instances.stop_instance on redis-primary "
        "at 10.000 s and 25.000 s (undone)"
    )
    promotion = measures.measure(unpromoted, "promotion_seconds")
    assert promotion.value is None and promotion.missed_because == failover.missed_because


def test_a_promotion_to_a_different_primary_before_the_undo_is_the_failover() -> None:
    promoted = _killed_primary([_odown(15.0), _switch(15.5)])
    assert measures.measure(promoted, "failover_seconds").missed_because == ""
    promotion = measures.measure(promoted, "promotion_seconds")
    assert promotion.value == pytest.approx(0.5) and promotion.missed_because == ""
    assert "(exact)" in promotion.evidence and NEW in promotion.evidence
    assert measures.measure(promoted, "detection_seconds").value == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("events", "why"),
    [
        ([_odown(15.0), _switch(15.5, OLD, OLD)], "name no new primary different from the old"),
        ([_odown(15.0), _switch(26.0)], "no new primary was named"),  # after the undo: the rollback's
        ([_odown(15.0), _switch(9.0)], "no new primary was named"),  # before the fault
    ],
)
def test_a_promotion_that_is_no_change_or_outside_the_fault_does_not_count(events, why) -> None:
    failover = measures.measure(_killed_primary(events), "failover_seconds")
    assert failover.missed_because.startswith("no promotion: ") and why in failover.missed_because


def test_the_primary_named_in_the_journal_or_its_region_makes_it_a_failover_experiment() -> None:
    journal = {"run": [{"activity": {"provider": {"func": "stop_instance",
                                                   "arguments": {"component": "redis-primary"}}},
                        "output": {"fault_id": "f-10"}}]}  # fmt: skip
    resolved = _killed_primary([_odown(15.0)], target="redis-us-east-1", journal=journal)
    assert measures.measure(resolved, "failover_seconds").missed_because.startswith("no promotion: ")
    replica = _killed_primary([], target="redis-eu-west-1")
    assert measures.measure(replica, "failover_seconds").missed_because == ""
    assert measures.measure(replica, "promotion_seconds") is None  # nothing to time, nothing expected

    samples = canary_stream("us-east-1", [Outage(10.0, 16.0)], rate_hz=RATE, end=30.0)
    region_loss = record(
        samples,
        [fault(10.0, 25.0, "harness.actions.instances.fail_region", "us-east-1")],
        [started("us-east-1", RATE, kind="http")],
        environment={"target": {"primary_region": "us-east-1"}},
    )
    assert measures.measure(region_loss, "failover_seconds").missed_because.startswith("no promotion: ")


def _patroni(at: float, kind: str, poll: float | None = 0.25, **detail) -> Event:
    extra = {"exact": False, **({"poll_interval_seconds": poll} if poll is not None else {})}
    return Event(
        at, kind, "patroni REST API", {"old_primary": "pg-a", "new_primary": "pg-b", **extra, **detail}
    )


def test_a_polled_split_within_one_poll_is_unknown_never_zero() -> None:
    polled = _killed_primary([_patroni(21.5, "patroni.leader-lost"), _patroni(21.5, "patroni.promoted")],
                             target="postgres-primary")  # fmt: skip
    promotion = measures.measure(polled, "promotion_seconds")
    assert promotion.value is None
    assert promotion.evidence.startswith("split not knowable from polling at 0.25 s")
    between = _killed_primary(
        [_patroni(21.5, "patroni.leader-lost", between_polls=True), _patroni(21.75, "patroni.promoted")],
        target="postgres-primary",
    )
    assert measures.measure(between, "promotion_seconds").value is None
    unrecorded = _killed_primary(
        [_patroni(21.0, "patroni.leader-lost", poll=None), _patroni(23.0, "patroni.promoted", poll=None)],
        target="postgres-primary",
    )
    assert "poll interval" in measures.measure(unrecorded, "promotion_seconds").evidence


def test_a_polled_split_beyond_one_poll_is_graded_at_its_upper_end() -> None:
    polled = _killed_primary([_patroni(21.0, "patroni.leader-lost"), _patroni(22.0, "patroni.promoted")],
                             target="postgres-primary")  # fmt: skip
    promotion = measures.measure(polled, "promotion_seconds")
    assert promotion.value == pytest.approx(1.25)  # the leader was lost up to one poll earlier
    detection = measures.measure(polled, "detection_seconds")
    assert detection.value == pytest.approx(11.0) and "polled every 0.25 s" in detection.evidence


def test_an_exact_promotion_from_the_harness_is_timed_as_is() -> None:
    exact = Event(
        12.0, "postgres.promoted", "harness", {"old_primary": "a:1", "new_primary": "b:2", "exact": True}
    )
    promoted = _killed_primary([_odown(11.0), exact], target="postgres-primary")
    promotion = measures.measure(promoted, "promotion_seconds")
    assert promotion.value == pytest.approx(1.0) and promotion.missed_because == ""


def test_a_region_loss_that_hit_no_primary_is_doubted_not_failed() -> None:
    """A suite's earlier failover moved the Redis primary to ap-southeast-1; primary-region-loss then
    failed us-east-1, the scenario's primary region, which held only a replica. Nothing had to fail
    over: "no promotion" would be a false fail, and the RPO of writes never at risk a hollow pass
    (email-triage suite, 2026-12-01). Every check is unknown, naming where the primary was."""
    samples = canary_stream("us-east-1", [], rate_hz=RATE, end=30.0)
    target = {"primary_region": "us-east-1", "primaries_at_start": {"redis": "ap-southeast-1"}}
    moved = record(
        samples,
        [fault(10.0, 25.0, "harness.actions.instances.fail_region", "us-east-1")],
        [started("us-east-1", RATE)],
        environment={"target": target},
    )
    assert measures.measure(moved, "failover_seconds").missed_because == ""
    doubts = scoring.run_doubts(moved)
    assert any("held no primary" in d and "redis primary in ap-southeast-1" in d for d in doubts), doubts

    # The primary was there: the promotion rule stands.
    held = record(
        samples,
        [fault(10.0, 25.0, "harness.actions.instances.fail_region", "us-east-1")],
        [started("us-east-1", RATE)],
        environment={"target": {**target, "primaries_at_start": {"redis": "us-east-1"}}},
    )
    assert measures.measure(held, "failover_seconds").missed_because.startswith("no promotion: ")
    assert not [d for d in scoring.run_doubts(held) if "held no primary" in d]
