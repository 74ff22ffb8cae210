"""Measurements derived from a RunRecord's raw history: pure functions, no I/O.

Scoring calls these so that re-grading an old record with a better formula needs no rerun.
docs/measures.md is the long-form contract of every measure here (window, aggregation, evidence
required, when unknown, when censored); keep the two in step.

Each derivation returns
* a Measurement with a value (``lower_bound=True`` when the value is censored: the true value is
  at least this much),
* a Measurement whose value is None, with the missing evidence named in ``evidence``, when the
  run was meant to take the measure and the evidence is incomplete (scoring makes that unknown),
* or None when the record holds nothing the measure is about (no canary at all, no lag reading at
  all): then `measure` falls back to what a probe reported.

Times are seconds on the run clock. A canary sample's ``at_seconds`` is the SEND time of its
request; its answer time is ``at_seconds + latency_seconds`` (a failure's answer is when it failed,
a timeout's is when the timeout fired).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.model import Event, FaultRecord, Measurement, RunRecord, Sample

CANARY = "canary"
LAG = "replication_lag"
LAG_EXPORTER = "replication_lag_exporter"

# An outage ends at the answer of the first of this many consecutive successful requests: one
# lucky request in a flapping outage does not end it.
RECOVERY_SUCCESSES = 3
# The runner keeps its canaries sampling this long after the last rollback (harness.runner's
# SETTLE_SECONDS): every region must have samples until then.
SETTLE_SECONDS = 0.5
# A canary's request timeout when the record does not say (harness.canary.REQUEST_TIMEOUT_SECONDS).
DEFAULT_TIMEOUT_SECONDS = 1.0

LOAD_ACTION_PREFIX = "harness.actions.load."
# Records stored before the activities moved under the harness package name them "actions.load.*".
LEGACY_LOAD_ACTION_PREFIX = "actions.load."
DETECTION_KINDS = ("sentinel.+odown", "patroni.leader-lost")
PROMOTION_KINDS = ("sentinel.+switch-master", "patroni.promoted", "postgres.promoted", "redis.promoted")
# Actions that promote by themselves: their effect proof already names the new writer/primary.
_SELF_PROMOTING = ("failover_rds_cluster", "failover_elasticache")
# Actions that take a server away; on the primary they call for a promotion.
_KILLING = ("stop_instance", "fail_region", "stop_instances", "terminate_asg_instances", "terminate_pods")


# ---------------------------------------------------------------- small shared pieces


def percentile(values: Iterable[float], q: float) -> float:
    """The q-quantile (0 ≤ q ≤ 1) of `values`, always one of the values: the smallest value with at
    least a share q of the values at or below it ("higher" method), so it never under-reports a tail.

    Raises ValueError when `values` is empty or q is outside 0..1.
    """
    import numpy  # here: a report's system page, which never asks, loads no numpy

    data = numpy.fromiter(values, dtype=float)
    if data.size == 0:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within 0..1, got {q!r}")
    return float(numpy.quantile(data, q, method="higher"))


def answer_seconds(sample: Sample) -> float:
    """When the request was answered (or failed, or timed out) on the run clock."""
    latency = sample.latency_seconds
    if latency is None:  # records older than the contract: successful requests kept it in `value`
        latency = sample.value if sample.ok and sample.value is not None else 0.0
    return sample.at_seconds + max(0.0, latency)


def is_timeout(sample: Sample) -> bool:
    return sample.error.lower().startswith("timeout")


def is_load(fault: FaultRecord) -> bool:
    """Load (harness.actions.load.*) is journalled like a fault but disrupts nothing by itself."""
    return fault.action.startswith((LOAD_ACTION_PREFIX, LEGACY_LOAD_ACTION_PREFIX))


def disruptive_faults(record: RunRecord) -> list[FaultRecord]:
    return sorted((f for f in record.faults if not is_load(f)), key=lambda f: f.applied_at_seconds)


def first_fault(record: RunRecord) -> FaultRecord | None:
    """The first disruptive fault: the timing origin of every outage measure."""
    faults = disruptive_faults(record)
    return faults[0] if faults else None


def canary_samples(record: RunRecord, region: str | None = None, probe: str = CANARY) -> list[Sample]:
    """Canary samples (of `probe`: the traffic canary's too) in send order (records may hold them
    in any order)."""
    samples = [s for s in record.samples if s.probe == probe and (region is None or s.region == region)]
    return sorted(samples, key=lambda s: (s.at_seconds, answer_seconds(s)))


def _fmt(seconds: float) -> str:
    return f"{seconds:.3f} s"


def _missing(name: str, unit: str, source: str, evidence: str, missed_because: str = "") -> Measurement:
    return Measurement(name, None, unit, source, evidence, missed_because=missed_because)


# ---------------------------------------------------------------- outage windows


@dataclass(frozen=True, slots=True)
class Window:
    """One outage of one region: from the moment the region was last seen serving before its first
    failed request, to the answer of the first of RECOVERY_SUCCESSES consecutive successes."""

    region: str
    # The earliest moment the outage can have begun: the answer of the last successful request
    # before the first failure, but never before the fault (a request in flight when the fault
    # began that then failed opens the window at the fault).
    start_seconds: float
    end_seconds: float | None  # None: not recovered by the last sample
    failed_requests: int
    first_failed_seconds: float  # send time of the first failed request
    in_flight_at_fault: bool = False  # the first failure was sent before the fault, failed after it

    @property
    def duration_seconds(self) -> float | None:
        return None if self.end_seconds is None else self.end_seconds - self.start_seconds


def outage_windows(
    samples: Sequence[Sample],
    fault_at: float | None = None,
    sustain_seconds: Mapping[str, float] | None = None,
) -> list[Window]:
    """Every outage window of every region, in time order (samples must be canary samples).

    Only failures answered at or after `fault_at` open a window (a request in flight when the fault
    began that then failed opens it at `fault_at`). `sustain_seconds` per region: when a region
    runs several canaries their samples interleave, so recovery also needs every sample of the
    region sent within that long after the recovering answer to succeed.
    """
    origin = -math.inf if fault_at is None else fault_at
    by_region: dict[str, list[Sample]] = {}
    for sample in sorted(samples, key=lambda s: (s.at_seconds, answer_seconds(s))):
        by_region.setdefault(sample.region, []).append(sample)
    windows: list[Window] = []
    for region, ordered in by_region.items():
        windows.extend(_region_windows(region, ordered, origin, (sustain_seconds or {}).get(region, 0.0)))
    return sorted(windows, key=lambda w: (w.start_seconds, w.region))


def _region_windows(region: str, ordered: Sequence[Sample], origin: float, sustain: float) -> list[Window]:
    windows: list[Window] = []
    start: float | None = None
    first_failed = 0.0
    failed, in_flight = 0, False
    last_served = -math.inf  # answer time of the latest successful request
    for index, sample in enumerate(ordered):
        if start is None:
            if sample.ok:
                last_served = max(last_served, answer_seconds(sample))
            elif answer_seconds(sample) >= origin:
                in_flight = sample.at_seconds < origin
                first_failed, failed = sample.at_seconds, 1
                floor = last_served if last_served > -math.inf else origin
                start = first_failed if floor == -math.inf else max(origin, min(floor, first_failed))
            continue
        if not sample.ok:
            failed += 1
            continue
        if _recovers(ordered, index, sustain):
            end = answer_seconds(sample)
            windows.append(Window(region, start, end, failed, first_failed, in_flight))
            start, last_served = None, end
    if start is not None:
        windows.append(Window(region, start, None, failed, first_failed, in_flight))
    return windows


def _recovers(ordered: Sequence[Sample], index: int, sustain: float) -> bool:
    """Whether the success at `index` is the first of RECOVERY_SUCCESSES consecutive successes
    (and, with `sustain`, every sample sent up to `sustain` after its answer succeeded)."""
    run = 0
    last_sent = ordered[index].at_seconds
    for sample in ordered[index:]:
        if not sample.ok:
            break
        run += 1
        last_sent = sample.at_seconds
    if run < RECOVERY_SUCCESSES:
        return False
    return sustain <= 0 or last_sent >= answer_seconds(ordered[index]) + sustain


# ---------------------------------------------------------------- the canary's view of a fault


@dataclass(frozen=True, slots=True)
class CanaryRun:
    """Expected canaries, their samples and the window a fault's measures are taken over."""

    fault: FaultRecord
    regions: tuple[str, ...]  # every region that must have samples
    samples: tuple[Sample, ...]
    window_end_seconds: float  # fault undone + settle (or the run's end)
    gap_limits: Mapping[str, float]  # region -> longest allowed gap between samples
    sustain: Mapping[str, float]  # region -> extra sustain for regions with several canaries
    problem: str = ""  # why the canary evidence cannot support a value ("" when it can)

    @property
    def undone_seconds(self) -> float | None:
        return self.fault.undone_at_seconds


