"""find_regressions: recent runs slower than the runs before them, by a one-sided Mann-Whitney U."""

from __future__ import annotations

import dataclasses
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from report_records import make_grade, make_history, make_record

from harness.model import Measurement
from harness.report import find_regressions
from harness.report.regressions import mann_whitney_greater


def _history_of(values: list[float | None]) -> list[tuple]:
    history = []
    for index, value in enumerate(values):
        record = make_record(f"r{index:03d}", failover_seconds=value, lag_seconds=0.5, with_samples=False)
        history.append((record, make_grade(record)))
    return history


def test_a_step_up_in_failover_is_found_once_near_the_step() -> None:
    found = find_regressions(make_history(60, step_at=40))
    assert [r.measure for r in found] == ["failover_seconds"]
    regression = found[0]
    assert regression.run_id in {f"aeon-nova-{i:04d}" for i in range(40, 45)}
    assert regression.recent_median > 11 and regression.baseline_median < 5
    assert regression.p_value < 0.01
    assert (regression.recent_runs, regression.baseline_runs) == (5, 20)


def test_noise_on_a_stable_system_is_not_a_regression() -> None:
    generator = random.Random(7)
    values = [4.0 + generator.gauss(0, 0.3) for _ in range(1000)]
    assert find_regressions(_history_of(values)) == []


def test_an_improvement_is_not_a_regression() -> None:
    assert find_regressions(_history_of([12.0 + (i % 3) * 0.1 for i in range(25)] + [4.0] * 10)) == []


def test_too_few_runs_give_nothing() -> None:
    assert find_regressions(_history_of([4.0] * 20 + [40.0] * 4)) == []
    assert find_regressions([]) == []


def test_constant_history_is_not_a_regression() -> None:
    assert find_regressions(_history_of([4.0] * 40)) == []


def test_runs_without_the_measurement_are_skipped() -> None:
    values = [4.0 + 0.1 * (i % 4) for i in range(20)] + [None] * 10 + [20.0 + 0.1 * i for i in range(5)]
    found = find_regressions(_history_of(values), measures=["failover_seconds"])
    assert [r.run_id for r in found] == ["r034"]


def test_replication_lag_regressions_are_found_too() -> None:
    history = []
    for index in range(30):
        record = make_record(f"r{index:03d}", with_samples=False)
        lag = 0.5 + 0.01 * (index % 5) + (3.0 if index >= 25 else 0.0)
        kept = tuple(m for m in record.measurements if m.name != "replication_lag_seconds")
        measurements = (*kept, Measurement("replication_lag_seconds", lag, "seconds"))
        record = dataclasses.replace(record, measurements=measurements)
        history.append((record, make_grade(record)))
    found = find_regressions(history)
    assert [r.measure for r in found] == ["replication_lag_seconds"]
    assert found[0].run_id in {"r027", "r028", "r029"}


@pytest.mark.parametrize(("n1", "n2"), [(5, 20), (3, 4), (8, 30), (9, 12), (12, 40)])
def test_mann_whitney_matches_scipy_row_by_row(n1: int, n2: int) -> None:
    """The numpy test gives scipy's p-values, exact and approximate, with and without ties."""
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(n1 * 100 + n2)
    rows = []
    for index in range(60):
        values = rng.normal(4.0 + (index % 3), 1.0, n1 + n2)
        if index % 4 == 0:
            values = np.round(values)  # ties
        rows.append(values)
    both = np.array(rows)
    recent, baseline = both[:, :n1], both[:, n1:]
    ours = mann_whitney_greater(recent, baseline)
    theirs = [
        stats.mannwhitneyu(r, b, alternative="greater").pvalue for r, b in zip(recent, baseline, strict=True)
    ]
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_mann_whitney_extremes_are_exact() -> None:
    # 5 recent values above all 20 baseline values: P = 1 / C(25, 5).
    p = mann_whitney_greater(np.array([[20.0, 21, 22, 23, 24]]), np.arange(20.0)[None, :])
    assert p[0] == pytest.approx(1 / 53130)
    # All below: certain not to be greater.
    assert mann_whitney_greater(np.array([[-5.0, -4, -3, -2, -1]]), np.arange(20.0)[None, :])[0] == 1.0


def test_finding_regressions_imports_no_scipy() -> None:
    """A cold `harness report` pays for no scipy.stats import (about 0.5 s)."""
    code = (
        "import sys; sys.path.insert(0, 'tests/report');"
        "from report_records import make_history;"
        "from harness.report import find_regressions;"
        "assert find_regressions(make_history(60, step_at=40));"
        "print('scipy.stats' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
