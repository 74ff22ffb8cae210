"""Traffic measures: what users of a global balancer saw, derived from a RunRecord alone.

Pure functions, like `harness.measures` (whose outage window, coverage and censoring rules they
reuse, never copy); docs/measures.md "Traffic measures" is their contract. Evidence they read:

* samples of the traffic canary (`probe="traffic"`, region = the CLIENT region the request
  claimed, `served_by` = the region that answered, from the response's X-Served-By);
* one `traffic.started` event per client region (rate, timeout, home region, allowed regions)
  and one `traffic.settings` event (residency rules, health-check settings, serving regions),
  written by `harness.probes.traffic`, so grading needs nothing but the record;
* balancer events `traffic.check_failed`, `traffic.server_down`, `traffic.server_up`,
  `traffic.drain`, `traffic.ready` (polled from HAProxy's runtime API; the timeline);
* the balancer's own counters (`probe="traffic_metrics.requests"` / `"traffic_metrics.errors"`,
  region = client region or "*" for the whole frontend): the second witness of the error ratio.

A module of its own (one concept); it adds its derivations to `harness.measures.DERIVED` when
imported, and harness.measures imports it, so `measures.measure(record, name)` finds them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from harness import measures
from harness.measures import CanaryRun, answer_seconds, percentile
from harness.model import Event, FaultRecord, Measurement, RunRecord, Sample

TRAFFIC = "traffic"
STARTED = "traffic.started"
SETTINGS = "traffic.settings"
METRIC_REQUESTS = "traffic_metrics.requests"
METRIC_ERRORS = "traffic_metrics.errors"
ALL_CLIENTS = "*"  # a balancer counter over every client region (the frontend)
BALANCER_EVENTS = (
    "traffic.check_failed",
    "traffic.server_down",
    "traffic.server_up",
    "traffic.drain",
    "traffic.ready",
)
SOURCE = "traffic canary"
# Faults that take a serving region away: a kill (it cannot serve) or a drain (it must not take new
# requests). A brownout (latency, errors) leaves it able: its slow answers are judged by their
# status and the canary's timeout instead.
UNABLE_ACTIONS = ("stop_instance", "stop_instances", "fail_region", "drain_region")
# After a drain, a request the drained region answers is wrongly served. After a kill, a success
# from the killed region was answered before the process died (the ledger entry is written before
# the signal): served, not wrong; the outage window opens after it.
DRAIN_ACTIONS = ("drain_region",)


# ---------------------------------------------------------------- the record's traffic evidence


@dataclass(frozen=True, slots=True)
class TrafficSettings:
    """What the record says of the traffic layer (event traffic.settings + traffic.started)."""

    client_regions: tuple[str, ...]
    serving_regions: tuple[str, ...]
    residency: Mapping[str, tuple[str, ...]] | None  # None: no residency rules recorded at all
    home: Mapping[str, str]  # client region -> home serving region
    health: Mapping[str, object]
    client_backends: Mapping[str, str] = field(default_factory=dict)  # client region -> balancer backend

    def allowed(self, client: str) -> tuple[str, ...] | None:
        """The regions allowed to serve `client`; None when any region may."""
        if self.residency is None:
            return None
        return self.residency.get(client)

    def forbidden(self, client: str, region: str) -> bool:
        rule = self.allowed(client)
        return rule is not None and region not in rule


def settings(record: RunRecord) -> TrafficSettings | str:
    """The traffic settings the record holds, or what is missing / malformed."""
    found = [e for e in record.events if e.kind == SETTINGS]
    if not found:
        return "no traffic.settings event: the residency rules and health settings are not in the record"
    detail = found[-1].detail
    residency_raw = detail.get("residency")
    residency: dict[str, tuple[str, ...]] | None = None
    if residency_raw is not None:
        if not isinstance(residency_raw, Mapping) or not all(
            isinstance(v, list | tuple) and all(isinstance(x, str) for x in v) for v in residency_raw.values()
        ):
            return f"traffic.settings residency is malformed: {residency_raw!r}"
        residency = {str(k): tuple(v) for k, v in residency_raw.items()}
    started = [e for e in record.events if e.kind == STARTED]
    clients = _strings(detail.get("client_regions")) or tuple(
        sorted({str(e.detail.get("region", "")) for e in started})
    )
    home = (
        {str(k): str(v) for k, v in (detail.get("home") or {}).items()}
        if isinstance(detail.get("home"), Mapping)
        else {}
    )
    for event in started:
        region, home_region = str(event.detail.get("region", "")), event.detail.get("home")
        if region and isinstance(home_region, str) and home_region:
            home.setdefault(region, home_region)
    for client in clients:
        home.setdefault(client, client)
    health = detail.get("health") if isinstance(detail.get("health"), Mapping) else {}
    backends = detail.get("client_backends")
    return TrafficSettings(
        client_backends={str(k): str(v) for k, v in backends.items()}
        if isinstance(backends, Mapping)
        else {},
        client_regions=clients,
        serving_regions=_strings(detail.get("serving_regions")) or clients,
        residency=residency,
        home=home,
        health=dict(health),  # type: ignore[arg-type]
    )


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return ()


def traffic_samples(record: RunRecord) -> list[Sample]:
    return measures.canary_samples(record, probe=TRAFFIC)


def traffic_run(record: RunRecord) -> CanaryRun | str | None:
    """The traffic canary's view of the first disruptive fault (harness.measures' coverage rules)."""
    return measures.canary_run(record, probe=TRAFFIC, started_kind=STARTED)


def faulted_regions(fault: FaultRecord, serving: Sequence[str]) -> tuple[str, ...]:
    """The serving regions the fault names (its target: `api-us-east-1`, `us-east-1`, a link name);
    a region whose name is part of a longer named region (`eu-west-1` in `eu-west-10`) is not."""
    named = [r for r in serving if r and r in fault.target]
    return tuple(r for r in named if not any(o != r and r in o for o in named))


def unable_regions(fault: FaultRecord, serving: Sequence[str]) -> tuple[str, ...]:
    """The serving regions the fault leaves unable (its API killed, the region failed) or barred
    (drained) from serving new requests: a request one of them answers meanwhile is wrongly served.
    A killed Redis or PostgreSQL of a region is not: its API still answers (perhaps with errors)."""
    func = _func(fault)
    if func in ("stop_instance", "stop_instances"):
        return tuple(r for r in serving if fault.target == f"api-{r}")
    if func in ("fail_region", "drain_region"):
        return tuple(r for r in serving if fault.target == r)
    return ()


def _func(fault: FaultRecord) -> str:
    return fault.action.rsplit(".", 1)[-1]


def _fmt(seconds: float) -> str:
    return f"{seconds:.3f} s"


def _missing(name: str, unit: str, evidence: str, source: str = SOURCE) -> Measurement:
    return Measurement(name, None, unit, source, evidence)


# ---------------------------------------------------------------- right and wrong answers


@dataclass(frozen=True, slots=True)
class Judged:
    """The traffic samples re-read as "served right" (ok) or not, for harness.measures' windows."""

    samples: tuple[Sample, ...]
    wrong: Mapping[str, int]  # client region -> requests answered by a region that should not have
    unlabelled: int  # successful answers without a serving region


