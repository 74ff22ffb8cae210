"""Regressions in a system's history: recent runs measurably slower than the runs before them.

For each measure, every window of the last ``recent_runs`` measured runs is compared with the
``baseline_runs`` before it by a one-sided Mann-Whitney U test (are the recent values larger?).
A window is a regression when the test's p-value is below ``alpha`` and the recent median is
at least ``min_increase_ratio`` above the baseline median, so that noise on a stable system and
changes too small to matter are not flagged: the defaults (p < 0.001, median up 20 %) keep a
daily scan of a stable system quiet for years, and still catch a step within 3 to 5 runs. A run
of consecutive regressed windows is reported once, at the run that first made it significant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from harness.model import Grade, RunRecord

__all__ = ["REGRESSION_MEASURES", "Regression", "find_regressions", "graded_point", "graded_value"]

REGRESSION_MEASURES = ("failover_seconds", "replication_lag_seconds")


@dataclass(frozen=True, slots=True)
class Regression:
    """A run whose recent window of a measure is worse than the baseline before it."""

    run_id: str  # the newest run of the recent window
    measure: str
    recent_median: float
    baseline_median: float
    p_value: float
    recent_runs: int
    baseline_runs: int


def find_regressions(
    history: Sequence[tuple[RunRecord, Grade]],
    *,
    measures: Sequence[str] = REGRESSION_MEASURES,
    recent_runs: int = 5,
    baseline_runs: int = 20,
    alpha: float = 0.001,
    min_increase_ratio: float = 0.20,
) -> list[Regression]:
    """Regressions in a history ordered oldest first; empty until a measure has enough runs.

    Give it one experiment's history: runs of different experiments measure different things.
    """
    found: list[Regression] = []
    for measure in measures:
        run_ids, values = [], []
        for record, grade in history:
            value = graded_value(record, grade, measure)
            if value is not None:
                run_ids.append(record.run_id)
                values.append(value)
        found += _measure_regressions(
            measure,
            run_ids,
            np.asarray(values, dtype=float),
            recent_runs,
            baseline_runs,
            alpha,
            min_increase_ratio,
        )
    return found


def graded_point(record: RunRecord, grade: Grade, measure: str) -> tuple[float | None, bool]:
    """A run's value of `measure` as grading graded it, and whether it is a lower bound.

    The check's measured value comes first: it is the figure the verdict rests on, and a
    record's stored measurement may come from an older formula than the grade. Without a check,
    the measurement the record carries; (None, False) when neither has a value.
    """
    for check in grade.checks:
        if check.measure == measure and check.measured is not None:
            return check.measured, check.lower_bound
    measurement = record.measurement(measure)
    if measurement is None or measurement.value is None:
        return None, False
    return measurement.value, measurement.lower_bound


def graded_value(record: RunRecord, grade: Grade, measure: str) -> float | None:
    """A run's value of `measure` as graded (see graded_point), without the lower-bound flag."""
    return graded_point(record, grade, measure)[0]


def mann_whitney_greater(recent: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """One-sided Mann-Whitney U p-values, per row: are the `recent` values larger than `baseline`?

    The same test as ``scipy.stats.mannwhitneyu(recent, baseline, alternative="greater", axis=1)``
    with its automatic method, chosen per row: the exact null distribution when the row has no
    ties and one sample has at most 8 values, else the normal approximation with tie and
    continuity corrections. Numpy only: importing scipy.stats costs a cold ``harness report``
    more than drawing a 1,000-run page.
    """
    n1, n2 = recent.shape[1], baseline.shape[1]
    ranks, tie_term = _average_ranks(np.concatenate([recent, baseline], axis=1))
    u = ranks[:, :n1].sum(axis=1) - n1 * (n1 + 1) / 2
    p = np.empty(len(u))
    exact = (tie_term == 0) if min(n1, n2) <= 8 else np.zeros(len(u), dtype=bool)
    if exact.any():
        p[exact] = _exact_survival(n1, n2)[np.rint(u[exact]).astype(int)]
    if (~exact).any():
        n = n1 + n2
        spread = np.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term[~exact] / (n * (n - 1))))
        z = (u[~exact] - n1 * n2 / 2 - 0.5) / spread
        p[~exact] = [0.5 * math.erfc(value / math.sqrt(2)) for value in z]
    return np.clip(p, 0.0, 1.0)


def _average_ranks(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks (1-based, ties given their average) of each row's values, and per row the tie term
    sum(t³ - t) over groups of t equal values (0 when nothing ties)."""
    width = rows.shape[1]
    order = np.argsort(rows, axis=1, kind="stable")
    ordered = np.take_along_axis(rows, order, axis=1)
    positions = np.broadcast_to(np.arange(width), rows.shape)
    starts_group = np.ones(rows.shape, dtype=bool)
    starts_group[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends_group = np.ones(rows.shape, dtype=bool)
    ends_group[:, :-1] = starts_group[:, 1:]
    # Every position learns where its group of equal values starts and ends.
    first = np.maximum.accumulate(np.where(starts_group, positions, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends_group, positions, width - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty(rows.shape)
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=1)
    sizes = (last - first + 1).astype(float)
    # A group of t positions, each adding t² - 1, adds t³ - t.
    return ranks, np.sum(sizes**2 - 1, axis=1)


def _exact_survival(n1: int, n2: int) -> np.ndarray:
    """P(U ≥ k) for k = 0..n1·n2 under the null hypothesis, without ties.

    The counts of U are the coefficients of the Gaussian binomial [n1+n2 choose n1](q), built as
    the product over i = 1..n1 of (1 - q^(n2+i)) / (1 - q^i); floats, as only ratios matter.
    """
    counts = np.zeros(n1 * n2 + 1)
    counts[0] = 1.0
    for i in range(1, n1 + 1):
        shifted = np.zeros_like(counts)
        shifted[n2 + i :] = counts[: len(counts) - n2 - i]
        counts = counts - shifted  # times (1 - q^(n2+i))
        for start in range(i):  # over (1 - q^i): a running sum along every i-th coefficient
            counts[start::i] = np.cumsum(counts[start::i])
    pmf = counts / counts.sum()
    return np.cumsum(pmf[::-1])[::-1]


def _measure_regressions(
    measure: str,
    run_ids: list[str],
    values: np.ndarray,
    recent_runs: int,
    baseline_runs: int,
    alpha: float,
    min_increase_ratio: float,
) -> list[Regression]:
    width = recent_runs + baseline_runs
    if len(values) < width:
        return []
    windows = sliding_window_view(values, width)
    baseline, recent = windows[:, :baseline_runs], windows[:, baseline_runs:]
    baseline_median, recent_median = np.median(baseline, axis=1), np.median(recent, axis=1)
    # Constant windows make the test undefined; they are not regressions.
    varied = np.ptp(windows, axis=1) > 0
    p_values = np.ones(len(windows))
    if varied.any():
        p_values[varied] = mann_whitney_greater(recent[varied], baseline[varied])
    regressed = (
        varied
        & (p_values < alpha)
        & (recent_median > baseline_median + np.abs(baseline_median) * min_increase_ratio)
    )
    found = []
    for index in np.flatnonzero(regressed):
        if index > 0 and regressed[index - 1]:
            continue
        found.append(
            Regression(
                run_id=run_ids[index + width - 1],
                measure=measure,
                recent_median=float(recent_median[index]),
                baseline_median=float(baseline_median[index]),
                p_value=float(p_values[index]),
                recent_runs=recent_runs,
                baseline_runs=baseline_runs,
            )
        )
    return found
