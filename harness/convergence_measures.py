"""Active-active measures derived from the convergence probe's record: pure functions, no I/O.

The probe (`harness.probes.convergence`) leaves in the record: ``propagation`` samples (one per
acknowledged element and other region), ``convergence.started`` / ``.register_write`` /
``.digest`` / ``.final`` / ``.stopped`` events. docs/measures.md ("Active-active convergence")
is the contract of every measure here. Like `harness.measures`, each returns a Measurement
(``lower_bound`` when censored), a Measurement with value None naming what is missing
(unknown), or None when the record holds no convergence evidence at all.

This module imports `harness.measures` only inside functions: `harness.measures` registers these
derivations at its end, so either module may be imported first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.model import Event, Measurement, RunRecord, Sample

PROPAGATION = "propagation"
SOURCE = "convergence"
_SHOWN = 5  # examples named in an evidence text


# ---------------------------------------------------------------- reading the evidence


@dataclass(frozen=True, slots=True)
class RegisterWrite:
    at_seconds: float  # acknowledgement (or failure) on the run clock
    key: str
    value: str
    origin: str
    acked: bool
    prev: str | None  # what the writer's region held when it wrote (who it had seen)
    commit_us: int | None


@dataclass(frozen=True, slots=True)
class Final:
    region: str
    at_seconds: float
    registers: Mapping[str, tuple[str, int | None]]  # key → (value, commit_us)
    missing_elements: frozenset[str]


@dataclass(frozen=True, slots=True)
class Evidence:
    regions: tuple[str, ...]
    pairs: tuple[str, ...]
    epoch_origin: float  # run clock of epoch 0's start
    epoch_seconds: float
    digest_seconds: float
    poll_seconds: float
    sustain_seconds: float
    slow_poll: (
        tuple[float, float] | None
    )  # (poll, after): the reader's poll while a write is long outstanding
    writes: tuple[RegisterWrite, ...]
    digests: Mapping[tuple[str, int], tuple[tuple[float, str | None], ...]]  # (region, epoch) → changes
    finals: Mapping[str, Final]
    final_errors: Mapping[str, str]  # region → why its final state could not be read
    acked_elements: int | None  # None: no convergence.stopped event
    silent_regions: tuple[str, ...]  # regions that acknowledged no element (per convergence.stopped)
    last_round: float | None  # the last digest round (convergence.stopped's time)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _micros(value: Any) -> int | None:
    return int(value) if _number(value) else None


def evidence(record: RunRecord) -> Evidence | str | None:
    """The probe's evidence; a str naming what is malformed or missing; None when there is none."""
    started = [e for e in record.events if e.kind == "convergence.started"]
    has_samples = any(s.probe == PROPAGATION for s in record.samples)
    if not started:
        return "propagation samples without a convergence.started event" if has_samples else None
    if len(started) > 1:
        return f"{len(started)} convergence.started events: one probe per run is graded"
    head = started[0]
    detail = head.detail
    regions, pairs = detail.get("regions"), detail.get("pairs")
    if (
        not isinstance(regions, list | tuple)
        or len(regions) < 2
        or not all(isinstance(r, str) for r in regions)
    ):
        return "convergence.started.regions: expected at least two region names"
    if not isinstance(pairs, list | tuple) or not all(isinstance(p, str) for p in pairs):
        return "convergence.started.pairs: expected a list of 'a->b' names"
    numbers = {}
    for name in ("epoch_seconds", "digest_seconds", "poll_seconds", "sustain_seconds"):
        value = detail.get(name)
        if not _number(value) or value < 0 or (name == "epoch_seconds" and value <= 0):
            return f"convergence.started.{name}: expected a non-negative number, got {value!r}"
        numbers[name] = float(value)
    slow = (detail.get("slow_poll_seconds"), detail.get("slow_after_seconds"))
    slow_poll = (float(slow[0]), float(slow[1])) if _number(slow[0]) and _number(slow[1]) else None
    writes = []
    for event in record.events:
        if event.kind != "convergence.register_write":
            continue
        d = event.detail
        if not all(isinstance(d.get(k), str) for k in ("key", "value", "origin")) or not isinstance(
            d.get("acked"), bool
        ):
            return (
                f"convergence.register_write at {event.at_seconds:.3f} s: expected key, value, origin, acked"
            )
        prev = d.get("prev")
        writes.append(
            RegisterWrite(
                event.at_seconds,
                d["key"],
                d["value"],
                d["origin"],
                d["acked"],
                prev if isinstance(prev, str) else None,
                _micros(d.get("commit_us")),
            )
        )
    digests: dict[tuple[str, int], list[tuple[float, str | None]]] = {}
    for event in sorted(
        (e for e in record.events if e.kind == "convergence.digest"), key=lambda e: e.at_seconds
    ):
        d = event.detail
        epoch, digest = d.get("epoch"), d.get("digest")
        if not isinstance(d.get("region"), str) or isinstance(epoch, bool) or not isinstance(epoch, int):
            return f"convergence.digest at {event.at_seconds:.3f} s: expected region and a whole epoch"
        if digest is not None and not isinstance(digest, str):
            return f"convergence.digest at {event.at_seconds:.3f} s: expected a digest string or null"
        digests.setdefault((d["region"], epoch), []).append((event.at_seconds, digest))
    finals: dict[str, Final] = {}
    errors: dict[str, str] = {}
    for event in record.events:
        if event.kind != "convergence.final":
            continue
        found = _final(event)
        if isinstance(found, str):
            region = str(event.detail.get("region", "?"))
            errors[region] = found
        else:
            finals[found.region] = found
    stopped = [e for e in record.events if e.kind == "convergence.stopped"]
    acked, silent = None, ()
    if stopped:
        counts = stopped[-1].detail.get("acked_elements")
        if isinstance(counts, Mapping) and all(_number(v) for v in counts.values()):
            acked = int(sum(counts.values()))
            silent = tuple(r for r in regions if not counts.get(r))
    return Evidence(
        regions=tuple(regions),
        pairs=tuple(pairs),
        epoch_origin=head.at_seconds,
        epoch_seconds=numbers["epoch_seconds"],
        digest_seconds=numbers["digest_seconds"],
        poll_seconds=numbers["poll_seconds"],
        sustain_seconds=numbers["sustain_seconds"],
        slow_poll=slow_poll,
        writes=tuple(writes),
        digests={k: tuple(v) for k, v in digests.items()},
        finals=finals,
        final_errors=errors,
        acked_elements=acked,
        silent_regions=silent,
        last_round=stopped[-1].at_seconds if stopped else None,
    )