def _canary_started(record: RunRecord, kind: str = "canary.started") -> list[Event]:
    return [e for e in record.events if e.kind == kind]


def _has_canary_evidence(
    record: RunRecord, probe: str = CANARY, started_kind: str = "canary.started"
) -> bool:
    return bool(_canary_started(record, started_kind)) or any(s.probe == probe for s in record.samples)


def _gap_limit(rate_hz: float, timeout_seconds: float) -> float:
    """The longest silence a live canary can produce: a request that times out, then the next tick."""
    return max(3.0 / rate_hz, timeout_seconds + 2.0 / rate_hz)


def canary_run(
    record: RunRecord, probe: str = CANARY, started_kind: str = "canary.started"
) -> CanaryRun | str | None:
    """The canary evidence for the first disruptive fault; a str naming what is missing when there is
    no fault to time from; None when the record holds no canary evidence at all. `probe` and
    `started_kind` select another canary's samples and start events (the traffic canary's:
    "traffic", "traffic.started"), judged by the same coverage rules."""
    if not _has_canary_evidence(record, probe, started_kind):
        return None
    fault = first_fault(record)
    if fault is None:
        load = [f for f in record.faults if is_load(f)]
        only = f" (only load: {', '.join(f.action for f in load)})" if load else ""
        return f"no disruptive fault journalled{only}: nothing to time an outage from"
    samples = canary_samples(record, probe=probe)
    run_end = max([record.duration_seconds, *(answer_seconds(s) for s in samples)])
    undone = fault.undone_at_seconds
    window_end = run_end if undone is None else min(undone + SETTLE_SECONDS, run_end)
    started = _canary_started(record, started_kind)
    limits: dict[str, float] = {}
    counts: dict[str, int] = {}
    if started:
        for event in started:
            region = str(event.detail.get("region", ""))
            try:
                rate = float(event.detail["rate_hz"])
                timeout = float(event.detail.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))
            except (KeyError, TypeError, ValueError):
                rate, timeout = math.nan, math.nan
            if not rate > 0 or not timeout >= 0:
                bad = f"{started_kind} for {region or '?'} lacks a positive rate_hz and a timeout_seconds"
                return CanaryRun(fault, (region,), tuple(samples), window_end, {}, {}, bad)
            limits[region] = max(limits.get(region, 0.0), _gap_limit(rate, timeout))
            counts[region] = counts.get(region, 0) + 1
        regions = tuple(sorted(limits))
    else:
        baseline = sorted({s.region for s in samples if s.at_seconds < fault.applied_at_seconds})
        regions = tuple(baseline or sorted({s.region for s in samples}))
        for region in regions:
            limits[region] = _estimated_gap_limit([s for s in samples if s.region == region], fault)
            counts[region] = 1
    sustain = {r: limits[r] for r, n in counts.items() if n > 1}
    run = CanaryRun(fault, regions, tuple(samples), window_end, limits, sustain)
    return replace(run, problem=_coverage_problem(run))


