"""Known truth for the active-active measures (harness.convergence_measures): records built the way
the convergence probe writes them, with every figure known in advance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from harness import measures, scoring
from harness.model import Event, FaultRecord, Measurement, RunRecord, Sample, Target, Verdict

REGIONS = ("a", "b")
PAIRS = ("a->b", "b->a")
T0 = 1_800_000_000_000_000  # commit timestamps, microseconds since 1970
HEAL = 8.0
PARTITION = FaultRecord("f1", "harness.actions.network.partition_regions", "a<->b", 3.0, HEAL, True)


def started(**overrides: Any) -> Event:
    detail = {
        "token": "cvtest",
        "regions": list(REGIONS),
        "pairs": list(PAIRS),
        "rate_hz": 10.0,
        "register_rate_hz": 4.0,
        "keys_per_epoch": 2,
        "epoch_seconds": 1.0,
        "poll_seconds": 0.005,
        "digest_seconds": 0.25,
        "timeout_seconds": 120.0,
        "sustain_seconds": 1.0,
        **overrides,
    }
    return Event(0.0, "convergence.started", "convergence", detail)


def write(
    at: float, key: str, value: str, commit_us: int | None, prev: str | None = None, acked: bool = True
) -> Event:
    origin = value.split(":")[0]
    detail = {
        "key": key,
        "value": value,
        "origin": origin,
        "acked": acked,
        "prev": prev,
        "commit_us": commit_us,
    }
    return Event(at, "convergence.register_write", "convergence", detail)


def final(
    region: str, registers: Mapping[str, tuple[str, int]], missing: Sequence[str] = (), at: float = 20.0
) -> Event:
    rows = {k: {"value": v, "origin": v.split(":")[0], "commit_us": c} for k, (v, c) in registers.items()}
    detail = {"region": region, "registers": rows, "elements_held": 0, "missing_elements": list(missing)}
    return Event(at, "convergence.final", "convergence", detail)


def digest(at: float, region: str, epoch: int, value: str | None) -> Event:
    return Event(
        at,
        "convergence.digest",
        "convergence",
        {"region": region, "epoch": epoch, "digest": value, "rows": 1},
    )


def stopped(at: float = 19.0, acked: int = 10) -> Event:
    detail = {
        "token": "cvtest",
        "acked_elements": {"a": acked // 2, "b": acked - acked // 2},
        "stale_reads": {},
    }
    return Event(at, "convergence.stopped", "convergence", detail)


def propagation(pair: str, at: float, value: float, ok: bool = True) -> Sample:
    return Sample("propagation", at, value, ok, pair, None, "" if ok else f"not seen within {value:.3f} s")


def record(
    events: Sequence[Event] = (),
    samples: Sequence[Sample] = (),
    faults: Sequence[FaultRecord] = (PARTITION,),
    with_started: bool = True,
    **started_detail: Any,
) -> RunRecord:
    every = ((started(**started_detail),) if with_started else ()) + tuple(events)
    return RunRecord(
        run_id="r",
        scenario="s",
        experiment_title="active-active partition",
        experiment_path="experiments/active-active-partition.yaml",
        harness_version="test",
        started_at="2026-01-01T00:00:00+00:00",
        duration_seconds=21.0,
        status="completed",
        events=tuple(sorted(every, key=lambda e: e.at_seconds)),
        samples=tuple(samples),
        faults=tuple(faults),
    )


def measured(rec: RunRecord, name: str) -> Measurement:
    found = measures.measure(rec, name)
    assert found is not None, name
    return found


def agreed_digests(until_epoch: int = 8, changed: Mapping[int, float] | None = None) -> list[Event]:
    """Both regions' digests of epochs 0..until_epoch, first seen when the epoch closed; the
    epochs in `changed` differ in b until the given time."""
    events = []
    for epoch in range(until_epoch):
        closed = epoch + 1.0 + 0.1
        events.append(digest(closed, "a", epoch, f"d{epoch}"))
        if changed and epoch in changed:
            events.append(digest(closed, "b", epoch, f"b-only{epoch}"))
            events.append(digest(changed[epoch], "b", epoch, f"d{epoch}"))
        else:
            events.append(digest(closed, "b", epoch, f"d{epoch}"))
    return events


def conflicting(k: int) -> tuple[list[Event], dict[str, tuple[str, int]]]:
    """k keys, each written once in a and once in b during the cut, neither having seen the other;
    b's write is 500 ms later by commit timestamp, so b's survives and a's is discarded."""
    events, survivors = [], {}
    for i in range(k):
        key = f"cvtest/e000004/k{i}"
        events.append(write(4.0 + i * 0.01, key, f"a:{i}", T0 + i * 1000))
        events.append(write(4.5 + i * 0.01, key, f"b:{i}", T0 + i * 1000 + 500_000))
        survivors[key] = (f"b:{i}", T0 + i * 1000 + 500_000)
    return events, survivors


