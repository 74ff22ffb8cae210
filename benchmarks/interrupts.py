"""Interrupt runs at random moments; count what was left behind and time the undo from outside.

Run alone: `.venv/bin/python benchmarks/interrupts.py [--count 100] [--seed N]`. Starts one
Redis + regional API + fault-proxy sandbox, then for each interrupt runs `harness run` on the
signal matrix's experiment of a random fault kind (instance failure, partition, latency, load;
tests/safety/experiments/matrix-*.yaml), waits for a random phase (baseline, steady state, the
fault held with a background probe running, the rollbacks, storing the record) plus a random
0-1 s, and sends SIGINT, SIGTERM or SIGKILL (then `harness recover`). From the signal it polls
the fault proxy and the process table until the fault's effect is gone (tests/safety/trials.py).

Reports: faults left after the rollback (SIGINT/SIGTERM), faults left after `harness recover`,
processes leaked, and signal -> fault undone p50/p95/max over the interrupts that landed while a
fault was applied. Goal: 0 / 0 / 0, p95 <= 2 s. Then `--guardrail-runs` runs freeze the Redis
primary under an error-ratio guardrail whose window (20 s) is longer than the freeze (6 s), and
report fault -> guardrail crossing and crossing -> fault undone (goal: every run aborted, undone
within 2 s of the crossing). Exits 1 when anything was left behind.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.measures import percentile
from tests.safety.trials import (
    EXPERIMENTS,
    KINDS,
    Estate,
    run_harness,
    run_matrix_case,
    running_estate,
    wait_until_steady,
    write_scenario,
)

# Phases with a fault applied come up more often: that is where an undo is timed.
PHASE_WEIGHTS = {"baseline": 1, "steady-state": 1, "method": 4, "rollbacks": 2, "report": 1}
SIGNAL_WEIGHTS = {signal.SIGINT: 2, signal.SIGTERM: 2, signal.SIGKILL: 1}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="number of interrupts (default 100)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--guardrail-runs", type=int, default=5, help="guardrail aborts to time (default 5)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    rng = random.Random(seed)
    print(f"seed {seed}, {args.count} interrupts", flush=True)
    started = time.monotonic()
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="harness-interrupts-") as temporary:
        work = Path(temporary)
        with running_estate(work) as estate:
            state_dir = work / "state"
            for index in range(args.count):
                kind = rng.choice(KINDS)
                phase = rng.choices(list(PHASE_WEIGHTS), weights=list(PHASE_WEIGHTS.values()))[0]
                signal_ = rng.choices(list(SIGNAL_WEIGHTS), weights=list(SIGNAL_WEIGHTS.values()))[0]
                # The record is stored within about a second of its phase starting: land inside it.
                delay = round(rng.uniform(0.0, 0.3 if phase == "report" else 1.0), 3)
                outcome = run_matrix_case(estate, kind, phase, signal_, state_dir, work, delay)
                outcomes.append(outcome)
                undo = "-" if outcome.undo_seconds is None else f"{outcome.undo_seconds:.3f} s"
                if outcome.ledger_undo_seconds is not None:
                    undo += f" (ledger {outcome.ledger_undo_seconds:.3f} s)"
                if outcome.slowest_poll_seconds > 0.5:
                    undo += f" [observer stalled {outcome.slowest_poll_seconds:.1f} s in one look]"
                verdict = "clean" if outcome.is_clean else "LEFT: " + "; ".join(outcome.problems)
                print(
                    f"#{index} {kind} {phase} +{delay:.2f} s {signal_.name}: exit {outcome.exit_code}, "
                    f"fault applied at the signal: {bool(outcome.visible_at_signal)}, undone after {undo}, "
                    f"exited after {outcome.exit_seconds:.2f} s; {verdict}",
                    flush=True,
                )
            guardrails = [_guardrail_run(estate, work, index) for index in range(args.guardrail_runs)]
    finished = [o for o in outcomes if o.finished]
    outcomes = [o for o in outcomes if not o.finished]  # the signal met only the exit: not an interrupt
    graceful = [o for o in outcomes if o.signal is not signal.SIGKILL]
    after_rollback = sum(1 for o in graceful if o.left_after_exit)
    after_recover = sum(1 for o in outcomes if o.left_after_recover)
    leaked = sum(len(o.leaked) for o in outcomes)
    timed = [o.undo_seconds for o in graceful if o.visible_at_signal and o.undo_seconds is not None]
    never = [o for o in graceful if o.visible_at_signal and o.undo_seconds is None]
    dirty = [o for o in outcomes if not o.is_clean]
    print()
    print(f"interrupts: {len(outcomes)} in {time.monotonic() - started:.0f} s (seed {seed})")
    if finished:
        print(f"left out: {len(finished)} signals that arrived after the run had printed its report line")
    print(f"signals: {dict(collections.Counter(o.signal.name for o in outcomes))}")
    print(f"phases: {dict(collections.Counter(o.phase for o in outcomes))}")
    print(f"kinds: {dict(collections.Counter(o.kind for o in outcomes))}")
    print(f"faults left after the rollback (SIGINT/SIGTERM): {after_rollback} of {len(graceful)}")
    print(f"faults left after harness recover: {after_recover}")
    print(f"processes leaked: {leaked}")
    if timed:
        print(
            f"signal -> fault undone over {len(timed)} interrupts with a fault applied: "
            f"p50 {percentile(timed, 0.5):.3f} s, p95 {percentile(timed, 0.95):.3f} s, max {max(timed):.3f} s"
            + (f" ({len(never)} never undone)" if never else "")
        )
    by_ledger = [o.ledger_undo_seconds for o in graceful if o.ledger_undo_seconds is not None]
    if by_ledger:
        print(
            f"signal -> the ledger's undone entry: p50 {percentile(by_ledger, 0.5):.3f} s, "
            f"p95 {percentile(by_ledger, 0.95):.3f} s, max {max(by_ledger):.3f} s"
        )
    stalled = [o for o in graceful if o.slowest_poll_seconds > 0.5]
    if stalled:
        print(f"observer stalls over 0.5 s (one look at the proxy and process table): {len(stalled)}")
    exits = [o.exit_seconds for o in graceful]
    if exits:
        p50, p95 = percentile(exits, 0.5), percentile(exits, 0.95)
        print(f"signal -> exit: p50 {p50:.2f} s, p95 {p95:.2f} s, max {max(exits):.2f} s")
    print(f"interrupts with any problem: {len(dirty)}")
    aborted = [g for g in guardrails if g is not None]
    if guardrails:
        print(f"guardrail (10 % over 20 s, 6 s freeze): {len(aborted)} of {len(guardrails)} aborted, failed")
    if aborted:
        crossing = [c for c, _ in aborted]
        undo = [u for _, u in aborted]
        print(
            f"  fault -> crossing: p50 {percentile(crossing, 0.5):.2f} s, max {max(crossing):.2f} s; "
            f"crossing -> fault undone: p50 {percentile(undo, 0.5):.3f} s, max {max(undo):.3f} s"
        )
    for outcome in dirty:
        print(f"  {outcome.kind} {outcome.phase} {outcome.signal.name}: {'; '.join(outcome.problems)}")
    guardrails_short = len(aborted) < len(guardrails) or any(u > 2.0 for _, u in aborted)
    return 1 if dirty or guardrails_short else 0


def _guardrail_run(estate: Estate, work: Path, index: int) -> tuple[float, float] | None:
    """(fault -> crossing, crossing -> undone) seconds of one guarded freeze; None if not aborted."""
    directory = work / f"guardrail-{index}"
    directory.mkdir()
    experiment = directory / "short-freeze.yaml"
    experiment.write_text((EXPERIMENTS / "pause-primary.yaml").read_text().replace("after: 60", "after: 6"))
    scenario = write_scenario(
        directory / "guarded.yaml",
        "guardrails: {max_error_ratio: 10%, window: 20s, max_duration: 10min}\n",
        experiments=[experiment],
    )
    state, out = directory / "state", directory / "out"
    result = run_harness(
        estate, state, "run", str(experiment), "--scenario", str(scenario),
        "--endpoints", str(estate.endpoints_path), "--out", str(out),
    )  # fmt: skip
    left = wait_until_steady(estate, state)
    runs = list(out.glob("*/run.json"))
    if result.returncode != 1 or len(runs) != 1 or left:
        print(f"guardrail run {index}: exit {result.returncode}, left {left}", flush=True)
        return None
    record = json.loads(runs[0].read_text())["record"]
    crossed = [e for e in record["events"] if e["kind"] == "guardrail.crossed"]
    faults = record["faults"]
    if len(crossed) != 1 or len(faults) != 1 or faults[0]["undone_at_seconds"] is None:
        print(f"guardrail run {index}: not aborted", flush=True)
        return None
    crossing = crossed[0]["at_seconds"] - faults[0]["applied_at_seconds"]
    undo = faults[0]["undone_at_seconds"] - crossed[0]["at_seconds"]
    print(
        f"guardrail run {index}: crossed {crossing:.2f} s after the fault, undone {undo:.3f} s later",
        flush=True,
    )
    return crossing, undo


if __name__ == "__main__":
    sys.exit(main())