def judge(run: CanaryRun, traffic: TrafficSettings) -> Judged:
    """Each request is right when it succeeded, named its serving region, that region is allowed
    for its client region, and it is not a drained region answering a request sent during the
    drain."""
    fault = run.fault
    unable = unable_regions(fault, traffic.serving_regions) if _func(fault) in DRAIN_ACTIONS else ()
    end = math.inf if fault.undone_at_seconds is None else fault.undone_at_seconds
    judged, wrong, unlabelled = [], dict.fromkeys(run.regions, 0), 0
    for sample in run.samples:
        why = ""
        if sample.ok and not sample.served_by:
            unlabelled += 1
        elif sample.served_by and traffic.forbidden(sample.region, sample.served_by):
            why = f"served by {sample.served_by}, which residency forbids for {sample.region}"
        elif sample.served_by in unable and fault.applied_at_seconds <= sample.at_seconds <= end:
            why = f"served by {sample.served_by}, {_func(fault)} at {_fmt(fault.applied_at_seconds)}"
        if why and sample.ok:
            wrong[sample.region] = wrong.get(sample.region, 0) + 1
            judged.append(replace(sample, ok=False, error=f"wrongly {why}"))
        else:
            judged.append(sample)
    return Judged(tuple(judged), wrong, unlabelled)