def complete(
    events: Sequence[Event], finals_a: Mapping, finals_b: Mapping, missing_a=(), missing_b=()
) -> RunRecord:
    return record([*events, final("a", finals_a, missing_a), final("b", finals_b, missing_b), stopped()])


# ---------------------------------------------------------------- last-write-wins


@pytest.mark.parametrize("k", [1, 7])
def test_k_conflicting_writes_are_k_discarded_and_no_violation(k: int) -> None:
    events, survivors = conflicting(k)
    rec = complete(events, survivors, survivors)
    discarded = measured(rec, "lww_discarded_writes_count")
    violations = measured(rec, "lww_violations_count")
    assert discarded.value == k and not discarded.lower_bound
    assert violations.value == 0, violations.evidence
    assert (
        "a:0" in discarded.evidence
        and f"({k} acknowledged during the fault, 0 outside it)" in discarded.evidence
    )


def test_a_write_built_on_the_other_is_an_overwrite_not_a_discard() -> None:
    key = "cvtest/e000001/k0"
    events = [write(1.2, key, "a:0", T0), write(1.6, key, "b:0", T0 + 400_000, prev="a:0")]
    rec = complete(events, {key: ("b:0", T0 + 400_000)}, {key: ("b:0", T0 + 400_000)})
    assert measured(rec, "lww_discarded_writes_count").value == 0
    assert measured(rec, "lww_violations_count").value == 0


def test_only_the_tip_of_a_losing_branch_counts() -> None:
    """a writes twice on the key (the second built on the first), b once later: one discard."""
    key = "cvtest/e000004/k0"
    events = [
        write(4.0, key, "a:0", T0),
        write(4.2, key, "a:1", T0 + 200_000, prev="a:0"),
        write(4.5, key, "b:0", T0 + 500_000),
    ]
    rec = complete(events, {key: ("b:0", T0 + 500_000)}, {key: ("b:0", T0 + 500_000)})
    discarded = measured(rec, "lww_discarded_writes_count")
    assert discarded.value == 1 and "a:1" in discarded.evidence


def test_a_survivor_older_than_an_acknowledged_write_is_a_violation() -> None:
    events, _ = conflicting(3)
    older = {f"cvtest/e000004/k{i}": (f"b:{i}", T0 + i * 1000 + 500_000) for i in range(3)}
    older["cvtest/e000004/k1"] = ("a:1", T0 + 1000)  # the earlier commit survived: not last-write-wins
    rec = complete(events, older, older)
    violations = measured(rec, "lww_violations_count")
    assert violations.value == 1
    assert "cvtest/e000004/k1: survivor a:1" in violations.evidence and "older" in violations.evidence


def test_regions_that_never_agree_are_violations_and_discards_a_lower_bound() -> None:
    """A region whose replication was stopped keeps its own value and lacks the other's elements."""
    events, survivors = conflicting(2)
    stale = dict(survivors)
    stale["cvtest/e000004/k0"] = ("a:0", T0)
    rec = complete(events, survivors, stale, missing_a=["cvtest/e000004/b/3"])
    violations = measured(rec, "lww_violations_count")
    assert violations.value == 2
    assert (
        "regions never agree" in violations.evidence
        and "element cvtest/e000004/b/3: absent in a" in violations.evidence
    )
    discarded = measured(rec, "lww_discarded_writes_count")
    assert discarded.value == 1 and discarded.lower_bound
    assert measured(rec, "lost_writes_count").value == 0  # b still holds it: not lost everywhere


