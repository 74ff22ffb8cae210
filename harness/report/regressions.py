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
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

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
            values,
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


def mann_whitney_greater(
    recent: Sequence[Sequence[float]], baseline: Sequence[Sequence[float]]
) -> list[float]:
    """One-sided Mann-Whitney U p-values, per row: are the `recent` values larger than `baseline`?

    The same test as ``scipy.stats.mannwhitneyu(recent, baseline, alternative="greater", axis=1)``
    with its automatic method, chosen per row: the exact null distribution when the row has no
    ties and one sample has at most 8 values, else the normal approximation with tie and
    continuity corrections. Plain Python: importing scipy.stats, or numpy, costs a cold
    ``harness report`` more than the few tests a page needs (only windows whose median rose).
    """
    survival: dict[tuple[int, int], list[float]] = {}
    found = []
    for recent_row, baseline_row in zip(recent, baseline, strict=True):
        ours, theirs = [float(v) for v in recent_row], [float(v) for v in baseline_row]
        n1, n2 = len(ours), len(theirs)
        ranks, tie_term = _average_ranks(ours + theirs)
        u = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
        if tie_term == 0 and min(n1, n2) <= 8:
            if (n1, n2) not in survival:
                survival[n1, n2] = _exact_survival(n1, n2)
            p = survival[n1, n2][round(u)]
        else:
            n = n1 + n2
            spread = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
            z = (u - n1 * n2 / 2 - 0.5) / spread
            p = 0.5 * math.erfc(z / math.sqrt(2))
        found.append(min(max(p, 0.0), 1.0))
    return found


def _average_ranks(values: Sequence[float]) -> tuple[list[float], float]:
    """Ranks (1-based, ties given their average) of the values, and the tie term sum(t³ - t) over
    groups of t equal values (0 when nothing ties)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    tie_term = 0.0
    first = 0
    while first < len(order):
        last = first
        while last + 1 < len(order) and values[order[last + 1]] == values[order[first]]:
            last += 1
        for position in range(first, last + 1):
            ranks[order[position]] = (first + last) / 2 + 1
        size = last - first + 1
        tie_term += size**3 - size
        first = last + 1
    return ranks, tie_term


def _exact_survival(n1: int, n2: int) -> list[float]:
    """P(U ≥ k) for k = 0..n1·n2 under the null hypothesis, without ties.

    The counts of U are the coefficients of the Gaussian binomial [n1+n2 choose n1](q), built as
    the product over i = 1..n1 of (1 - q^(n2+i)) / (1 - q^i); floats, as only ratios matter.
    """
    counts = [0.0] * (n1 * n2 + 1)
    counts[0] = 1.0
    for i in range(1, n1 + 1):
        shift = n2 + i
        counts = [c - (counts[k - shift] if k >= shift else 0.0) for k, c in enumerate(counts)]
        for start in range(i):  # over (1 - q^i): a running sum along every i-th coefficient
            running = 0.0
            for k in range(start, len(counts), i):
                running += counts[k]
                counts[k] = running
    total = math.fsum(counts)
    survival, running = [0.0] * len(counts), 0.0
    for k in range(len(counts) - 1, -1, -1):
        running += counts[k] / total
        survival[k] = running
    return survival


def _measure_regressions(
    measure: str,
    run_ids: list[str],
    values: list[float],
    recent_runs: int,
    baseline_runs: int,
    alpha: float,
    min_increase_ratio: float,
) -> list[Regression]:
    width = recent_runs + baseline_runs
    found: list[Regression] = []
    previous = False  # the window before this one was a regression
    for index in range(len(values) - width + 1):
        window = values[index : index + width]
        baseline, recent = window[:baseline_runs], window[baseline_runs:]
        baseline_median, recent_median = statistics.median(baseline), statistics.median(recent)
        # Constant windows make the test undefined; they are not regressions. The test runs only
        # where the median rose enough to matter: elsewhere no p-value could make a regression.
        regressed = (
            max(window) > min(window)
            and recent_median > baseline_median + abs(baseline_median) * min_increase_ratio
            and (p_value := mann_whitney_greater([recent], [baseline])[0]) < alpha
        )
        if regressed and not previous:
            found.append(
                Regression(
                    run_id=run_ids[index + width - 1],
                    measure=measure,
                    recent_median=float(recent_median),
                    baseline_median=float(baseline_median),
                    p_value=float(p_value),
                    recent_runs=recent_runs,
                    baseline_runs=baseline_runs,
                )
            )
        previous = bool(regressed)
    return found