def _prepared(
    record: RunRecord, name: str, unit: str
) -> tuple[CanaryRun, TrafficSettings] | Measurement | None:
    run = traffic_run(record)
    if run is None:
        return None
    if isinstance(run, str):
        return _missing(name, unit, run)
    if run.problem:
        return _missing(name, unit, run.problem)
    traffic = settings(record)
    if isinstance(traffic, str):
        return _missing(name, unit, traffic)
    absent = [c for c in traffic.client_regions if c not in run.regions]
    if absent:
        return _missing(name, unit, f"no traffic canary started for client region(s) {', '.join(absent)}")
    return run, traffic


# ---------------------------------------------------------------- traffic failover


def traffic_failover_seconds(record: RunRecord) -> Measurement | None:
    """Per client region, the first failed or wrongly-served request after the fault → the answer
    of the first of RECOVERY_SUCCESSES consecutive requests served right; the longest client region."""
    name = "traffic_failover_seconds"
    prepared = _prepared(record, name, "seconds")
    if not isinstance(prepared, tuple):
        return prepared
    run, traffic = prepared
    judged = judge(run, traffic)
    if judged.unlabelled:
        return _missing(
            name,
            "seconds",
            f"{judged.unlabelled} successful traffic requests named no serving region (X-Served-By): "
            "a wrongly served request cannot be told apart",
        )
    judged_run = replace(run, samples=judged.samples)
    outages = measures.region_outages(judged_run)
    if not outages:
        return _missing(name, "seconds", _no_failure(judged_run))
    worst = max(outages, key=lambda o: o.value_seconds)
    censored = [o for o in outages if o.lower_bound]
    untouched = [c for c in run.regions if c not in {o.region for o in outages}]
    parts = [f"longest client region {worst.how}", _recovered_by(judged_run, worst)]
    parts += [
        f"{o.region} {o.value_seconds:.3f} s{' (at least)' if o.lower_bound else ''}"
        for o in outages
        if o is not worst
    ]
    if untouched:
        parts.append(f"no failure seen for {', '.join(untouched)}")
    wrong = {r: n for r, n in judged.wrong.items() if n}
    if wrong:
        parts.append("wrongly served: " + ", ".join(f"{r} {n}" for r, n in sorted(wrong.items())))
    if censored and not worst.lower_bound:
        parts.append(f"a lower bound because {', '.join(o.region for o in censored)} had not recovered")
    return Measurement(
        name,
        worst.value_seconds,
        "seconds",
        SOURCE,
        "; ".join(p for p in parts if p),
        lower_bound=bool(censored),
    )


def _recovered_by(run: CanaryRun, outage: measures.RegionOutage) -> str:
    end = outage.window.end_seconds
    if end is None or outage.lower_bound:
        return ""
    answered = [s for s in run.samples if s.region == outage.region and answer_seconds(s) == end and s.ok]
    return f"served again by {answered[0].served_by}" if answered else ""


def _no_failure(run: CanaryRun) -> str:
    fault = run.fault
    until = _fmt(fault.undone_at_seconds) if fault.undone_at_seconds is not None else "the run's end"
    count = sum(1 for s in run.samples if answer_seconds(s) >= fault.applied_at_seconds)
    return (
        f"the traffic canary saw no failed or wrongly served request after the fault: {count} requests "
        f"of client region(s) {', '.join(run.regions)} from {fault.action} on {fault.target} at "
        f"{_fmt(fault.applied_at_seconds)} to {until} were all served right"
    )


# ---------------------------------------------------------------- residency