def _estimated_gap_limit(samples: Sequence[Sample], fault: FaultRecord) -> float:
    """Without canary.started: the rate from the median send interval before the fault (else over
    every sample), the timeout from the slowest failure (at least the canary's default)."""
    before = [s.at_seconds for s in samples if s.at_seconds < fault.applied_at_seconds]
    sends = before if len(before) >= 2 else [s.at_seconds for s in samples]
    intervals = [b - a for a, b in itertools.pairwise(sends) if b > a]
    if not intervals:
        return math.inf  # one sample: any silence is possible, so only "no sample" is judged
    interval = statistics.median(intervals)
    timeout = max([DEFAULT_TIMEOUT_SECONDS, *(s.latency_seconds or 0.0 for s in samples if not s.ok)])
    return _gap_limit(1.0 / interval, timeout)


def _coverage_problem(run: CanaryRun) -> str:
    """Every region whose samples do not cover [fault applied, undone + settle], or "".

    A gap is time in which the region had no request in flight: from the latest answer so far to
    the next send (a request that waits, even past several timeouts, is still watching)."""
    start, end = run.fault.applied_at_seconds, run.window_end_seconds
    problems = []
    for region in run.regions:
        ordered = [s for s in run.samples if s.region == region]
        if not any(start <= s.at_seconds <= end for s in ordered):
            problems.append(f"{region}: no canary sample between {_fmt(start)} and {_fmt(end)}")
            continue
        longest, gap_from, gap_to = _longest_gap(ordered, start, end)
        limit = run.gap_limits.get(region, math.inf)
        if longest > limit:
            problems.append(
                f"{region}: no canary sample for {longest:.3f} s (nothing in flight from {_fmt(gap_from)} "
                f"to {_fmt(gap_to)}), longer than the {limit:.3f} s a live canary allows"
            )
    return "; ".join(problems)


def _longest_gap(ordered: Sequence[Sample], start: float, end: float) -> tuple[float, float, float]:
    """(length, from, to) of the longest stretch within [start, end] with no request in flight."""
    covered = start  # watched up to here
    longest = (0.0, start, start)
    for sample in ordered:
        if sample.at_seconds > end:
            break
        if sample.at_seconds > covered:
            longest = max(longest, (sample.at_seconds - covered, covered, sample.at_seconds))
        covered = max(covered, answer_seconds(sample))
    if end > covered:
        longest = max(longest, (end - covered, covered, end))
    return longest


@dataclass(frozen=True, slots=True)
class RegionOutage:
    """A region's outage caused by the fault, as graded."""

    region: str
    window: Window
    value_seconds: float
    lower_bound: bool
    how: str  # evidence text


def region_outages(run: CanaryRun) -> list[RegionOutage]:
    """Per region, the first outage that began after the fault and before it was undone."""
    fault = run.fault
    undone = fault.undone_at_seconds
    windows = outage_windows(run.samples, fault.applied_at_seconds, run.sustain)
    outages = []
    for region in run.regions:
        mine = [w for w in windows if w.region == region and (undone is None or w.start_seconds <= undone)]
        if not mine:
            continue
        window = mine[0]
        opened = (
            f"a request in flight at the fault ({_fmt(fault.applied_at_seconds)}) failed"
            if window.in_flight_at_fault
            else f"first failed request sent at {_fmt(window.first_failed_seconds)}, counted from "
            + (
                f"the fault at {_fmt(window.start_seconds)}"
                if window.start_seconds == fault.applied_at_seconds
                else f"the last success, answered at {_fmt(window.start_seconds)}"
            )
        )
        outages.append(_censored(run, window, opened))
    return outages


def _censored(run: CanaryRun, window: Window, opened: str) -> RegionOutage:
    undone = run.fault.undone_at_seconds
    if window.end_seconds is not None and (undone is None or window.end_seconds <= undone):
        return RegionOutage(
            window.region,
            window,
            window.end_seconds - window.start_seconds,
            False,
            f"{window.region}: {opened}, recovered at {_fmt(window.end_seconds)} (answer of the first of "
            f"{RECOVERY_SUCCESSES} consecutive successes); {window.failed_requests} failed requests",
        )
    last = max(answer_seconds(s) for s in run.samples if s.region == window.region)
    # Censored at the undo only when the samples show the region still failing then (a probe's
    # canary may have stopped earlier: then the bound is its last sample).
    if undone is not None and (window.end_seconds is not None or last >= undone):
        return RegionOutage(
            window.region,
            window,
            undone - window.start_seconds,
            True,
            f"{window.region}: {opened}, still failing when the fault was undone at {_fmt(undone)}: "
            "the recovery may be the undo's doing, so the outage is at least this long",
        )
    return RegionOutage(
        window.region,
        window,
        last - window.start_seconds,
        True,
        f"{window.region}: {opened}, still failing at the last sample ({_fmt(last)})",
    )


def _no_failure(run: CanaryRun) -> str:
    fault = run.fault
    undone = fault.undone_at_seconds
    until = _fmt(undone) if undone is not None else "the run's end"
    count = sum(
        1 for s in run.samples if answer_seconds(s) >= fault.applied_at_seconds and s.region in run.regions
    )
    return (
        f"the canary saw no failure after the fault: {count} requests in "
        f"{len(run.regions)} region(s) ({', '.join(run.regions)}) from {fault.action} on {fault.target} "
        f"at {_fmt(fault.applied_at_seconds)} to {until} all succeeded"
    )


