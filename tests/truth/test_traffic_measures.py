"""Traffic measures (harness.traffic_measures) against records of known truth.

A simulated traffic canary per client region asks a simulated global balancer whose routing over
time is given exactly (who serves which client region when, and when nobody does), so every
figure is known in advance. 16 Hz keeps every send time a binary-exact number.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import pytest
from measure_records import ANSWER_SECONDS, fault, record

from harness import measures, scoring, traffic_measures
from harness.model import Comparison, Event, RunRecord, Sample, Target, Verdict

RATE = 16.0  # 62.5 ms between requests: exact in binary
EAST, WEST, ASIA = "us-east-1", "eu-west-1", "ap-southeast-1"
KILL = "harness.actions.instances.stop_instance"
DRAIN = "harness.actions.traffic.drain_region"
LATENCY = "harness.actions.network.add_latency"

# A route says, for a request of a client region sent at t: who answers ("" = nobody: the
# balancer's own 503) and whether it succeeded.
Route = Callable[[float], tuple[str, bool]]


def stream(client: str, route: Route, end: float = 30.0, latency: float = ANSWER_SECONDS) -> list[Sample]:
    samples, tick = [], 0.0
    while tick < end:
        served_by, ok = route(tick)
        samples.append(
            Sample(
                "traffic",
                tick,
                latency if ok else None,
                ok,
                client,
                latency,
                "" if ok else "HTTPError: HTTP Error 503: Service Unavailable",
                served_by,
            )
        )
        tick += 1.0 / RATE
    return samples


def home(region: str) -> Route:
    return lambda t: (region, True)


def switch(before: str, at: float, after: str, outage_until: float | None = None) -> Route:
    """Served by `before` until `at`; then nobody (503) until `outage_until`; then by `after`."""

    def route(t: float) -> tuple[str, bool]:
        if t < at:
            return before, True
        if outage_until is not None and t < outage_until:
            return "", False
        return after, True

    return route


def events(
    clients: Sequence[str] = (EAST, WEST),
    residency: dict | None = None,
    serving: Sequence[str] = (EAST, WEST),
    home_of: dict | None = None,
) -> list[Event]:
    found = [
        Event(0.0, "traffic.started", "traffic", {"region": c, "rate_hz": RATE, "timeout_seconds": 1.0})
        for c in clients
    ]
    detail = {
        "client_regions": list(clients),
        "serving_regions": list(serving),
        "home": home_of or {c: c for c in clients},
        "health": {"path": "/api/v1/health", "interval_seconds": 0.2, "fall": 3, "rise": 2},
    }
    if residency is not None:
        detail["residency"] = residency
    found.append(Event(0.0, "traffic.settings", "traffic", detail))
    return found


def kill_record(east: Route, west: Route, undone: float | None = 20.0, **settings) -> RunRecord:
    samples = stream(EAST, east) + stream(WEST, west)
    return record(samples, [fault(10.0, undone, KILL, f"api-{EAST}")], events(**settings))


def test_an_api_killed_at_10_s_and_marked_down_at_10_6_s_fails_over_in_the_answer_after() -> None:
    # us-east-1's API killed at 10.0 s; the balancer marks it down at 10.6 s (3 checks of 0.2 s);
    # from then on its clients are served by eu-west-1. Restored at 20.0 s, back home at 20.4 s.
    east = switch(EAST, 10.0, WEST, outage_until=10.6)
    east_back = lambda t: (EAST, True) if t >= 20.4 else east(t)  # noqa: E731
    rec = kill_record(east_back, home(WEST))
    measured = measures.measure(rec, "traffic_failover_seconds")
    # First request sent at or after 10.6 s is at 10.625 s, answered 1 ms later.
    assert measured.value == pytest.approx(10.625 + ANSWER_SECONDS - 10.0)
    assert not measured.lower_bound
    assert "served again by eu-west-1" in measured.evidence
    assert "no failure seen for eu-west-1" in measured.evidence
    failback = measures.measure(rec, "failback_seconds")
    assert failback.value == pytest.approx(20.4375 + ANSWER_SECONDS - 20.0)
    assert not failback.lower_bound


def test_answers_from_a_drained_region_after_the_drain_are_wrongly_served() -> None:
    # The balancer keeps sending us-east-1's clients to the drained us-east-1 until 12 s.
    samples = stream(EAST, switch(EAST, 12.0, WEST)) + stream(WEST, home(WEST))
    rec = record(samples, [fault(10.0, 20.0, DRAIN, EAST)], events())
    measured = measures.measure(rec, "traffic_failover_seconds")
    assert measured.value == pytest.approx(12.0 + ANSWER_SECONDS - 10.0)
    assert "wrongly served: us-east-1 32" in measured.evidence  # 10.0 .. 11.9375 s


def test_a_success_from_a_killed_region_was_served_before_it_died_not_wrongly() -> None:
    # The ledger entry precedes the signal: us-east-1 answers until 10.1 s, then 503 until 10.6 s.
    east = lambda t: (EAST, True) if t < 10.1 else switch(EAST, 10.0, WEST, 10.6)(t)  # noqa: E731
    measured = measures.measure(kill_record(east, home(WEST)), "traffic_failover_seconds")
    # The window opens at the last success's answer (10.0625 s sent), ends at 10.625 s's answer.
    assert measured.value == pytest.approx((10.625 + ANSWER_SECONDS) - (10.0625 + ANSWER_SECONDS))
    assert "wrongly" not in measured.evidence


def test_not_recovered_before_the_undo_is_a_lower_bound_that_fails_never_passes() -> None:
    east = switch(EAST, 10.0, WEST, outage_until=25.0)
    measured = measures.measure(kill_record(east, home(WEST)), "traffic_failover_seconds")
    assert measured.value == pytest.approx(10.0)  # undone at 20 s minus fault at 10 s
    assert measured.lower_bound
    target = Target("t", "traffic_failover_seconds", 60.0, "seconds", Comparison.AT_MOST)
    assert scoring.check_target(target, measured).verdict is Verdict.UNKNOWN
    tight = Target("t", "traffic_failover_seconds", 5.0, "seconds", Comparison.AT_MOST)
    assert scoring.check_target(tight, measured).verdict is Verdict.FAIL


def test_failing_over_to_a_region_residency_forbids_is_no_recovery() -> None:
    # eu-west-1's API killed; its clients may only be served in eu-west-1 but go to us-east-1.
    west = switch(WEST, 10.0, EAST, outage_until=10.6)
    samples = stream(EAST, home(EAST)) + stream(WEST, west)
    rec = record(samples, [fault(10.0, 20.0, KILL, f"api-{WEST}")], events(residency={WEST: [WEST]}))
    measured = measures.measure(rec, "traffic_failover_seconds")
    assert measured.lower_bound and measured.value == pytest.approx(10.0)
    violations = measures.measure(rec, "residency_violations_count")
    # Served by us-east-1 from the first send at or after 10.6 s to the end of the run (30 s).
    expected = sum(1 for s in samples if s.region == WEST and s.served_by == EAST)
    assert expected == int((30.0 - 10.625) * RATE)
    assert violations.value == expected
    assert f"{WEST}: {expected} ({expected} by {EAST})" in violations.evidence
    assert f"0 for {EAST}" in violations.evidence


def test_residency_violations_are_counted_exactly_and_none_is_zero() -> None:
    wrong_at = {5.0, 5.0625, 17.5}  # three requests of eu-west-1 clients answered by us-east-1
    west = lambda t: (EAST, True) if t in wrong_at else (WEST, True)  # noqa: E731
    rec = kill_record(switch(EAST, 10.0, WEST, 10.6), west, residency={WEST: [WEST]})
    measured = measures.measure(rec, "residency_violations_count")
    assert measured.value == 3
    clean = kill_record(switch(EAST, 10.0, WEST, 10.6), home(WEST), residency={WEST: [WEST]})
    assert measures.measure(clean, "residency_violations_count").value == 0


@pytest.mark.parametrize(
    ("residency", "why"),
    [(None, "absent"), ({}, "empty")],
)
def test_residency_without_rules_in_the_record_is_unknown(residency, why) -> None:
    rec = kill_record(switch(EAST, 10.0, WEST, 10.6), home(WEST), residency=residency)
    measured = measures.measure(rec, "residency_violations_count")
    assert measured.value is None and why in measured.evidence


def test_a_successful_answer_without_served_by_makes_residency_and_failover_unknown() -> None:
    anonymous = lambda t: ("" if t == 3.0 else WEST, True)  # noqa: E731
    rec = kill_record(switch(EAST, 10.0, WEST, 10.6), anonymous, residency={WEST: [WEST]})
    for name in ("residency_violations_count", "traffic_failover_seconds"):
        measured = measures.measure(rec, name)
        assert measured.value is None and "X-Served-By" in measured.evidence


def test_no_settings_event_a_missing_client_region_and_a_gap_are_unknown() -> None:
    east = switch(EAST, 10.0, WEST, 10.6)
    base = kill_record(east, home(WEST))
    no_settings = record(base.samples, base.faults, [e for e in base.events if e.kind != "traffic.settings"])
    assert "traffic.settings" in measures.measure(no_settings, "traffic_failover_seconds").evidence

    # Settings name three client regions; only two canaries started.
    settings = Event(
        0.0,
        "traffic.settings",
        "traffic",
        {"client_regions": [EAST, WEST, ASIA], "serving_regions": [EAST, WEST]},
    )
    three = record(base.samples, base.faults, [*events(clients=(EAST, WEST)), settings])
    assert ASIA in measures.measure(three, "traffic_failover_seconds").evidence

    # eu-west-1's canary silent from 12 s to 16 s.
    gap = [s for s in base.samples if not (s.region == WEST and 12.0 <= s.at_seconds < 16.0)]
    measured = measures.measure(record(gap, base.faults, base.events), "traffic_failover_seconds")
    assert measured.value is None and "eu-west-1: no canary sample for" in measured.evidence
    for name in ("traffic_error_ratio", "failback_seconds", "residency_violations_count"):
        assert measures.measure(record(gap, base.faults, base.events), name).value is None


def test_no_failure_after_the_fault_is_unknown_never_zero() -> None:
    measured = measures.measure(kill_record(home(EAST), home(WEST)), "traffic_failover_seconds")
    # us-east-1 keeps answering (a kill that did not take: its effect proof says so).
    assert measured.value is None and "saw no failed or wrongly served request" in measured.evidence
    latency = record(
        stream(EAST, home(EAST)) + stream(WEST, home(WEST)),
        [fault(10.0, 20.0, LATENCY, f"{EAST}->global")],
        events(),
    )
    # A latency fault leaves the region able: no failure at all is unknown too.
    measured = measures.measure(latency, "traffic_failover_seconds")
    assert measured.value is None and "saw no failed or wrongly served request" in measured.evidence


def drain_record(east: Route, undone: float | None = 20.0) -> RunRecord:
    samples = stream(EAST, east) + stream(WEST, home(WEST))
    return record(samples, [fault(10.0, undone, DRAIN, EAST)], events())


def test_a_drain_evacuates_at_the_first_answer_from_elsewhere_after_the_last_from_the_drained() -> None:
    # The request sent at the drain (10.0 s) is still served by us-east-1; the next one by eu-west-1.
    east = lambda t: (EAST, True) if t <= 10.0 or t >= 20.0 else (WEST, True)  # noqa: E731
    rec = drain_record(east)
    measured = measures.measure(rec, "evacuation_seconds")
    assert measured.value == pytest.approx(10.0625 + ANSWER_SECONDS - 10.0)
    assert not measured.lower_bound
    failback = measures.measure(rec, "failback_seconds")
    assert failback.value == pytest.approx(ANSWER_SECONDS)  # the first request at 20.0 s is home


def test_a_drain_not_evacuated_by_the_restore_is_a_lower_bound() -> None:
    measured = measures.measure(drain_record(home(EAST)), "evacuation_seconds")
    assert measured.lower_bound and measured.value == pytest.approx(10.0)
    # Every request served by us-east-1 after the drain is wrongly served too.
    assert measures.measure(drain_record(home(EAST)), "traffic_failover_seconds").lower_bound


def test_a_failback_that_never_comes_is_a_lower_bound_and_no_restore_is_unknown() -> None:
    east = switch(EAST, 10.0, WEST, 10.6)
    measured = measures.measure(kill_record(east, home(WEST)), "failback_seconds")
    assert measured.lower_bound and measured.value == pytest.approx(30.0 - 1 / RATE + ANSWER_SECONDS - 20.0)
    never = measures.measure(kill_record(east, home(WEST), undone=None), "failback_seconds")
    assert never.value is None and "never undone" in never.evidence


def balancer_counts(client: str, at: Sequence[float], requests: Sequence[float], errors: Sequence[float]):
    return [
        Sample("traffic_metrics.requests", t, r, True, client) for t, r in zip(at, requests, strict=True)
    ] + [Sample("traffic_metrics.errors", t, e, True, client) for t, e in zip(at, errors, strict=True)]


def test_error_ratio_p99_and_the_balancer_as_second_witness() -> None:
    east = switch(EAST, 10.0, WEST, outage_until=11.0)  # 16 of 160 requests in [10, 20] fail
    rec = kill_record(east, home(WEST))
    ratio = measures.measure(rec, "traffic_error_ratio")
    in_window = [s for s in rec.samples if s.region == EAST and 10.0 <= s.at_seconds <= 20.0]
    assert ratio.value == pytest.approx(16 / len(in_window))
    assert "worst client region us-east-1" in ratio.evidence
    p99 = measures.measure(rec, "traffic_p99_latency_seconds")
    assert p99.value == pytest.approx(ANSWER_SECONDS) and not p99.lower_bound

    # The balancer counted 170 requests of us-east-1 clients (scrapes at 9.5 s and 20.5 s), 17 5xx.
    counts = balancer_counts(EAST, (9.5, 20.5), (1000.0, 1170.0), (4.0, 21.0)) + balancer_counts(
        WEST, (9.5, 20.5), (1000.0, 1170.0), (0.0, 0.0)
    )
    witnessed = record(rec.samples + tuple(counts), rec.faults, rec.events)
    balancer = measures.measure(witnessed, "traffic_balancer_error_ratio")
    assert balancer.value == pytest.approx(17 / 170)
    target = Target("t", "traffic_error_ratio", 0.2, "ratio")
    check = scoring.check_target(target, ratio, witness=balancer)
    assert (
        check.verdict is Verdict.PASS
        and dict(check.witnesses)["traffic_balancer_error_ratio"] == balancer.value
    )

    # A balancer that counted no 5xx while the canary saw 10 % fail: the witnesses disagree.
    silent = balancer_counts(EAST, (9.5, 20.5), (1000.0, 1170.0), (0.0, 0.0))
    quiet = measures.measure(
        record(rec.samples + tuple(silent), rec.faults, rec.events), "traffic_balancer_error_ratio"
    )
    assert scoring.check_target(target, ratio, witness=quiet).verdict is Verdict.UNKNOWN

    # No scrape before the fault: unknown, never a ratio of the part it saw.
    late = balancer_counts(EAST, (10.5, 20.5), (1000.0, 1170.0), (4.0, 21.0))
    missing = measures.measure(
        record(rec.samples + tuple(late), rec.faults, rec.events), "traffic_balancer_error_ratio"
    )
    assert missing.value is None and "before the fault" in missing.evidence


def test_records_without_traffic_have_no_traffic_measures_and_served_by_round_trips() -> None:
    plain = record([], [fault(10.0, 20.0)], [])
    for name in traffic_measures.DERIVED:
        assert measures.measure(plain, name) is None
    rec = kill_record(switch(EAST, 10.0, WEST, 10.6), home(WEST), residency={WEST: [WEST]})
    again = RunRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert again.samples == rec.samples
    old = rec.to_dict()
    for sample in old["samples"]:
        del sample["served_by"]  # a record stored before served_by existed
    assert RunRecord.from_dict(old).samples[0].served_by == ""
    with_derived = measures.with_derived(rec)
    assert with_derived.measurement("traffic_failover_seconds").value == pytest.approx(0.626)


def test_the_timeline_names_each_step_in_order() -> None:
    east = switch(EAST, 10.0, WEST, outage_until=10.6)
    rec = kill_record(east, home(WEST))
    balancer = [
        Event(10.2, "traffic.check_failed", "traffic", {"region": EAST}),
        Event(10.6, "traffic.server_down", "traffic", {"region": EAST}),
        Event(20.4, "traffic.server_up", "traffic", {"region": EAST}),
    ]
    rec = record(rec.samples, rec.faults, (*rec.events, *balancer))
    steps = [m.what for m in traffic_measures.timeline(rec)]
    assert steps == [
        "fault",
        "health check first failed",
        "balancer marked the region down",
        "first success elsewhere",
        "sustained OK",
        "fault undone",
        "balancer marked the region up",
    ]


def test_p99_counts_the_users_a_slow_answer_held_back_coordinated_omission() -> None:
    # From 12 s to 14 s us-east-1 answers after 2 s: the canary sends one request there, where
    # users at 16 Hz sent 32. Without the correction the one slow request is under 1 % of the
    # window's requests and the p99 would read 1 ms.
    east = stream(EAST, switch(EAST, 10.0, WEST, 10.6))
    slow = [s for s in east if not 12.0 <= s.at_seconds < 14.0]
    slow.append(Sample("traffic", 12.0, 2.0, True, EAST, 2.0, "", WEST))
    rec = record(slow + stream(WEST, home(WEST)), [fault(10.0, 20.0, KILL, f"api-{EAST}")], events())
    p99 = measures.measure(rec, "traffic_p99_latency_seconds")
    assert p99.value >= 2.0 - 4 / RATE  # among the 31 latencies the wait held back (2 s - k/16)
    assert "31 more held back" in p99.evidence


def test_the_timeline_follows_the_backend_of_the_faulted_regions_own_clients() -> None:
    # us-east-1 is also a backup server of eu-west-1's backend, checked on its own schedule: that
    # backend marks it down first, but us-east-1's clients move only when their backend does.
    rec = kill_record(switch(EAST, 10.0, WEST, outage_until=10.6), home(WEST))
    settings = Event(0.0, "traffic.settings", "traffic", {
        "client_regions": [EAST, WEST], "serving_regions": [EAST, WEST],
        "client_backends": {EAST: "client-us-east-1", WEST: "client-eu-west-1"}})  # fmt: skip
    balancer = [
        Event(10.1, "traffic.server_down", "traffic", {"region": EAST, "backend": "client-eu-west-1"}),
        Event(10.6, "traffic.server_down", "traffic", {"region": EAST, "backend": "client-us-east-1"}),
    ]
    rec = record(
        rec.samples,
        rec.faults,
        (*[e for e in rec.events if e.kind != "traffic.settings"], settings, *balancer),
    )
    (down,) = [m for m in traffic_measures.timeline(rec) if m.what == "balancer marked the region down"]
    assert down.at_seconds == 10.6 and "client-us-east-1" in down.detail