def residency_violations_count(record: RunRecord) -> Measurement | None:
    """Requests answered by a region the residency rules forbid for their client region, over the
    whole run (every request counts, before, during and after the fault)."""
    name = "residency_violations_count"
    samples = traffic_samples(record)
    started = [e for e in record.events if e.kind == STARTED]
    if not samples and not started:
        return None
    traffic = settings(record)
    if isinstance(traffic, str):
        return _missing(name, "count", traffic)
    if not traffic.residency:
        return _missing(
            name,
            "count",
            "no residency rule in the record (traffic.settings residency is "
            f"{'absent' if traffic.residency is None else 'empty'}): nothing to count violations against",
        )
    run = traffic_run(record)
    if isinstance(run, CanaryRun) and run.problem:
        return _missing(name, "count", run.problem)
    expected = sorted({str(e.detail.get("region", "")) for e in started} | set(traffic.client_regions))
    silent = [c for c in expected if not any(s.region == c for s in samples)]
    if silent:
        return _missing(name, "count", f"no traffic request of client region(s) {', '.join(silent)}")
    unlabelled = [s for s in samples if s.ok and not s.served_by]
    if unlabelled:
        return _missing(
            name,
            "count",
            f"{len(unlabelled)} successful traffic requests named no serving region (X-Served-By)",
        )
    per_client: dict[str, dict[str, int]] = {}
    for sample in samples:
        if sample.served_by and traffic.forbidden(sample.region, sample.served_by):
            by = per_client.setdefault(sample.region, {})
            by[sample.served_by] = by.get(sample.served_by, 0) + 1
    total = sum(n for by in per_client.values() for n in by.values())
    ruled = ", ".join(f"{c} → {'/'.join(a) or 'none'}" for c, a in sorted(traffic.residency.items()))
    shown = "; ".join(
        f"{client}: {sum(by.values())} (" + ", ".join(f"{n} by {r}" for r, n in sorted(by.items())) + ")"
        for client, by in sorted(per_client.items())
    )
    clean = [c for c in expected if c not in per_client]
    evidence = f"{total} of {len(samples)} requests served by a forbidden region (rules: {ruled})"
    if shown:
        evidence += f"; {shown}"
    if clean:
        evidence += f"; 0 for {', '.join(clean)}"
    return Measurement(name, float(total), "count", SOURCE, evidence)


# ---------------------------------------------------------------- evacuation and failback


def _drain_fault(record: RunRecord) -> FaultRecord | None:
    drains = [f for f in measures.disruptive_faults(record) if _func(f) in DRAIN_ACTIONS]
    return drains[0] if drains else None