def _final(event: Event) -> Final | str:
    d = event.detail
    region = d.get("region")
    if not isinstance(region, str):
        return "convergence.final without a region"
    if "error" in d:
        return f"final state not read: {d['error']}"
    registers, missing = d.get("registers"), d.get("missing_elements")
    if not isinstance(registers, Mapping) or not isinstance(missing, list | tuple):
        return "convergence.final: expected registers and missing_elements"
    rows: dict[str, tuple[str, int | None]] = {}
    for key, row in registers.items():
        if not isinstance(row, Mapping) or not isinstance(row.get("value"), str):
            return f"convergence.final.registers[{key!r}]: expected a value"
        rows[str(key)] = (row["value"], _micros(row.get("commit_us")))
    return Final(region, event.at_seconds, rows, frozenset(str(m) for m in missing))


def _missing(name: str, unit: str, evidence_text: str) -> Measurement:
    return Measurement(name, None, unit, SOURCE, evidence_text)


def _fmt(seconds: float) -> str:
    return f"{seconds:.3f} s"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _examples(items: Sequence[str]) -> str:
    shown = "; ".join(items[:_SHOWN])
    return shown + (f"; … {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


# ---------------------------------------------------------------- propagation


@dataclass(frozen=True, slots=True)
class PairStats:
    """Visibility latency of one region pair over the graded window (seconds)."""

    pair: str
    writes: int
    not_seen: int  # censored readings: not shown by the probe's timeout or end (lower bounds)
    p50: float
    p95: float
    p99: float
    maximum: float
    censored: bool  # a censored reading at or below the p99: the p99 is a lower bound
    values: tuple[tuple[float, bool], ...]  # (seconds, seen) per write, sorted: the P(visible | t) curve


@dataclass(frozen=True, slots=True)
class FaultSpan:
    """The disruption: the first disruptive fault applied → the last one undone (a cut made of
    several partitions heals when its last link does); `healed_seconds` None when one stayed open."""

    applied_seconds: float
    healed_seconds: float | None
    faults: int


def fault_span(record: RunRecord) -> FaultSpan | None:
    from harness.measures import disruptive_faults

    faults = disruptive_faults(record)
    if not faults:
        return None
    undone = [f.undone_at_seconds for f in faults]
    healed = None if any(u is None for u in undone) else max(u for u in undone if u is not None)
    return FaultSpan(faults[0].applied_at_seconds, healed, len(faults))


def propagation_window(record: RunRecord) -> tuple[float, float, str]:
    """Acknowledgements graded: from the first disruptive fault to the last one's undo (the run's
    end when one was never undone); the whole probe when no fault was journalled."""
    span = fault_span(record)
    if span is None:
        return -math.inf, math.inf, "every write of the probe (no fault journalled)"
    end = span.healed_seconds if span.healed_seconds is not None else math.inf
    until = _fmt(end) if math.isfinite(end) else "the run's end"
    return (
        span.applied_seconds,
        end,
        f"writes acknowledged from the fault at {_fmt(span.applied_seconds)} to {until}",
    )


def pair_stats(record: RunRecord, pairs: Sequence[str] | None = None) -> dict[str, PairStats | None]:
    """Per pair (default: every pair with samples), the stats over the graded window; None for a
    pair with no reading in it."""
    from harness.measures import percentile

    start, end, _ = propagation_window(record)
    window = [s for s in record.samples if s.probe == PROPAGATION and start <= s.at_seconds <= end]
    names = list(pairs) if pairs is not None else sorted({s.region for s in window})
    stats: dict[str, PairStats | None] = {}
    for pair in names:
        mine = [s for s in window if s.region == pair]
        if not mine or any(s.value is None for s in mine):
            stats[pair] = None
            continue
        values = [float(s.value or 0.0) for s in mine]
        p99 = percentile(values, 0.99)
        censored = any(not s.ok and float(s.value or 0.0) <= p99 for s in mine)
        stats[pair] = PairStats(
            pair,
            len(mine),
            sum(1 for s in mine if not s.ok),
            percentile(values, 0.5),
            percentile(values, 0.95),
            p99,
            max(values),
            censored,
            tuple(sorted((float(s.value or 0.0), s.ok) for s in mine)),
        )
    return stats


def _pair_text(stats: PairStats) -> str:
    text = (
        f"{stats.pair} p50 {_ms(stats.p50)}, p95 {_ms(stats.p95)}, p99 {_ms(stats.p99)}, "
        f"max {_ms(stats.maximum)} ({stats.writes} writes"
    )
    if stats.not_seen:
        text += f", {stats.not_seen} not seen in time: lower bounds"
    return text + ")"


def propagation_p99_seconds(record: RunRecord) -> Measurement | None:
    """The worst region pair's 99th percentile visibility latency (write ack → first read in the
    other region that showed it) over the graded window; every pair must have readings."""
    name = "propagation_p99_seconds"
    found = evidence(record)
    if found is None:
        return None
    if isinstance(found, str):
        return _missing(name, "seconds", found)
    _, _, window = propagation_window(record)
    stats = pair_stats(record, found.pairs)
    if not stats:
        return _missing(name, "seconds", "convergence.started names no region pair")
    absent = [p for p, s in stats.items() if s is None]
    if absent:
        return _missing(name, "seconds", f"no propagation reading for {', '.join(absent)} ({window})")
    present = [s for s in stats.values() if s is not None]
    worst = max(present, key=lambda s: (s.p99, s.pair))
    censored = [s.pair for s in present if s.censored]
    evidence_text = (
        f"worst pair {_pair_text(worst)}; "
        + "; ".join(_pair_text(s) for s in present if s is not worst)
        + f"; {window}; resolution: one poll ({_ms(found.poll_seconds)}"
        + (
            f"; {_ms(found.slow_poll[0])} while a write was outstanding over {_fmt(found.slow_poll[1])}"
            if found.slow_poll and found.slow_poll[0] > found.poll_seconds
            else ""
        )
        + ") plus a read's round trip"
    )
    if censored:
        evidence_text += f"; a lower bound: writes not seen in time in {', '.join(censored)}"
    return Measurement(name, worst.p99, "seconds", SOURCE, evidence_text, lower_bound=bool(censored))


# ---------------------------------------------------------------- convergence after the heal


def convergence_seconds(record: RunRecord) -> Measurement | None:
    """Heal (the last disruptive fault undone) → every region holds identical data, by digest of
    every epoch closed before the heal, unchanged until the probe's last digest round (at least
    `sustain_seconds`). Censored when the regions still differed, or agreed too briefly, at the end."""
    name = "convergence_seconds"
    found = evidence(record)
    if found is None:
        return None
    if isinstance(found, str):
        return _missing(name, "seconds", found)
    span = fault_span(record)
    if span is None:
        return _missing(name, "seconds", "no disruptive fault journalled: no heal to time convergence from")
    if found.last_round is None:
        return _missing(name, "seconds", "no convergence.stopped event: the probe did not finish its digests")
    heal = span.healed_seconds
    cutoff = heal if heal is not None else found.last_round
    if found.last_round < cutoff:
        return _missing(
            name,
            "seconds",
            f"the probe's last digest round ({_fmt(found.last_round)}) came before the heal ({_fmt(cutoff)})",
        )
    # Every epoch that closed before the heal, whether or not a digest of it was recorded: one the
    # probe never digested is missing evidence, not agreement.
    epochs = list(range(max(0, math.floor((cutoff - found.epoch_origin) / found.epoch_seconds + 1e-9))))
    if not epochs:
        return _missing(name, "seconds", f"no epoch of the probe closed before {_fmt(cutoff)}")
    absent = [f"{r} epoch {e}" for e in epochs for r in found.regions if (r, e) not in found.digests]
    if absent:
        return _missing(name, "seconds", f"no digest of {_examples(absent)}")
    differing, agreed_at = [], -math.inf
    for epoch in epochs:
        last = {r: found.digests[(r, epoch)][-1] for r in found.regions}
        digests = {d for _, d in last.values()}
        if None in digests or len(digests) != 1:
            differing.append(
                f"epoch {epoch}: " + ", ".join(f"{r} {d or 'unreadable'}"[:40] for r, (_, d) in last.items())
            )
            continue
        agreed_at = max(agreed_at, max(t for t, _ in last.values()))
    resolution = f"digests every {_fmt(found.digest_seconds)}"
    if heal is None:
        if differing:
            return Measurement(
                name,
                found.last_round - span.applied_seconds,
                "seconds",
                SOURCE,
                f"the fault was never undone and the regions still differed at the last digest round "
                f"({_fmt(found.last_round)}): {_examples(differing)}",
                lower_bound=True,
            )
        return _missing(name, "seconds", "the fault was never undone: no heal to time convergence from")
    if differing:
        return Measurement(
            name,
            max(0.0, found.last_round - heal),
            "seconds",
            SOURCE,
            f"the regions still differed at the last digest round ({_fmt(found.last_round)}), "
            f"{_fmt(found.last_round - heal)} after the heal at {_fmt(heal)}: {_examples(differing)}",
            lower_bound=True,
        )
    value = max(0.0, agreed_at - heal)
    held = found.last_round - agreed_at
    text = (
        f"heal at {_fmt(heal)}; every region's digest of the {len(epochs)} epoch(s) written before it "
        f"identical from {_fmt(agreed_at)} ({resolution})"
    )
    if held < found.sustain_seconds:
        return Measurement(
            name,
            value,
            "seconds",
            SOURCE,
            text
            + f", but only for {_fmt(held)} before the probe ended (sustain {_fmt(found.sustain_seconds)})",
            lower_bound=True,
        )
    return Measurement(
        name, value, "seconds", SOURCE, text + f", unchanged for {_fmt(held)} to the last round"
    )


# ---------------------------------------------------------------- last-write-wins


@dataclass(frozen=True, slots=True)
class LwwOutcome:
    keys: int
    discarded: tuple[RegisterWrite, ...]  # acknowledged writes LWW threw away (concurrent, older)
    violations: tuple[str, ...]  # one line each
    disagreeing_keys: int  # keys the regions never agreed on (their discards are not known)
    problem: str  # why the outcome cannot be judged ("" when it can)


def _final_problem(found: Evidence) -> str:
    problems = [f"{r}: {e}" for r, e in sorted(found.final_errors.items())]
    problems += [
        f"{r}: no convergence.final event"
        for r in found.regions
        if r not in found.finals and r not in found.final_errors
    ]
    return "; ".join(problems)


def lww_outcome(found: Evidence) -> LwwOutcome:
    """Per register key: the survivor the regions agree on, whether it is the acknowledged write
    with the latest commit timestamp, and the acknowledged writes it discarded.

    A write is discarded when it is acknowledged, is not the survivor, and no later write built on
    it (no write names it as the value it saw): its value is gone without anyone having seen it.
    A write another write built on was overwritten in sequence, not by last-write-wins."""
    problem = _final_problem(found)
    if problem:
        return LwwOutcome(0, (), (), 0, f"final state missing: {problem}")
    by_key: dict[str, list[RegisterWrite]] = {}
    for write in found.writes:
        by_key.setdefault(write.key, []).append(write)
    keys = sorted(set(by_key) | {k for f in found.finals.values() for k in f.registers})
    unstamped = [w for w in found.writes if w.acked and w.commit_us is None]
    if unstamped:
        first = unstamped[0]
        return LwwOutcome(
            len(keys), (), (), 0,
            f"{len(unstamped)} acknowledged write(s) without a commit timestamp "
            f"(first: {first.value} on {first.key})",
        )  # fmt: skip
    # Nothing written proves nothing: every region must have had a register write acknowledged.
    quiet = [r for r in found.regions if not any(w.acked and w.origin == r for w in found.writes)]
    if quiet:
        return LwwOutcome(len(keys), (), (), 0, f"no acknowledged register write in {', '.join(quiet)}")
    discarded: list[RegisterWrite] = []
    violations: list[str] = []
    disagreeing = 0
    for key in keys:
        writes = by_key.get(key, [])
        held = {r: found.finals[r].registers.get(key) for r in found.regions}
        values = {None if row is None else row[0] for row in held.values()}
        if len(values) != 1:
            disagreeing += 1
            shown = ", ".join(f"{r} {row[0] if row else 'absent'}" for r, row in held.items())
            violations.append(f"{key}: regions never agree ({shown})")
            continue
        (survivor,) = values
        if survivor is None:
            if any(w.acked for w in writes):
                violations.append(
                    f"{key}: no region holds it after {sum(w.acked for w in writes)} acknowledged write(s)"
                )
            continue
        stamps = [row[1] for row in held.values() if row is not None and row[1] is not None]
        acked = [w for w in writes if w.acked]
        latest = max(acked, key=lambda w: w.commit_us or 0, default=None)
        if survivor not in {w.value for w in writes}:
            violations.append(f"{key}: survivor {survivor} is no write of the probe")
        elif latest is not None and stamps and min(stamps) < (latest.commit_us or 0):
            violations.append(
                f"{key}: survivor {survivor} (commit {min(stamps)} µs) is older than acknowledged "
                f"{latest.value} (commit {latest.commit_us} µs)"
            )
        built_on = {w.prev for w in writes if w.prev is not None}
        discarded.extend(w for w in acked if w.value != survivor and w.value not in built_on)
    return LwwOutcome(len(keys), tuple(discarded), tuple(violations), disagreeing, "")


def _lww_evidence(record: RunRecord, name: str) -> tuple[Evidence, LwwOutcome] | Measurement | None:
    found = evidence(record)
    if found is None:
        return None
    if isinstance(found, str):
        return _missing(name, "count", found)
    outcome = lww_outcome(found)
    if outcome.problem:
        return _missing(name, "count", outcome.problem)
    return found, outcome


def _element_disagreements(found: Evidence) -> list[str]:
    """Acknowledged elements some regions hold and others lack at the end."""
    missing = [f.missing_elements for f in found.finals.values()]
    everywhere = frozenset.intersection(*missing) if missing else frozenset()
    partial = sorted(frozenset.union(*missing) - everywhere) if missing else []
    regions = sorted(found.finals.items())
    return [
        f"element {e}: absent in {', '.join(r for r, f in regions if e in f.missing_elements)}"
        for e in partial
    ]


def lww_discarded_writes_count(record: RunRecord) -> Measurement | None:
    """Acknowledged register writes last-write-wins threw away (data loss by design). A lower
    bound while some key's regions disagree (its discards are not known yet)."""
    name = "lww_discarded_writes_count"
    found = _lww_evidence(record, name)
    if not isinstance(found, tuple):
        return found
    _, outcome = found
    shown = [
        f"{w.value} on {w.key.rpartition('/')[0].rpartition('/')[2]}/{w.key.rpartition('/')[2]}"
        for w in outcome.discarded
    ]
    text = (
        f"{len(outcome.discarded)} acknowledged write(s) overwritten by a concurrent later write, "
        f"over {outcome.keys} key(s)"
    )
    start, end, _ = propagation_window(record)
    during = sum(1 for w in outcome.discarded if start <= w.at_seconds <= end)
    if math.isfinite(start):
        # Outside the fault, two regions writing one key within the propagation delay conflict too.
        text += f" ({during} acknowledged during the fault, {len(outcome.discarded) - during} outside it)"
    if shown:
        text += f": {_examples(shown)}"
    if outcome.disagreeing_keys:
        text += f"; a lower bound: the regions never agreed on {outcome.disagreeing_keys} key(s)"
    return Measurement(
        name, float(len(outcome.discarded)), "count", SOURCE, text, lower_bound=bool(outcome.disagreeing_keys)
    )


def lww_violations_count(record: RunRecord) -> Measurement | None:
    """Register keys whose survivor is not the acknowledged write with the latest commit timestamp,
    keys the regions never agree on, and acknowledged elements some regions lack at the end."""
    name = "lww_violations_count"
    found = _lww_evidence(record, name)
    if not isinstance(found, tuple):
        return found
    evidence_, outcome = found
    elements = _element_disagreements(evidence_)
    violations = [*outcome.violations, *elements]
    elements_count = evidence_.acked_elements or 0
    text = f"{len(violations)} violation(s) over {outcome.keys} key(s) and {elements_count} element(s)"
    if violations:
        text += f": {_examples(violations)}"
    else:
        text += ": every key's survivor is its latest acknowledged write, every region holds the same"
    return Measurement(name, float(len(violations)), "count", SOURCE, text)


# ---------------------------------------------------------------- lost writes


def lost_elements(record: RunRecord) -> Measurement | None:
    """Acknowledged elements no region holds at the end (lost_writes_count's convergence part)."""
    name = "lost_writes_count"
    found = evidence(record)
    if found is None:
        return None
    if isinstance(found, str):
        return _missing(name, "count", found)
    problem = _final_problem(found)
    if problem:
        return _missing(name, "count", f"final state missing: {problem}")
    if found.acked_elements is None:
        return _missing(name, "count", "no convergence.stopped event counting the acknowledged elements")
    if found.silent_regions:
        return _missing(name, "count", f"no acknowledged element in {', '.join(found.silent_regions)}")
    lost = sorted(frozenset.intersection(*(f.missing_elements for f in found.finals.values())))
    text = f"{len(lost)} of {found.acked_elements} acknowledged element(s) held by no region at the end"
    if lost:
        text += f": {_examples(lost)}"
    return Measurement(name, float(len(lost)), "count", SOURCE, text)


def with_lost_elements(
    canary: Callable[[RunRecord], Measurement | None],
) -> Callable[[RunRecord], Measurement | None]:
    """lost_writes_count over the canaries' verified writes and the convergence probe's elements:
    the sum; unknown when either part is."""

    def lost_writes_count(record: RunRecord) -> Measurement | None:
        first, second = canary(record), lost_elements(record)
        if first is None or second is None:
            return first or second
        parts = [m for m in (first, second) if m.value is None]
        if parts:
            return Measurement("lost_writes_count", None, "count", f"{first.source}+{SOURCE}",
                               "; ".join(m.evidence for m in parts))  # fmt: skip
        return Measurement(
            "lost_writes_count",
            (first.value or 0.0) + (second.value or 0.0),
            "count",
            f"{first.source}+{SOURCE}",
            f"canary: {first.evidence}; convergence: {second.evidence}",
            lower_bound=first.lower_bound or second.lower_bound,
        )

    lost_writes_count.__doc__ = canary.__doc__
    return lost_writes_count


DERIVED: dict[str, Callable[[RunRecord], Measurement | None]] = {
    "propagation_p99_seconds": propagation_p99_seconds,
    "convergence_seconds": convergence_seconds,
    "lww_discarded_writes_count": lww_discarded_writes_count,
    "lww_violations_count": lww_violations_count,
}


def propagation_samples(record: RunRecord) -> list[Sample]:
    return [s for s in record.samples if s.probe == PROPAGATION]
