"""A system page (trend charts) is drawn without matplotlib, escapes what it draws, and its scales
cover the data (issue 22: a cold `harness report` must not load matplotlib and its fonts)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from harness.model import Verdict
from harness.report import _charts, _svgplot
from harness.report._format import VERDICT_COLOURS

_CHILD = """
import sys
from datetime import UTC, datetime, timedelta
from harness.model import Verdict
from harness.report import _charts
series = [_charts.TrendSeries("failover_seconds (s)", (1.0, 2.0, None), (Verdict.PASS, Verdict.FAIL, None),
                              (False, True, False), 1.5, (False, True, False))]
start = datetime(2024, 1, 1, tzinfo=UTC)
svg = _charts.trend_chart([start + timedelta(days=i) for i in range(3)], [100.0, 0.0, 50.0], series)
assert "<svg" in svg
import harness.report  # the whole package, as `harness report` imports it
print(sorted(m for m in ("matplotlib", "numpy", "psycopg") if m in sys.modules))
"""


def test_trend_charts_and_the_report_package_load_no_matplotlib_numpy_or_psycopg() -> None:
    done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_trend_chart_marks_verdicts_bounds_limits_and_regressions_and_escapes_labels() -> None:
    series = [
        _charts.TrendSeries(
            label="lag <b>&amp; 'x'",
            values=(1.0, 12.0, None, 3.0),
            verdicts=(Verdict.PASS, Verdict.FAIL, None, Verdict.UNKNOWN),
            lower_bounds=(False, True, False, False),
            limit=10.0,
            regressed=(False, True, False, False),
        )
    ]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    svg = str(_charts.trend_chart([start + timedelta(days=i) for i in range(4)], [1, 2, 3, 4], series))
    assert "<b>" not in svg and "lag &lt;b&gt;&amp;amp; &#x27;x&#x27;" in svg
    for word in ("pass", "fail", "unknown", "lower bound (not recovered)", "limit", "regression"):
        assert f">{word}</text>" in svg
    for colour in VERDICT_COLOURS.values():
        assert colour in svg


def test_trend_chart_without_values_says_no_data_and_without_runs_draws_nothing() -> None:
    empty = _charts.TrendSeries("x", (None, None), (None, None), (False, False), None, (False, False))
    assert ">no data</text>" in _charts.trend_chart([None, None], [1.0, 2.0], [empty])
    assert _charts.trend_chart([], [], []) == ""


def test_ticks_cover_the_data() -> None:
    for high in (0.3, 1.0, 4.9, 12.6, 999.0):
        ticks = _svgplot.nice_ticks(0.0, high)
        assert ticks[0] <= 0.0 and ticks[-1] >= high and len(ticks) <= 7
    low = datetime(2023, 1, 1, tzinfo=UTC).timestamp()
    for days in (0.2, 3, 40, 400, 3000):
        high = low + days * 86400
        ticks = _svgplot.date_ticks(low, high)
        assert ticks and all(low <= t <= high for t, _ in ticks) and len(ticks) <= 12