def evacuation_seconds(record: RunRecord) -> Measurement | None:
    """Drain applied → the start of a sustained period in which the drained region serves nothing:
    per client region the drained region served before the drain, the answer of the first request
    served elsewhere after the last request the drained region answered (sent at or after the
    drain); the latest client region."""
    name = "evacuation_seconds"
    fault = _drain_fault(record)
    if fault is None:
        return None
    prepared = _prepared(record, name, "seconds")
    if not isinstance(prepared, tuple):
        return prepared
    run, traffic = prepared
    drained = unable_regions(fault, traffic.serving_regions)
    if len(drained) != 1:
        return _missing(
            name, "seconds", f"the drain's target {fault.target!r} names no single serving region"
        )
    region = drained[0]
    applied, undone = fault.applied_at_seconds, fault.undone_at_seconds
    unlabelled = [s for s in run.samples if s.ok and not s.served_by]
    if unlabelled:
        return _missing(name, "seconds", f"{len(unlabelled)} successful requests named no serving region")
    before = sorted({s.region for s in run.samples if s.served_by == region and s.at_seconds < applied})
    if not before:
        return _missing(
            name, "seconds", f"{region} served no traffic request before the drain: nothing to evacuate"
        )
    end = math.inf if undone is None else undone
    results: dict[str, tuple[float, bool, str]] = {}
    for client in before:
        # Requests sent before the restore (one sent at the restore may rightly go home again).
        mine = [s for s in run.samples if s.region == client and s.at_seconds < end]
        after = [s for s in mine if s.at_seconds >= applied]
        still = [s for s in after if s.served_by == region]
        since = max((s.at_seconds for s in still), default=applied)
        elsewhere = [
            s for s in after if s.ok and s.served_by and s.served_by != region and s.at_seconds > since
        ]
        if not still:
            elsewhere = [s for s in after if s.ok and s.served_by and s.served_by != region]
        if elsewhere:
            first = elsewhere[0]
            results[client] = (
                answer_seconds(first) - applied,
                False,
                f"{client}: {len(still)} request(s) sent after the drain served by {region}, then served by "
                f"{first.served_by} from {_fmt(answer_seconds(first))}",
            )
        else:
            stop = undone if undone is not None else max(answer_seconds(s) for s in mine)
            results[client] = (
                stop - applied,
                True,
                f"{client}: not served by another region before "
                + (
                    f"the restore at {_fmt(stop)}"
                    if undone is not None
                    else f"the last sample ({_fmt(stop)})"
                ),
            )
    worst = max(results, key=lambda c: results[c][0])
    value, _censored, how = results[worst]
    others = [results[c][2] for c in sorted(results) if c != worst]
    evidence = f"drain of {region} at {_fmt(applied)}; latest {how}" + (
        "; " + "; ".join(others) if others else ""
    )
    return Measurement(
        name, value, "seconds", SOURCE, evidence, lower_bound=any(r[1] for r in results.values())
    )


def failback_seconds(record: RunRecord) -> Measurement | None:
    """The faulted region restored (the fault undone) → its home clients served at home again: per
    client region whose home it is, the answer of the first of RECOVERY_SUCCESSES consecutive
    successful requests served by the home region sent after the restore; the latest client region."""
    name = "failback_seconds"
    fault = measures.first_fault(record)
    if fault is None or _func(fault) not in UNABLE_ACTIONS:
        return None
    prepared = _prepared(record, name, "seconds")
    if not isinstance(prepared, tuple):
        return prepared
    run, traffic = prepared
    regions = unable_regions(fault, traffic.serving_regions)
    if not regions:
        return None  # not a fault of a serving region (a database kill): nothing to fail back
    restored = fault.undone_at_seconds
    if restored is None:
        return _missing(
            name, "seconds", f"{fault.action} on {fault.target} was never undone: nothing to fail back"
        )
    clients = [c for c in run.regions if traffic.home.get(c) in regions]
    if not clients:
        return _missing(
            name, "seconds", f"no client region has its home in {', '.join(regions) or fault.target}"
        )
    results: dict[str, tuple[float, bool, str]] = {}
    for client in clients:
        home = traffic.home[client]
        mine = [s for s in run.samples if s.region == client]
        after = [s for s in mine if s.at_seconds >= restored]
        limit = run.gap_limits.get(client, math.inf)
        back = _first_sustained_home(after, home)
        last = max((answer_seconds(s) for s in mine), default=restored)
        until = answer_seconds(back) if back is not None else last
        gap, gap_from, _ = measures._longest_gap(mine, restored, until)
        if gap > limit:
            return _missing(
                name,
                "seconds",
                f"{client}: no traffic request for {gap:.3f} s from {_fmt(gap_from)} after the restore, "
                f"longer than the {limit:.3f} s a live canary allows",
            )
        if back is None:
            results[client] = (
                last - restored,
                True,
                f"{client}: not served at home ({home}) for {measures.RECOVERY_SUCCESSES} requests in a row "
                f"by the last sample ({_fmt(last)})",
            )
        else:
            results[client] = (
                answer_seconds(back) - restored,
                False,
                f"{client}: served at home ({home}) again from {_fmt(answer_seconds(back))} (answer of the "
                f"first of {measures.RECOVERY_SUCCESSES} in a row)",
            )
    worst = max(results, key=lambda c: results[c][0])
    value, _censored, how = results[worst]
    others = [results[c][2] for c in sorted(results) if c != worst]
    evidence = f"restored at {_fmt(restored)}; latest {how}" + ("; " + "; ".join(others) if others else "")
    return Measurement(
        name, value, "seconds", SOURCE, evidence, lower_bound=any(r[1] for r in results.values())
    )