# ---------------------------------------------------------------- failover and RTO


def failover_seconds(record: RunRecord) -> Measurement | None:
    """The longest region's outage: first failed request after the fault → answer of the first of
    RECOVERY_SUCCESSES consecutive successes. For a failover experiment, missed without a promotion."""
    name = "failover_seconds"
    run = canary_run(record)
    if run is None:
        return None
    if isinstance(run, str):
        return _missing(name, "seconds", CANARY, run)
    missed = _missed_promotion(record, run.fault)
    if run.problem:
        return _missing(name, "seconds", CANARY, run.problem, missed)
    outages = region_outages(run)
    if not outages:
        return _missing(name, "seconds", CANARY, _no_failure(run), missed)
    worst = max(outages, key=lambda o: o.value_seconds)
    censored = [o for o in outages if o.lower_bound]
    evidence = f"longest region {worst.how}"
    others = [o for o in outages if o is not worst]
    if others:
        evidence += "; " + "; ".join(
            f"{o.region} {o.value_seconds:.3f} s{' (at least)' if o.lower_bound else ''}" for o in others
        )
    if censored and not worst.lower_bound:
        evidence += f"; a lower bound because {', '.join(o.region for o in censored)} had not recovered"
    return Measurement(
        name,
        worst.value_seconds,
        "seconds",
        CANARY,
        evidence,
        lower_bound=bool(censored),
        missed_because=missed,
    )


def rto_seconds(record: RunRecord) -> Measurement | None:
    """Fault applied → every region's canary green again (the last outage begun before the undo
    ended), censored at the undo when a region was still failing then."""
    name = "rto_seconds"
    run = canary_run(record)
    if run is None:
        return None
    if isinstance(run, str):
        return _missing(name, "seconds", CANARY, run)
    if run.problem:
        return _missing(name, "seconds", CANARY, run.problem)
    fault = run.fault
    undone = fault.undone_at_seconds
    windows = [
        w
        for w in outage_windows(run.samples, fault.applied_at_seconds, run.sustain)
        if w.region in run.regions and (undone is None or w.start_seconds <= undone)
    ]
    if not windows:
        return _missing(name, "seconds", CANARY, _no_failure(run))
    still = [w for w in windows if w.end_seconds is None or (undone is not None and w.end_seconds > undone)]
    if still:
        regions = ", ".join(sorted({w.region for w in still}))
        last = max(answer_seconds(s) for s in run.samples if s.region in {w.region for w in still})
        if undone is not None and (any(w.end_seconds is not None for w in still) or last >= undone):
            return Measurement(
                name,
                undone - fault.applied_at_seconds,
                "seconds",
                CANARY,
                f"{regions} still failing when the fault was undone at {_fmt(undone)} "
                f"(fault at {_fmt(fault.applied_at_seconds)}): the recovery may be the undo's doing",
                lower_bound=True,
            )
        return Measurement(
            name,
            last - fault.applied_at_seconds,
            "seconds",
            CANARY,
            f"{regions} still failing at the last sample ({_fmt(last)})",
            lower_bound=True,
        )
    last_window = max(windows, key=lambda w: w.end_seconds or 0.0)
    recovered = last_window.end_seconds or 0.0
    return Measurement(
        name,
        recovered - fault.applied_at_seconds,
        "seconds",
        CANARY,
        f"fault at {_fmt(fault.applied_at_seconds)}, every region green from {_fmt(recovered)} "
        f"(last to recover: {last_window.region}; {len(windows)} outage window(s))",
    )


# ---------------------------------------------------------------- detection and promotion


def _is_exact(event: Event) -> bool:
    """Sentinel announces on pub/sub (a push source); anything else is exact only when it says so."""
    if "exact" in event.detail:
        return event.detail["exact"] is True
    return event.kind.startswith("sentinel.")


def _poll_interval(event: Event) -> float | None:
    try:
        value = float(event.detail["poll_interval_seconds"])
    except (KeyError, TypeError, ValueError):
        return None
    return value if value > 0 else None


def _describe_source(event: Event) -> str:
    if _is_exact(event):
        return f"{event.kind} at {_fmt(event.at_seconds)} (exact)"
    poll = _poll_interval(event)
    polled = f"polled every {poll:g} s" if poll is not None else "polled, interval not recorded"
    return f"{event.kind} at {_fmt(event.at_seconds)} ({polled})"


def _fault_span(record: RunRecord, fault: FaultRecord) -> tuple[float, float]:
    end = fault.undone_at_seconds
    return fault.applied_at_seconds, (record.duration_seconds if end is None else end)


def _first_event(events: Iterable[Event], kinds: Sequence[str], start: float, end: float) -> Event | None:
    matching = [e for e in events if e.kind in kinds and start <= e.at_seconds <= end]
    return min(matching, key=lambda e: e.at_seconds, default=None)


def _is_promotion(event: Event) -> bool:
    old = str(event.detail.get("old_primary", "") or "")
    new = str(event.detail.get("new_primary", "") or "")
    return event.kind in PROMOTION_KINDS and bool(new) and bool(old) and new != old


def promotion_event(record: RunRecord, fault: FaultRecord | None = None) -> Event | None:
    """The first promotion naming a new primary different from the old one, between the fault
    being applied and undone (exact sources preferred when several announce it)."""
    fault = fault or first_fault(record)
    if fault is None:
        return None
    start, end = _fault_span(record, fault)
    found = [e for e in record.events if _is_promotion(e) and start <= e.at_seconds <= end]
    exact = [e for e in found if _is_exact(e)]
    return min(exact or found, key=lambda e: e.at_seconds, default=None)


