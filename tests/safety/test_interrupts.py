"""Interrupt runs at random moments (SIGINT, SIGTERM, SIGKILL + `harness recover`): nothing is left behind.

The seed is printed and can be set with HARNESS_SAFETY_SEED to replay a failure.
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

from .trials import Estate, plan_trials, run_trial, wait_until_steady

TRIALS = 20


def test_every_interrupted_run_leaves_the_estate_steady(estate: Estate, tmp_path: Path) -> None:
    seed = int(os.environ.get("HARNESS_SAFETY_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"interrupt trials: seed {seed} (HARNESS_SAFETY_SEED={seed} replays them)")
    state_dir = tmp_path / "state"  # one ledger for all trials: a fault left open fails the next run too
    assert wait_until_steady(estate, state_dir) == []
    outcomes = []
    for trial in plan_trials(TRIALS, seed):
        outcome = run_trial(estate, trial, state_dir, tmp_path)
        print(f"{trial.describe()}: exit {outcome.exit_code}, {outcome.phase}, clean after "
              f"{outcome.clean_seconds:.2f} s")  # fmt: skip
        outcomes.append(outcome)
        assert outcome.is_clean, (
            f"seed {seed}, {trial.describe()} ({outcome.phase}, exit {outcome.exit_code}) left: "
            + "; ".join(outcome.problems)
            + f"\nrecover: {outcome.recover_output}\nrun log:\n{outcome.log[-3000:]}"
        )
    mid_fault = [o for o in outcomes if o.phase == "mid-fault"]
    assert len(mid_fault) >= TRIALS // 2, [(o.trial.describe(), o.phase) for o in outcomes]
    killed = [o for o in mid_fault if o.trial.signal is signal.SIGKILL]
    for outcome in killed:
        assert "undone" in outcome.recover_output, outcome.recover_output
    assert {o.trial.signal for o in mid_fault} == set(signal.Signals) & {
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGKILL,
    }