def _first_sustained_home(after: Sequence[Sample], home: str) -> Sample | None:
    run: list[Sample] = []
    for sample in after:
        if sample.ok and sample.served_by == home:
            run.append(sample)
            if len(run) >= measures.RECOVERY_SUCCESSES:
                return run[0]
        else:
            run = []
    return None


# ---------------------------------------------------------------- error ratio and latency


def _window_by_client(
    record: RunRecord, name: str, unit: str
) -> dict[str, list[Sample]] | Measurement | None:
    prepared = _prepared(record, name, unit)
    if not isinstance(prepared, tuple):
        return prepared
    run, _ = prepared
    by_client = measures._fault_window_samples(run)
    empty = [c for c, samples in by_client.items() if not samples]
    if empty:
        return _missing(name, unit, f"no traffic request in the fault window for {', '.join(empty)}")
    return by_client


def traffic_error_ratio(record: RunRecord) -> Measurement | None:
    """Failed share of the traffic canary's requests overlapping the fault window, worst client region."""
    name = "traffic_error_ratio"
    by_client = _window_by_client(record, name, "ratio")
    if not isinstance(by_client, dict):
        return by_client
    ratios, worst = measures.failed_shares(by_client)
    shown = ", ".join(
        f"{c} {sum(1 for s in by_client[c] if not s.ok)}/{len(by_client[c])}" for c in sorted(by_client)
    )
    return Measurement(
        name,
        ratios[worst],
        "ratio",
        SOURCE,
        f"worst client region {worst}; failed/requests per client region: {shown}",
    )


def traffic_p99_latency_seconds(record: RunRecord) -> Measurement | None:
    """99th percentile latency users of each client region met in the fault window (failures and
    timeouts at their latency), worst client region; a lower bound when it lands on a timeout.

    The canary sends its next request only when the last is answered, so a 2 s answer hides the 39
    users who, at 20 Hz, asked meanwhile (coordinated omission). As HdrHistogram's expected-interval
    correction does, each slow request also stands for the requests its wait held back: latencies
    L - k x interval for every k with L - k x interval >= interval."""
    name = "traffic_p99_latency_seconds"
    by_client = _window_by_client(record, name, "seconds")
    if not isinstance(by_client, dict):
        return by_client
    rates = _rates(record)
    latencies = {c: _user_latencies(samples, 1.0 / rates.get(c, 20.0)) for c, samples in by_client.items()}
    p99s = {c: percentile((value for value, _ in found), 0.99) for c, found in latencies.items()}
    worst = max(p99s, key=lambda c: (p99s[c], c))
    value = p99s[worst]
    censored = any(timed_out and latency <= value for latency, timed_out in latencies[worst])
    shown = ", ".join(f"{c} {p99s[c] * 1000:.1f} ms" for c in sorted(p99s))
    held = len(latencies[worst]) - len(by_client[worst])
    evidence = (
        f"worst client region {worst}; p99 per client region: {shown}; {len(by_client[worst])} requests of "
        f"{worst} in the window, {held} more held back by slow answers (coordinated omission corrected)"
    )
    if censored:
        evidence += "; the p99 is a timeout, so the latency is at least this"
    return Measurement(name, value, "seconds", SOURCE, evidence, lower_bound=censored)


def _rates(record: RunRecord) -> dict[str, float]:
    rates = {}
    for event in record.events:
        if event.kind == STARTED:
            rate = event.detail.get("rate_hz")
            if isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0:
                rates[str(event.detail.get("region", ""))] = float(rate)
    return rates


def _user_latencies(samples: Sequence[Sample], interval: float) -> list[tuple[float, bool]]:
    """(latency, from a timeout) per request, plus those its wait held back (see above)."""
    found = []
    for sample in samples:
        latency, timed_out = answer_seconds(sample) - sample.at_seconds, measures.is_timeout(sample)
        found.append((latency, timed_out))
        missing = latency - interval
        while missing >= interval:
            found.append((missing, timed_out))
            missing -= interval
    return found