def failover_expected(record: RunRecord, fault: FaultRecord | None = None) -> str:
    """Why this run must show a promotion ("" when it need not): its first disruptive fault kills
    or cuts off the primary."""
    fault = fault or first_fault(record)
    if fault is None:
        return ""
    func = fault.action.rsplit(".", 1)[-1]
    if func in _SELF_PROMOTING or func not in _KILLING:
        return ""
    if "primary" in fault.target.lower():
        return f"{fault.action} on {fault.target}"
    if func == "fail_region":
        held = primaries_held(record, fault.target)
        if held is not None:
            return (
                f"{fault.action} on {fault.target}, which held the {' and '.join(held)} primary"
                if held
                else ""
            )
        primary_region = str(_target(record).get("primary_region", ""))
        if primary_region and fault.target == primary_region:
            return f"{fault.action} on the primary region {fault.target}"
        return ""
    if _named_primary_in_journal(record, fault, func):
        return f"{fault.action} on {fault.target} (the experiment named the primary)"
    return ""


def _target(record: RunRecord) -> Mapping[str, Any]:
    """The record's description of its target (`environment.target`); empty when it has none."""
    target = record.environment.get("target") if isinstance(record.environment, Mapping) else None
    return target if isinstance(target, Mapping) else {}


def primaries_at_start(record: RunRecord) -> dict[str, str]:
    """Which region held each primary (by kind: redis, postgres) as the run started, as the runner
    asked Sentinel and the servers; empty when the record does not say (older records, journals)."""
    found = _target(record).get("primaries_at_start")
    if not isinstance(found, Mapping):
        return {}
    return {str(kind): str(region) for kind, region in found.items() if isinstance(region, str) and region}


def primaries_held(record: RunRecord, region: str) -> list[str] | None:
    """The kinds whose primary `region` held at the start; None when the record does not say."""
    found = primaries_at_start(record)
    return sorted(kind for kind, where in found.items() if where == region) if found else None


def region_loss_premise(record: RunRecord) -> str:
    """Why a region loss aimed at the scenario's primary region tests no failover ("" when it
    does or cannot be told): the region held no primary when the run started (a suite's earlier
    failover moved it), so nothing had to fail over and no write was at risk."""
    fault = first_fault(record)
    if fault is None or fault.action.rsplit(".", 1)[-1] != "fail_region":
        return ""
    primary_region = str(_target(record).get("primary_region", ""))
    held = primaries_held(record, fault.target)
    if fault.target != primary_region or held is None or held:
        return ""
    where = ", ".join(
        f"{kind} primary in {region}" for kind, region in sorted(primaries_at_start(record).items())
    )
    return (
        f"{fault.action} failed {fault.target}, the scenario's primary region, but it held no primary "
        f"when the run started ({where}): nothing had to fail over"
    )


def _named_primary_in_journal(record: RunRecord, fault: FaultRecord, func: str) -> bool:
    """Whether the chaoslib journal's activity that applied this fault named a primary (the ledger
    keeps the resolved server, e.g. redis-primary → redis-us-east-1)."""
    entries = record.journal.get("run") if isinstance(record.journal, Mapping) else None
    for entry in entries or ():
        if not isinstance(entry, Mapping):
            continue
        output = entry.get("output")
        activity = entry.get("activity")
        provider = activity.get("provider") if isinstance(activity, Mapping) else None
        if isinstance(output, Mapping) and output.get("fault_id") not in (None, fault.fault_id):
            continue
        if not isinstance(provider, Mapping) or provider.get("func") != func:
            continue
        arguments = provider.get("arguments") or {}
        if isinstance(arguments, Mapping) and any("primary" in str(v).lower() for v in arguments.values()):
            return True
    return False


def _unwatched(record: RunRecord) -> bool:
    """The record says nothing watched for promotions (`environment.event_watchers` empty: a graded
    Chaos Toolkit journal): no promotion event is then no evidence that none happened. Records
    without the key (the runner's) keep the rule that a missing promotion is a miss."""
    watchers = record.environment.get("event_watchers") if isinstance(record.environment, Mapping) else None
    return isinstance(watchers, list | tuple) and not watchers


def _missed_promotion(record: RunRecord, fault: FaultRecord) -> str:
    why = failover_expected(record, fault)
    if not why or promotion_event(record, fault) is not None or _unwatched(record):
        return ""
    start, end = _fault_span(record, fault)
    announced = [e for e in record.events if e.kind in PROMOTION_KINDS and start <= e.at_seconds <= end]
    seen = (
        "; promotion events seen name no new primary different from the old: "
        + ", ".join(f"{e.kind} {dict(e.detail)}" for e in announced[:3])
        if announced
        else ""
    )
    undone = "undone" if fault.undone_at_seconds is not None else "the run ended"
    return (
        f"no promotion: no new primary was named ({', '.join(PROMOTION_KINDS)}) between {why} at "
        f"{_fmt(start)} and {_fmt(end)} ({undone}){seen}"
    )


def detection_seconds(record: RunRecord) -> Measurement | None:
    """Fault applied → the failure is agreed (Sentinel +odown, Patroni leader lost), before the undo."""
    name = "detection_seconds"
    fault = first_fault(record)
    if fault is None:
        return None
    start, end = _fault_span(record, fault)
    detected = _first_event(record.events, DETECTION_KINDS, start, end)
    if detected is None:
        if not failover_expected(record, fault) and not any(e.kind in DETECTION_KINDS for e in record.events):
            return None
        return _missing(
            name,
            "seconds",
            "events",
            f"no detection event ({', '.join(DETECTION_KINDS)}) between the fault at {_fmt(start)} "
            f"and {_fmt(end)}",
        )
    evidence = _describe_source(detected)
    if not _is_exact(detected):
        evidence += ": the failure was agreed at most this long after the fault"
    return Measurement(
        name, detected.at_seconds - fault.applied_at_seconds, "seconds", detected.source or "events", evidence
    )


