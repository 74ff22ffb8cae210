"""SIGINT and SIGTERM in every phase of a run, for each local fault kind: exit 130 / 143 with one
line saying what was undone, the fault's effect gone within 2 s of the signal as seen on the
fault proxy and the process table, and no process left.

The full cross product (4 kinds x 5 phases x 2 signals, 5-15 s a case) would take about 7
minutes, so each phase takes some kinds, one signal each, both signals appearing in every phase
that holds a fault: every kind in the method phase (a fault applied and held, the background
`recovery-time` probe running: the case that once held a partition for 57 s), two kinds in the
rollbacks phase (the fault still applied while the rollbacks wait), one kind in each phase
before any fault (baseline, steady state) and after (storing the record), and one case with an
impatient second signal. The signal is sent once the run's progress lines, its children or the
ledger show the phase. benchmarks/interrupts.py randomizes kind, phase, signal and delay over
100 interrupts.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .trials import Estate, run_matrix_case

SIGINT, SIGTERM = signal.SIGINT, signal.SIGTERM
CASES = [
    ("instance", "method", SIGINT),
    ("partition", "method", SIGTERM),
    ("latency", "method", SIGINT),
    ("load", "method", SIGTERM),
    ("latency", "rollbacks", SIGTERM),
    ("instance", "rollbacks", SIGINT),
    ("partition", "baseline", SIGINT),
    ("load", "steady-state", SIGTERM),
    ("instance", "report", SIGTERM),
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


def test_a_second_signal_during_the_rollback_is_ignored_with_a_message(
    estate: Estate, tmp_path: Path
) -> None:
    outcome = run_matrix_case(estate, "partition", "method", SIGINT, tmp_path / "state", tmp_path, twice=True)
    assert outcome.is_clean, "; ".join(outcome.problems) + "\nrun log:\n" + outcome.log[-3000:]
    assert outcome.exit_code == 130 and "undid partition regions" in outcome.message
    assert "SIGINT ignored: rolling back after SIGINT" in outcome.log