def traffic_balancer_error_ratio(record: RunRecord) -> Measurement | None:
    """The balancer's own count (second witness of traffic_error_ratio): 5xx ÷ requests between the
    last scrape at or before the fault and the first at or after its undo, per client region when
    the balancer counts per client region, worst client region."""
    name = "traffic_balancer_error_ratio"
    requests = [s for s in record.samples if s.probe == METRIC_REQUESTS]
    errors = [s for s in record.samples if s.probe == METRIC_ERRORS]
    if not requests and not errors:
        return None
    source = "balancer metrics"
    fault = measures.first_fault(record)
    if fault is None:
        return _missing(name, "ratio", "no disruptive fault journalled: no window to count over", source)
    start, end = fault.applied_at_seconds, fault.undone_at_seconds
    if end is None:
        return _missing(name, "ratio", "the fault was never undone: the balancer's window has no end", source)
    series = sorted({s.region for s in requests})
    per_client = [r for r in series if r != ALL_CLIENTS]
    if not per_client:
        traffic = settings(record)
        if isinstance(traffic, str) or len(traffic.client_regions) != 1:
            return _missing(
                name,
                "ratio",
                "the balancer counts all client regions together: not comparable with the worst "
                "client region",
                source,
            )
        per_client = [ALL_CLIENTS]
    ratios: dict[str, tuple[float, float]] = {}
    for client in per_client:
        counted = []
        for kind in (requests, errors):
            mine = sorted((s for s in kind if s.region == client), key=lambda s: s.at_seconds)
            # A scrape read before the fault when it was answered by then; after the undo when it
            # was sent after it.
            before = [
                s
                for s in mine
                if s.at_seconds + (s.latency_seconds or 0.0) <= start and s.ok and s.value is not None
            ]
            after = [s for s in mine if s.at_seconds >= end and s.ok and s.value is not None]
            if not before or not after:
                edge = "before the fault" if not before else "after the undo"
                return _missing(name, "ratio", f"no balancer scrape of {client} {edge}", source)
            growth = (after[0].value or 0.0) - (before[-1].value or 0.0)
            if growth < 0:
                return _missing(
                    name, "ratio", f"a balancer counter of {client} went down (a restart)", source
                )
            counted.append(growth)
        total, failed = counted
        if total > 0:
            ratios[client] = (failed / total, total)
    if not ratios:
        return _missing(name, "ratio", "the balancer counted no request in the fault window", source)
    worst = max(ratios, key=lambda c: (ratios[c][0], c))
    shown = ", ".join(f"{c} {ratios[c][0]:.3f} of {ratios[c][1]:.0f}" for c in sorted(ratios))
    return Measurement(
        name,
        ratios[worst][0],
        "ratio",
        source,
        f"worst {worst}; 5xx share per client region between the scrapes around {_fmt(start)} and "
        f"{_fmt(end)}: {shown}",
    )


# ---------------------------------------------------------------- the timeline


@dataclass(frozen=True, slots=True)
class Moment:
    at_seconds: float
    what: str
    detail: str = ""