def promotion_seconds(record: RunRecord) -> Measurement | None:
    """Detection → a new primary is named (Sentinel +switch-master, Patroni or the harness promoting).

    From polled sources the split is known only to a poll interval: within one interval it is
    unknown, beyond it the value is the upper end of what the polls allow."""
    name = "promotion_seconds"
    fault = first_fault(record)
    if fault is None:
        return None
    start, end = _fault_span(record, fault)
    missed = _missed_promotion(record, fault)
    promoted = promotion_event(record, fault)
    if promoted is None:
        if not missed and not any(e.kind in PROMOTION_KINDS for e in record.events):
            return None
        return _missing(
            name,
            "seconds",
            "events",
            f"no promotion event naming a new primary between {_fmt(start)} and {_fmt(end)}",
            missed,
        )
    detected = _first_event(record.events, DETECTION_KINDS, start, promoted.at_seconds)
    source = promoted.source or "events"
    to = f"{_describe_source(promoted)}, new primary {promoted.detail.get('new_primary')}"
    if detected is None:
        # Timed from the fault: at least the promotion's own time, never less.
        return Measurement(
            name,
            promoted.at_seconds - fault.applied_at_seconds,
            "seconds",
            source,
            f"no detection event: timed from the fault at {_fmt(start)} (an upper bound) to {to}",
        )
    split = promoted.at_seconds - detected.at_seconds
    polled = [e for e in (detected, promoted) if not _is_exact(e)]
    if detected.detail.get("between_polls"):
        return _missing(name, "seconds", source,
                        f"split not knowable from polling: {detected.kind} was inferred between two polls "
                        f"at {_fmt(promoted.at_seconds)}")  # fmt: skip
    if polled:
        intervals = [_poll_interval(e) for e in polled]
        if any(i is None for i in intervals):
            return _missing(name, "seconds", source,
                            "split not knowable from polling: the poll interval of "
                            f"{', '.join(e.kind for e in polled)} is not recorded")  # fmt: skip
        poll = max(i for i in intervals if i is not None)
        if split <= poll:
            return _missing(name, "seconds", source,
                            f"split not knowable from polling at {poll:g} s: {detected.kind} at "
                            f"{_fmt(detected.at_seconds)} and {promoted.kind} at "
                            f"{_fmt(promoted.at_seconds)} are within one poll")  # fmt: skip
        # A polled detection happened up to one interval before it was seen: grade the longest split.
        widening = 0.0 if _is_exact(detected) else (_poll_interval(detected) or 0.0)
        return Measurement(
            name,
            split + widening,
            "seconds",
            source,
            f"{_describe_source(detected)} → {to}; polled, graded at the upper end of the split",
            missed_because=missed,
        )
    return Measurement(name, split, "seconds", source, f"{_describe_source(detected)} → {to}",
                       missed_because=missed)  # fmt: skip


# ---------------------------------------------------------------- lost writes and RPO

VERIFIABLE_KINDS = ("redis", "postgres")  # harness.canary.VERIFIABLE_KINDS


def _write_evidence(record: RunRecord) -> tuple[list[Event], str] | None:
    """The writes.verified events, or the reason the verification is incomplete; None when the
    run had no canary that writes verifiably and no verification event."""
    verified = [e for e in record.events if e.kind == "writes.verified"]
    unverified = [e for e in record.events if e.kind == "writes.unverified"]
    expected = [e for e in _canary_started(record) if str(e.detail.get("kind", "")) in VERIFIABLE_KINDS]
    if not (verified or unverified or expected):
        return None
    if unverified:
        names = ", ".join(f"{_canary_name(e)}: {str(e.detail.get('error', ''))[:120]}" for e in unverified)
        return verified, f"acknowledged writes not verified ({names})"
    unmatched = []
    pool = list(verified)
    for canary in expected:
        match = next((v for v in pool if _same_canary(v, canary)), None)
        if match is None:
            unmatched.append(_canary_name(canary))
        else:
            pool.remove(match)
    if unmatched:
        return verified, f"no writes.verified for the canary of {', '.join(unmatched)}"
    if not verified:
        return verified, "no writes.verified event: the acknowledged writes were never read back"
    for event in verified:
        checked, interval = event.detail.get("checked", 0), event.detail.get("interval_seconds", 0.0)
        if not _is_number(checked) or not _is_number(interval) or checked < 0 or interval < 0:
            return verified, f"malformed writes.verified for {_canary_name(event)}: {dict(event.detail)}"
    return verified, ""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _canary_name(event: Event) -> str:
    region = event.detail.get("region")
    kind = event.detail.get("kind")
    return f"{kind or 'canary'} in {region}" if region else str(kind or "a canary")


def _same_canary(verified: Event, started: Event) -> bool:
    """A verification names its canary by region and kind; an older record's does not: then any
    unclaimed verification stands for one canary."""
    for key in ("region", "kind"):
        if key in verified.detail and verified.detail[key] != started.detail.get(key):
            return False
    return True


def lost_writes_count(record: RunRecord) -> Measurement | None:
    """Acknowledged writes the primary no longer has after recovery (every verifiable canary)."""
    found = _write_evidence(record)
    if found is None:
        return None
    verified, problem = found
    if problem:
        return _missing("lost_writes_count", "count", CANARY, problem)
    lost = [e for e in record.events if e.kind == "write.lost"]
    checked = sum(int(e.detail.get("checked", 0)) for e in verified)
    return Measurement(
        "lost_writes_count",
        float(len(lost)),
        "count",
        CANARY,
        f"{len(lost)} of {checked} acknowledged writes lost ({len(verified)} canary(ies) verified)",
    )