def test_lww_without_a_region_s_final_state_is_unknown() -> None:
    events, survivors = conflicting(2)
    rec = record([*events, final("a", survivors), stopped()])
    for name in ("lww_discarded_writes_count", "lww_violations_count", "lost_writes_count"):
        found = measured(rec, name)
        assert found.value is None and "b: no convergence.final event" in found.evidence


def test_an_unreadable_final_state_is_unknown() -> None:
    events, survivors = conflicting(1)
    broken = Event(
        20.0, "convergence.final", "convergence", {"region": "b", "error": "OperationalError: refused"}
    )
    rec = record([*events, final("a", survivors), broken, stopped()])
    found = measured(rec, "lww_violations_count")
    assert found.value is None and "refused" in found.evidence


def test_an_acknowledged_write_without_commit_timestamp_is_unknown() -> None:
    events, survivors = conflicting(2)
    events.append(write(4.7, "cvtest/e000004/k0", "a:9", None, prev="b:0"))
    rec = complete(events, survivors, survivors)
    found = measured(rec, "lww_violations_count")
    assert found.value is None and "without a commit timestamp" in found.evidence


def test_malformed_register_write_is_unknown_never_a_crash() -> None:
    bad = Event(
        4.0, "convergence.register_write", "convergence", {"key": "k", "value": "a:0", "acked": "yes"}
    )
    rec = complete([bad], {}, {})
    found = measured(rec, "lww_discarded_writes_count")
    assert found.value is None and "register_write" in found.evidence


# ---------------------------------------------------------------- lost writes


def test_an_element_no_region_holds_is_lost() -> None:
    events, survivors = conflicting(1)
    rec = complete(
        events, survivors, survivors, missing_a=["cvtest/e000004/a/7"], missing_b=["cvtest/e000004/a/7"]
    )
    lost = measured(rec, "lost_writes_count")
    assert lost.value == 1 and "cvtest/e000004/a/7" in lost.evidence and "of 10 acknowledged" in lost.evidence
    assert measured(rec, "lww_violations_count").value == 0  # the regions agree: it is gone everywhere


def test_lost_writes_add_the_canary_s_and_the_convergence_probe_s() -> None:
    rec = complete([], {}, {}, missing_a=["x"], missing_b=["x"])
    canary = (
        Event(
            0.5,
            "canary.started",
            "runner",
            {"region": "a", "kind": "postgres", "rate_hz": 20, "timeout_seconds": 1},
        ),
        Event(
            19.5,
            "writes.verified",
            "runner",
            {"region": "a", "kind": "postgres", "checked": 40, "interval_seconds": 0.05},
        ),
        Event(5.0, "write.lost", "runner", {"region": "a"}),
    )
    combined = RunRecord(**{**rec.to_dict(), "events": rec.events + canary, "faults": rec.faults})
    lost = measured(combined, "lost_writes_count")
    assert lost.value == 2 and "canary:" in lost.evidence and "convergence:" in lost.evidence
    unverified = RunRecord(**{**rec.to_dict(), "events": rec.events + canary[:1], "faults": rec.faults})
    assert measured(unverified, "lost_writes_count").value is None


# ---------------------------------------------------------------- propagation


def test_propagation_p99_is_the_worst_pair_with_every_pair_in_the_evidence() -> None:
    samples = [propagation("a->b", 4.0 + i * 0.04, 0.010 + i * 0.001) for i in range(100)]
    samples += [propagation("b->a", 4.0 + i * 0.04, 0.020) for i in range(100)]
    samples += [propagation("a->b", 1.0, 5.0)]  # before the fault: not graded
    rec = record([stopped()], samples)
    p99 = measured(rec, "propagation_p99_seconds")
    assert p99.value == pytest.approx(0.109) and not p99.lower_bound
    assert "worst pair a->b" in p99.evidence and "b->a p50 20.0 ms" in p99.evidence
    assert "resolution: one poll (5.0 ms)" in p99.evidence


def test_propagation_without_a_fault_grades_every_write() -> None:
    samples = [propagation("a->b", 1.0, 0.5), propagation("b->a", 1.0, 0.002)]
    p99 = measured(record([], samples, faults=()), "propagation_p99_seconds")
    assert p99.value == pytest.approx(0.5) and "no fault journalled" in p99.evidence