def timeline(record: RunRecord) -> list[Moment]:
    """The report's timeline of a traffic run: fault, health check first failed, balancer marked the
    region down, first success elsewhere, sustained OK (per client region), restore, failback."""
    fault = measures.first_fault(record)
    if fault is None or not any(s.probe == TRAFFIC for s in record.samples):
        return []
    moments = [
        Moment(fault.applied_at_seconds, "fault", f"{fault.action.rsplit('.', 1)[-1]} on {fault.target}")
    ]
    traffic = settings(record)
    serving = traffic.serving_regions if isinstance(traffic, TrafficSettings) else ()
    regions = set(faulted_regions(fault, serving))
    # The balancer steps that matter are those of the backends serving the faulted region's own
    # clients (another client region's backend checks the same server on its own schedule).
    backends: set[str] = set()
    if isinstance(traffic, TrafficSettings):
        homed = [c for c in traffic.client_regions if traffic.home.get(c) in regions]
        backends = {traffic.client_backends[c] for c in homed if c in traffic.client_backends}
    end = math.inf if fault.undone_at_seconds is None else fault.undone_at_seconds
    for kind, label in (
        ("traffic.check_failed", "health check first failed"),
        ("traffic.server_down", "balancer marked the region down"),
        ("traffic.drain", "balancer draining the region"),
    ):
        event = _first(record.events, kind, fault.applied_at_seconds, end, regions, backends)
        if event is not None:
            moments.append(Moment(event.at_seconds, label, _where(event)))
    run = traffic_run(record)
    if isinstance(run, CanaryRun) and isinstance(traffic, TrafficSettings):
        judged = replace(run, samples=judge(run, traffic).samples)
        for outage in measures.region_outages(judged):
            mine = [s for s in judged.samples if s.region == outage.region]
            after = [s for s in mine if s.at_seconds >= outage.window.first_failed_seconds]
            first_ok = next((s for s in after if s.ok), None)
            if first_ok is not None:
                moments.append(
                    Moment(
                        answer_seconds(first_ok),
                        "first success elsewhere",
                        f"{outage.region} clients by {first_ok.served_by}",
                    )
                )
            if outage.window.end_seconds is not None and not outage.lower_bound:
                # Sustained: the last of the RECOVERY_SUCCESSES in a row that ended the outage.
                start = next(
                    i for i, s in enumerate(mine) if s.ok and answer_seconds(s) == outage.window.end_seconds
                )
                run_of = mine[start : start + measures.RECOVERY_SUCCESSES]
                moments.append(
                    Moment(
                        answer_seconds(run_of[-1]),
                        "sustained OK",
                        f"{outage.region} clients, {len(run_of)} in a row",
                    )
                )
    if fault.undone_at_seconds is not None:
        moments.append(Moment(fault.undone_at_seconds, "fault undone", fault.target))
        up = _first(record.events, "traffic.server_up", fault.undone_at_seconds, math.inf, regions, backends)
        up = up or _first(
            record.events, "traffic.ready", fault.undone_at_seconds, math.inf, regions, backends
        )
        if up is not None:
            label = (
                "balancer marked the region up"
                if up.kind == "traffic.server_up"
                else "balancer took the region back"
            )
            moments.append(Moment(up.at_seconds, label, _where(up)))
    evacuated = evacuation_seconds(record)
    if evacuated is not None and evacuated.value is not None and not evacuated.lower_bound:
        moments.append(Moment(fault.applied_at_seconds + evacuated.value, "evacuated: served elsewhere", ""))
    back = failback_seconds(record)
    if (
        back is not None
        and back.value is not None
        and not back.lower_bound
        and fault.undone_at_seconds is not None
    ):
        moments.append(Moment(fault.undone_at_seconds + back.value, "clients served at home again", ""))
    return sorted(moments, key=lambda m: m.at_seconds)


def _first(
    events: Sequence[Event], kind: str, start: float, end: float, regions: set[str], backends: set[str]
) -> Event | None:
    found = [
        e
        for e in events
        if e.kind == kind
        and start <= e.at_seconds <= end
        and (not regions or e.detail.get("region") in regions)
        and (not backends or e.detail.get("backend") in backends)
    ]
    return min(found, key=lambda e: e.at_seconds, default=None)


def _where(event: Event) -> str:
    backend = event.detail.get("backend")
    return f"{event.detail.get('region', '')}" + (f" in {backend}" if backend else "") + " (polled)"


DERIVED = {
    "traffic_failover_seconds": traffic_failover_seconds,
    "residency_violations_count": residency_violations_count,
    "evacuation_seconds": evacuation_seconds,
    "failback_seconds": failback_seconds,
    "traffic_error_ratio": traffic_error_ratio,
    "traffic_p99_latency_seconds": traffic_p99_latency_seconds,
    "traffic_balancer_error_ratio": traffic_balancer_error_ratio,
}
measures.DERIVED.update(DERIVED)
