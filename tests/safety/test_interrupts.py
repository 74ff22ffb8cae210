"""Interrupt runs at random moments (SIGINT, SIGTERM, SIGKILL + `harness recover`): nothing is left behind.

The seed is printed and can be set with HARNESS_SAFETY_SEED to replay a failure.
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest

from .trials import Estate, Trial, plan_trials, run_trial, wait_until_steady

TRIALS = 4  # the signal matrix covers every phase; benchmarks/interrupts.py runs 100


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
    assert len(mid_fault) >= TRIALS // 3, [(o.trial.describe(), o.phase) for o in outcomes]
    killed = [o for o in mid_fault if o.trial.signal is signal.SIGKILL]
    for outcome in killed:
        assert "undone" in outcome.recover_output, outcome.recover_output


@pytest.mark.parametrize("signal_", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_inside_an_activity_is_neither_swallowed_nor_held_for_its_pause(
    estate: Estate, tmp_path: Path, signal_: signal.Signals
) -> None:
    """add_latency spends ≥ 0.6 s proving its effect; a signal then must not wait out the 30 s pause."""
    trial = Trial(0, "latency.yaml", signal_, after_fault=True, delay_seconds=0.05)
    outcome = run_trial(estate, trial, tmp_path / "state", tmp_path)
    assert outcome.is_clean, "; ".join(outcome.problems) + "\n" + outcome.log[-2000:]
    assert outcome.phase == "mid-fault"
    assert outcome.clean_seconds < 10, f"clean only {outcome.clean_seconds:.1f} s after the signal"