def rpo_seconds(record: RunRecord) -> Measurement | None:
    """The span of acknowledged writes lost: first lost acknowledgement → last, plus one write
    interval (0 when none was lost)."""
    found = _write_evidence(record)
    if found is None:
        return None
    verified, problem = found
    if problem:
        return _missing("rpo_seconds", "seconds", CANARY, problem)
    lost = [e for e in record.events if e.kind == "write.lost"]
    if not lost:
        return Measurement("rpo_seconds", 0.0, "seconds", CANARY, "no acknowledged write lost")
    times = sorted(e.at_seconds for e in lost)
    interval = max(float(e.detail.get("interval_seconds", 0.0)) for e in verified)
    return Measurement(
        "rpo_seconds",
        times[-1] - times[0] + interval,
        "seconds",
        CANARY,
        f"{len(lost)} writes acknowledged between {_fmt(times[0])} and {_fmt(times[-1])} were lost",
    )


# ---------------------------------------------------------------- error ratio and latency


def _fault_window_samples(run: CanaryRun) -> dict[str, list[Sample]]:
    """Per region, the requests that overlap the fault window: answered at or after the fault and
    sent at or before its undo."""
    start = run.fault.applied_at_seconds
    end = run.fault.undone_at_seconds
    by_region: dict[str, list[Sample]] = {r: [] for r in run.regions}
    for sample in run.samples:
        if sample.region not in by_region or answer_seconds(sample) < start:
            continue
        if end is not None and sample.at_seconds > end:
            continue
        by_region[sample.region].append(sample)
    return by_region


def _fault_window_by_region(
    record: RunRecord, name: str, unit: str
) -> dict[str, list[Sample]] | Measurement | None:
    """Each region's canary requests overlapping the fault window; or the measurement saying what
    is missing (None: the record has no canary run at all)."""
    run = canary_run(record)
    if run is None:
        return None
    if isinstance(run, str):
        return _missing(name, unit, CANARY, run)
    if run.problem:
        return _missing(name, unit, CANARY, run.problem)
    by_region = _fault_window_samples(run)
    empty = [r for r, samples in by_region.items() if not samples]
    if empty:
        return _missing(name, unit, CANARY, f"no canary request in the fault window for {', '.join(empty)}")
    return by_region


def failed_shares(by_group: Mapping[str, Sequence[Sample]]) -> tuple[dict[str, float], str]:
    """Each group's failed share of its (non-empty) samples, and the worst group (ties: last name)."""
    ratios = {g: sum(1 for s in samples if not s.ok) / len(samples) for g, samples in by_group.items()}
    return ratios, max(ratios, key=lambda g: (ratios[g], g))


def error_ratio(record: RunRecord) -> Measurement | None:
    """Failed share of the canary requests overlapping the fault window, in the worst region."""
    name = "error_ratio"
    by_region = _fault_window_by_region(record, name, "ratio")
    if not isinstance(by_region, dict):
        return by_region
    ratios, worst = failed_shares(by_region)
    total = sum(len(s) for s in by_region.values())
    failed = sum(1 for samples in by_region.values() for s in samples if not s.ok)
    failed_worst = sum(1 for s in by_region[worst] if not s.ok)
    return Measurement(
        name,
        ratios[worst],
        "ratio",
        CANARY,
        f"worst region {worst}: {failed_worst} of {len(by_region[worst])} requests failed; "
        f"all regions: {failed} of {total}",
    )


def canary_p99_latency_seconds(record: RunRecord) -> Measurement | None:
    """99th percentile latency of the canary requests overlapping the fault window, failures and
    timeouts included at their latency, in the worst region; a lower bound when it lands on a timeout."""
    name = "canary_p99_latency_seconds"
    by_region = _fault_window_by_region(record, name, "seconds")
    if not isinstance(by_region, dict):
        return by_region
    p99s = {
        r: percentile((answer_seconds(s) - s.at_seconds for s in samples), 0.99)
        for r, samples in by_region.items()
    }
    worst = max(p99s, key=lambda r: (p99s[r], r))
    value = p99s[worst]
    timeouts = [s for s in by_region[worst] if is_timeout(s)]
    censored = any(answer_seconds(s) - s.at_seconds <= value for s in timeouts)
    evidence = (
        f"worst region {worst}: p99 of {len(by_region[worst])} requests in the fault window "
        f"({len(timeouts)} timed out, {sum(1 for s in by_region[worst] if not s.ok)} failed)"
    )
    if censored:
        evidence += "; the p99 is a timeout, so the latency is at least this"
    return Measurement(name, value, "seconds", CANARY, evidence, lower_bound=censored)


# ---------------------------------------------------------------- replication lag


def _lag_window(record: RunRecord, lag: Sequence[Sample]) -> tuple[float, float]:
    fault = first_fault(record)
    start = fault.applied_at_seconds if fault is not None else -math.inf
    return start, max(s.at_seconds for s in lag)


def _in_lag_window(sample: Sample, start: float, end: float) -> bool:
    """Readings whose marker was written before `end` and still travelling at `start` or later."""
    seen = sample.at_seconds + (sample.value or 0.0)
    return sample.at_seconds <= end and seen >= start