def test_a_pair_without_readings_is_unknown_naming_it() -> None:
    samples = [propagation("a->b", 4.0, 0.01)]
    found = measured(record([], samples), "propagation_p99_seconds")
    assert found.value is None and "b->a" in found.evidence


def test_a_write_not_seen_in_time_makes_the_p99_a_lower_bound_that_fails_but_never_passes() -> None:
    samples = [propagation("a->b", 4.0 + i * 0.1, 0.01) for i in range(50)]
    samples += [propagation("b->a", 4.0 + i * 0.1, 0.01) for i in range(49)]
    samples += [propagation("b->a", 6.0, 2.0, ok=False)]
    p99 = measured(record([], samples), "propagation_p99_seconds")
    assert p99.value == pytest.approx(2.0) and p99.lower_bound
    fails = scoring.check_target(Target("p", "propagation_p99_seconds", 1.0, "seconds"), p99)
    assert fails.verdict is Verdict.FAIL
    never_passes = scoring.check_target(Target("p", "propagation_p99_seconds", 10.0, "seconds"), p99)
    assert never_passes.verdict is not Verdict.PASS


def test_propagation_samples_without_the_started_event_are_unknown() -> None:
    found = measured(
        record([], [propagation("a->b", 4.0, 0.01)], with_started=False), "propagation_p99_seconds"
    )
    assert found.value is None and "convergence.started" in found.evidence


def test_no_convergence_evidence_derives_nothing() -> None:
    rec = record([], [], with_started=False)
    for name in ("propagation_p99_seconds", "convergence_seconds", "lww_violations_count"):
        assert measures.DERIVED[name](rec) is None


# ---------------------------------------------------------------- convergence


def test_convergence_is_heal_to_the_last_digest_change_of_data_written_before_it() -> None:
    # epochs 3..6 were written during the cut; b's digests of them match a's from 9.4 s on.
    changed = {3: 9.4, 4: 9.15, 5: 9.4, 6: 8.9}
    rec = record([*agreed_digests(8, changed), stopped(at=19.0)])
    found = measured(rec, "convergence_seconds")
    assert found.value == pytest.approx(1.4) and not found.lower_bound
    assert "heal at 8.000 s" in found.evidence and "digests every 0.250 s" in found.evidence


def test_regions_that_still_differ_at_the_end_give_a_lower_bound() -> None:
    changed = {4: 30.0}  # never within the probe (last round at 19 s)
    events = [e for e in agreed_digests(8, changed) if e.at_seconds <= 19.0]
    rec = record([*events, stopped(at=19.0)])
    found = measured(rec, "convergence_seconds")
    assert found.value == pytest.approx(11.0) and found.lower_bound
    assert "epoch 4" in found.evidence
    target = Target("convergence", "convergence_seconds", 300.0, "seconds")
    assert scoring.check_target(target, found).verdict is not Verdict.PASS
    short = Target("convergence", "convergence_seconds", 5.0, "seconds")
    assert scoring.check_target(short, found).verdict is Verdict.FAIL


def test_agreement_seen_too_briefly_before_the_end_is_a_lower_bound() -> None:
    rec = record([*agreed_digests(8, {5: 18.6}), stopped(at=19.0)])
    found = measured(rec, "convergence_seconds")
    assert found.value == pytest.approx(10.6) and found.lower_bound and "sustain" in found.evidence


def test_an_unreadable_region_must_be_read_again_before_it_counts() -> None:
    events = [*agreed_digests(8), digest(8.5, "b", 2, None), digest(10.0, "b", 2, "d2")]
    found = measured(record([*events, stopped()]), "convergence_seconds")
    assert found.value == pytest.approx(2.0)


def test_a_region_with_no_digest_is_unknown_naming_it() -> None:
    events = [e for e in agreed_digests(8) if not (e.detail["region"] == "b" and e.detail["epoch"] == 2)]
    found = measured(record([*events, stopped()]), "convergence_seconds")
    assert found.value is None and "b epoch 2" in found.evidence


