"""find_regressions: recent runs slower than the runs before them, by a one-sided Mann-Whitney U."""

from __future__ import annotations

import dataclasses
import random

from report_records import make_grade, make_history, make_record

from harness.model import Measurement
from harness.report import find_regressions


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