def replication_lag_seconds(record: RunRecord) -> Measurement | None:
    """The worst marker lag over the fault window and recovery (fault applied → last reading),
    every replica the probe named read at least once; else the worst lag a probe reported."""
    name = "replication_lag_seconds"
    lag = sorted((s for s in record.samples if s.probe == LAG), key=lambda s: s.at_seconds)
    required = sorted(
        {
            str(r)
            for e in record.events
            if e.kind == "replication.replicas"
            for r in (e.detail.get("replicas") if isinstance(e.detail.get("replicas"), list | tuple) else ())
        }
    )
    if not lag:
        reported = [m for m in record.measurements if m.name == name]
        if reported:
            return _worst_reported(reported)
        if required:
            return _missing(
                name, "seconds", "marker", f"no lag reading at all; replicas: {', '.join(required)}"
            )
        return None
    start, end = _lag_window(record, lag)
    window = [s for s in lag if _in_lag_window(s, start, end)]
    readings = [s for s in window if s.value is not None]  # not seen in time: a lower bound
    replicas = required or sorted({s.region for s in lag})
    unread = [r for r in replicas if not any(s.region == r for s in readings)]
    span = f"{_fmt(start)} to {_fmt(end)}" if start > -math.inf else f"the run (to {_fmt(end)})"
    if unread:
        return _missing(name, "seconds", "marker", f"no lag reading of {', '.join(unread)} between {span}")
    worst = max(readings, key=lambda s: s.value or 0.0)
    late = [s for s in window if s.value is not None and not s.ok]
    unreachable = sorted({s.region or "?" for s in window if s.value is None})
    evidence = (
        f"worst {worst.value * 1000:.1f} ms on {worst.region} (marker at {_fmt(worst.at_seconds)}) "
        f"over {len(readings)} readings of {len(replicas)} replica(s) from {span}"
    )
    if late:
        late_on = ", ".join(sorted({s.region for s in late}))
        evidence += f"; {len(late)} marker(s) not seen within the probe's timeout ({late_on})"
    if unreachable:
        evidence += f"; unreachable at times: {', '.join(unreachable)}"
    return Measurement(
        name, float(worst.value or 0.0), "seconds", "marker", evidence, lower_bound=bool(late or unreachable)
    )


def _worst_reported(reported: Sequence[Measurement]) -> Measurement:
    """The worst of the lag values probes reported; one missing reading makes it unknown."""
    missing = [m for m in reported if m.value is None]
    if missing:
        return _missing("replication_lag_seconds", "seconds", missing[0].source or "marker",
                        f"a lag probe reported no value: {missing[0].evidence}")  # fmt: skip
    worst = max(reported, key=lambda m: m.value or 0.0)
    return replace(
        worst,
        lower_bound=any(m.lower_bound for m in reported),
        evidence=f"worst of {len(reported)} probe readings: {worst.evidence}",
    )


def replication_lag_exporter_seconds(record: RunRecord) -> Measurement | None:
    """The worst exporter-reported lag (the second witness) over the same window as the marker lag."""
    name = "replication_lag_exporter_seconds"
    exporter = [s for s in record.samples if s.probe == LAG_EXPORTER]
    if not exporter:
        return None
    lag = [s for s in record.samples if s.probe == LAG]
    fault = first_fault(record)
    start = fault.applied_at_seconds if fault is not None else -math.inf
    end = max(s.at_seconds for s in lag) if lag else max(s.at_seconds for s in exporter)
    window = [s for s in exporter if start <= s.at_seconds <= end and s.value is not None]
    if not window:
        return _missing(
            name, "seconds", "prometheus", f"no exporter lag sample between {_fmt(start)} and {_fmt(end)}"
        )
    worst = max(window, key=lambda s: s.value or 0.0)
    return Measurement(
        name,
        float(worst.value or 0.0),
        "seconds",
        "prometheus",
        f"worst exporter lag {worst.value:.3f} s on {worst.region or '?'} at {_fmt(worst.at_seconds)} "
        f"over {len(window)} samples",
    )


# ---------------------------------------------------------------- by name


DERIVED: dict[str, Callable[[RunRecord], Measurement | None]] = {
    "failover_seconds": failover_seconds,
    "rto_seconds": rto_seconds,
    "detection_seconds": detection_seconds,
    "promotion_seconds": promotion_seconds,
    "lost_writes_count": lost_writes_count,
    "rpo_seconds": rpo_seconds,
    "error_ratio": error_ratio,
    "canary_p99_latency_seconds": canary_p99_latency_seconds,
    "replication_lag_seconds": replication_lag_seconds,
    "replication_lag_exporter_seconds": replication_lag_exporter_seconds,
}


def measure(record: RunRecord, name: str) -> Measurement | None:
    """A measurement by name. A derivable measure is derived from the full history, and the
    derivation wins even when its value is None (evidence missing): a probe's figure is used only
    when the record holds nothing the derivation reads (e.g. a stored light copy)."""
    if name in DERIVED:
        derived = DERIVED[name](record)
        if derived is not None:
            return derived
    return record.measurement(name)


def with_derived(record: RunRecord) -> RunRecord:
    """The record with every derivable measurement added to its measurements (last wins on lookup),
    so summaries and histories that drop the raw samples keep the figures (and the reasons a
    figure is missing)."""
    derived = tuple(m for derive in DERIVED.values() if (m := derive(record)) is not None)
    return replace(record, measurements=record.measurements + derived)


# The traffic measures (global balancer) live in their own module and add themselves to DERIVED;
# imported here, after DERIVED exists, so that every user of this module finds them.
# The active-active convergence measures (harness.convergence_measures) read this module's helpers
# inside their functions; lost_writes_count also counts the elements the convergence probe
# acknowledged that no region holds at the end.
from harness import convergence_measures as _convergence  # noqa: E402
from harness import traffic_measures as _traffic_measures  # noqa: E402, F401

DERIVED.update(_convergence.DERIVED)
DERIVED["lost_writes_count"] = _convergence.with_lost_elements(lost_writes_count)
