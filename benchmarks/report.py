"""Benchmark: render a system's page for a history of 1,000 runs (target ≤ 1 s).

Run alone: ``.venv/bin/python benchmarks/report.py [--runs 1000] [--repeat 5]``. Times the
view model plus HTML (trend chart, regression scan, table) in memory, then the whole
``write_site`` to a temporary folder. The first render is reported apart: it loads matplotlib's
fonts. A fresh process then times what a cold ``harness report`` pays: importing the report
package and rendering the page once (the history itself is built before the clock starts).
``--experiments N`` spreads the runs over N experiments, each with its own trend chart.
Exits 1 when the median warm render misses the target.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness.model import Check, Comparison, Grade, Measurement, RunRecord, Verdict
from harness.report import write_site
from harness.report._html import render_system_html
from harness.report._view import build_system_view

TARGET_SECONDS = 1.0


def history(runs: int, experiments: int = 1) -> list[tuple[RunRecord, Grade]]:
    """Daily runs of one system, taking turns among `experiments` experiments (each its own
    trend on the system page); failover steps up by 8 s two thirds of the way through."""
    start = datetime(2023, 1, 1, 3, 0, tzinfo=UTC)
    pairs = []
    for index in range(runs):
        failover = 4.0 + 0.6 * math.sin(index * 1.3) + (8.0 if index >= runs * 2 // 3 else 0.0)
        lag = 0.4 + 0.1 * math.cos(index * 0.7)
        record = RunRecord(
            run_id=f"bench-{index:05d}",
            scenario="aeon-nova",
            experiment_title=f"Redis primary failover {index % experiments}",
            experiment_path=f"experiments/redis-primary-failover-{index % experiments}.yaml",
            harness_version="0.1.0",
            started_at=(start + timedelta(days=index)).isoformat(),
            duration_seconds=60.0,
            status="completed",
            measurements=(
                Measurement("failover_seconds", failover, "seconds"),
                Measurement("replication_lag_seconds", lag, "seconds"),
                Measurement("rto_seconds", failover + 1.0, "seconds"),
                Measurement("rpo_seconds", 0.3, "seconds"),
            ),
        )
        checks = tuple(
            Check(
                target=target,
                measure=measure,
                verdict=Verdict.PASS if value <= limit else Verdict.FAIL,
                measured=value,
                limit=limit,
                unit="seconds",
                comparison=Comparison.AT_MOST,
                weight=weight,
                critical=weight == 3,
                evidence="",
                description="Redis failover within the limit",
                source="seeds/aeon-nova.md §4.2",
            )
            for target, measure, value, limit, weight in (
                ("failover_time", "failover_seconds", failover, 10.0, 3),
                ("replication_lag", "replication_lag_seconds", lag, 5.0, 1),
            )
        )
        passed = sum(c.weight for c in checks if c.verdict is Verdict.PASS)
        verdict = Verdict.FAIL if any(c.verdict is Verdict.FAIL for c in checks) else Verdict.PASS
        grade = Grade(
            record.run_id, record.scenario, record.experiment_title, verdict, 100 * passed / 4, checks
        )
        pairs.append((record, grade))
    return pairs


def render_seconds(pairs: list[tuple[RunRecord, Grade]]) -> float:
    started = time.perf_counter()
    render_system_html(build_system_view(pairs))
    return time.perf_counter() - started


_COLD_CHILD = """
import sys, time
sys.path.insert(0, {benchmarks!r})
started = time.perf_counter()
from report import history
from harness.report._html import render_system_html
from harness.report._view import build_system_view
built = time.perf_counter()
pairs = history({runs}, {experiments})
history_seconds = time.perf_counter() - built
render_system_html(build_system_view(pairs))
print(history_seconds)
"""


def cold_process_seconds(runs: int, experiments: int) -> float:
    """A fresh interpreter's whole wall time to import the report package and render the page
    once, less the time it spent making up the history (a real report reads it from the store)."""
    code = _COLD_CHILD.format(benchmarks=str(Path(__file__).parent), runs=runs, experiments=experiments)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return time.perf_counter() - started - float(done.stdout.split()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--experiments", type=int, default=1, help="Experiments the runs take turns among.")
    args = parser.parse_args()
    fresh = cold_process_seconds(args.runs, args.experiments)
    pairs = history(args.runs, args.experiments)
    cold = render_seconds(pairs)
    warm = [render_seconds(pairs) for _ in range(args.repeat)]
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        write_site([], Path(folder), history=pairs)
        site = time.perf_counter() - started
    median = statistics.median(warm)
    print(f"{args.runs} runs of {args.experiments} experiment(s)")
    print(f"cold process (import + first render), {args.runs} runs: {fresh:.3f} s")
    print(f"system page, {args.runs} runs: first {cold:.3f} s (loads fonts)")
    print(f"system page, {args.runs} runs: median {median:.3f} s, max {max(warm):.3f} s over {args.repeat}")
    print(f"write_site (index + system page, files), {args.runs} runs: {site:.3f} s")
    print(f"target ≤ {TARGET_SECONDS:.1f} s: {'met' if median <= TARGET_SECONDS else 'MISSED'}")
    return 0 if median <= TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
