"""SIGINT and SIGTERM in every phase of a run, for each local fault kind: exit 130 / 143 with one
line saying what was undone, the fault's effect gone within 2 s of the signal as seen on the
fault proxy and the process table, and no process left.

The full cross product (4 kinds x 5 phases x 2 signals, about 10 s a case) would take 7 minutes,
so every kind meets both signals in the method phase (a fault applied and held, the background
`recovery-time` probe running: the case that once held a partition for 57 s), every kind meets
the rollbacks phase (a fault still applied while the rollbacks wait), and the phases before any
fault (baseline, steady state) and after (storing the record) take two kinds each, one per
signal. The signal is sent once the run's progress lines, its children or the ledger show the
phase. benchmarks/interrupts.py randomizes kind, phase, signal and delay over 100 interrupts.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .trials import KINDS, Estate, run_matrix_case

SIGINT, SIGTERM = signal.SIGINT, signal.SIGTERM
CASES = [
    *[(kind, "method", sig) for kind in KINDS for sig in (SIGINT, SIGTERM)],
    ("instance", "rollbacks", SIGTERM),
    ("partition", "rollbacks", SIGINT),
    ("latency", "rollbacks", SIGTERM),
    ("load", "rollbacks", SIGINT),
    ("partition", "baseline", SIGTERM),
    ("latency", "baseline", SIGINT),
    ("load", "steady-state", SIGINT),
    ("instance", "steady-state", SIGTERM),
    ("latency", "report", SIGTERM),
    ("instance", "report", SIGINT),
]


@pytest.mark.parametrize(("kind", "phase", "signal_"), CASES, ids=[f"{k}-{p}-{s.name}" for k, p, s in CASES])
def test_a_signal_in_any_phase_undoes_the_fault_at_once_and_exits_with_its_code(
    estate: Estate, tmp_path: Path, kind: str, phase: str, signal_: signal.Signals
) -> None:
    outcome = run_matrix_case(estate, kind, phase, signal_, tmp_path / "state", tmp_path)
    print(
        f"{kind} {phase} {signal_.name}: exit {outcome.exit_code}, fault visible at the signal: "
        f"{list(outcome.visible_at_signal)}, undone after {outcome.undo_seconds}, exit after "
        f"{outcome.exit_seconds:.2f} s; {outcome.message}"
    )
    assert outcome.is_clean, "; ".join(outcome.problems) + "\nrun log:\n" + outcome.log[-3000:]
    if phase in ("method", "rollbacks"):
        assert outcome.visible_at_signal, "the signal was meant to land while the fault was applied"
    if phase in ("baseline", "steady-state"):
        assert not outcome.visible_at_signal
        assert "nothing was left to undo" in outcome.message