def test_convergence_needs_a_heal() -> None:
    no_fault = measured(record([*agreed_digests(8), stopped()], faults=()), "convergence_seconds")
    assert no_fault.value is None and "no disruptive fault" in no_fault.evidence
    open_fault = FaultRecord("f1", "harness.actions.network.partition_regions", "a<->b", 3.0, None, True)
    # Never healed: every epoch closed by the probe's last round (19.2 s) is compared.
    agreeing = measured(
        record([*agreed_digests(19), stopped(at=19.2)], faults=(open_fault,)), "convergence_seconds"
    )
    assert agreeing.value is None and "never undone" in agreeing.evidence
    differing = [e for e in agreed_digests(19, {4: 30.0}) if e.at_seconds <= 19.2]
    censored = measured(record([*differing, stopped(at=19.2)], faults=(open_fault,)), "convergence_seconds")
    assert censored.value == pytest.approx(16.2) and censored.lower_bound


def test_convergence_without_the_probe_s_end_is_unknown() -> None:
    found = measured(record(agreed_digests(8)), "convergence_seconds")
    assert found.value is None and "convergence.stopped" in found.evidence


def test_the_record_round_trips_through_json_with_the_same_figures() -> None:
    events, survivors = conflicting(3)
    rec = complete([*events, *agreed_digests(8, {4: 9.0})], survivors, survivors)
    again = RunRecord.from_dict(rec.to_dict())
    for name in (
        "lww_discarded_writes_count",
        "lww_violations_count",
        "convergence_seconds",
        "lost_writes_count",
    ):
        assert measured(again, name) == measured(rec, name)


def test_a_cut_of_several_links_heals_when_its_last_link_does() -> None:
    first = FaultRecord("f1", "harness.actions.network.partition_regions", "a<->b", 3.0, 8.0, True)
    second = FaultRecord("f2", "harness.actions.network.partition_regions", "a<->c", 3.1, 8.3, True)
    rec = record([*agreed_digests(8, {4: 9.4}), stopped(at=19.0)], faults=(first, second))
    found = measured(rec, "convergence_seconds")
    assert found.value == pytest.approx(1.1) and "heal at 8.300 s" in found.evidence
    samples = [propagation("a->b", 8.2, 5.0), propagation("b->a", 8.2, 5.0), propagation("a->b", 8.4, 9.0)]
    p99 = measured(record([], samples, faults=(first, second)), "propagation_p99_seconds")
    assert p99.value == pytest.approx(5.0)  # acknowledged after the last heal: not in the window


def test_nothing_written_proves_nothing() -> None:
    """A region whose writes all failed: no conflict and no loss could be seen there, so unknown."""
    events, survivors = conflicting(2)
    only_b = [e for e in events if e.detail["origin"] == "b"]
    rec = complete(only_b, survivors, survivors)
    for name in ("lww_discarded_writes_count", "lww_violations_count"):
        found = measured(rec, name)
        assert found.value is None and "no acknowledged register write in a" in found.evidence
    silent = record([*events, final("a", survivors), final("b", survivors), stopped(acked=1)])
    lost = measured(silent, "lost_writes_count")
    assert lost.value is None and "no acknowledged element in a" in lost.evidence


def test_epochs_the_probe_never_digested_are_missing_not_agreed() -> None:
    """The digests stopped at 5 s (epochs 4..7 never read): the cut's data was never compared."""
    events = [e for e in agreed_digests(8) if e.detail["epoch"] < 4]
    found = measured(record([*events, stopped(at=19.0)]), "convergence_seconds")
    assert found.value is None and "a epoch 4" in found.evidence
    early = measured(record([*agreed_digests(4), stopped(at=5.0)]), "convergence_seconds")
    assert early.value is None and "before the heal" in early.evidence


def test_the_slower_poll_through_a_cut_is_named_in_the_resolution() -> None:
    samples = [propagation("a->b", 4.0, 2.5), propagation("b->a", 4.0, 2.5)]
    rec = record([], samples, slow_poll_seconds=0.05, slow_after_seconds=1.0)
    p99 = measured(rec, "propagation_p99_seconds")
    assert "one poll (5.0 ms; 50.0 ms while a write was outstanding over 1.000 s)" in p99.evidence
