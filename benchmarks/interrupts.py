"""Interrupt 100 runs at random moments; count what was left behind and time the way back to clean.

Run alone: `.venv/bin/python benchmarks/interrupts.py [--trials 100] [--seed N]`. Starts one
Redis + fault-proxy sandbox, then for each trial runs `harness run` on one of the safety
experiments (pause or kill a replica, latency, a partition), sends SIGINT, SIGTERM (sometimes
twice) or SIGKILL followed by `harness recover`, and checks the estate (tests/safety/trials.py).
Prints one line per trial, then how many trials left anything behind and the time from the
signal to a verified clean state. Exits 1 when any trial left something behind.
"""

from __future__ import annotations

import argparse
import collections
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.safety.trials import plan_trials, run_trial, running_estate


def _quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    print(f"seed {seed}, {args.trials} trials")
    started = time.monotonic()
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="harness-interrupts-") as temporary:
        work = Path(temporary)
        with running_estate(work) as estate:
            state_dir = work / "state"
            for trial in plan_trials(args.trials, seed):
                outcome = run_trial(estate, trial, state_dir, work)
                outcomes.append(outcome)
                verdict = "clean" if outcome.is_clean else "LEFT: " + "; ".join(outcome.problems)
                print(
                    f"{trial.describe()}: exit {outcome.exit_code}, {outcome.phase}, "
                    f"{outcome.clean_seconds:.2f} s to clean, {verdict}",
                    flush=True,
                )
    dirty = [o for o in outcomes if not o.is_clean]
    phases = collections.Counter(o.phase for o in outcomes)
    signals = collections.Counter(o.trial.signal.name + (" x2" if o.trial.twice else "") for o in outcomes)
    to_clean = [o.clean_seconds for o in outcomes if o.is_clean]
    print()
    print(f"trials: {len(outcomes)} in {time.monotonic() - started:.0f} s (seed {seed})")
    print(f"phases at the signal: {dict(phases)}")
    print(f"signals: {dict(signals)}")
    print(f"left something behind: {len(dirty)} of {len(outcomes)}")
    if to_clean:
        print(
            f"signal -> verified clean: median {statistics.median(to_clean):.2f} s, "
            f"p95 {_quantile(to_clean, 0.95):.2f} s, max {max(to_clean):.2f} s"
        )
    by_signal = collections.defaultdict(list)
    for outcome in outcomes:
        if outcome.is_clean and outcome.phase == "mid-fault":
            by_signal[outcome.trial.signal.name].append(outcome.clean_seconds)
    for name, values in sorted(by_signal.items()):
        print(f"  mid-fault {name}: median {statistics.median(values):.2f} s over {len(values)} trials")
    for outcome in dirty:
        print(f"  {outcome.trial.describe()}: {'; '.join(outcome.problems)}")
    return 1 if dirty else 0


if __name__ == "__main__":
    sys.exit(main())
