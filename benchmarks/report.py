"""Benchmark: render a system's page for a history of 1,000 runs, warm (target ≤ 1 s) and in a
cold process (target ≤ 0.3 s, issue 22).

Run alone: ``.venv/bin/python benchmarks/report.py [--runs 1000] [--repeat 5]``. Times the
view model plus HTML (trend chart, regression scan, table) in memory, then the whole
``write_site`` to a temporary folder. A fresh process then times what a cold ``harness report``
pays: importing the report package and rendering the page once (the history itself is built
before the clock starts), over ``--repeat`` fresh processes (median), next to the same number of
bare interpreters (``python -c pass``) started in the same run as the baseline, and one cold
``harness report --scenario`` of the same history stored in SQLite (the whole command line:
its own imports included). ``--experiments N`` spreads the runs over N experiments, each with
its own trend chart. Exits 1 when the median warm render or the median cold process misses
its target.

Where a cold process went (issue 22, before): about 1.2 s, most of it importing matplotlib and
loading its fonts to draw the trend chart. The trend chart is now written as SVG directly
(harness.report._svgplot), matplotlib is imported only by the run pages' charts, and psycopg
only when a PostgreSQL store is opened, numpy only by measures that need it (the regression
scan is plain Python, testing only windows whose median rose); what is left is the interpreter,
jinja2 and the harness modules. The whole command line (`harness report`) imported every command's
modules (typer, the runner, the sandbox, jsonschema, redis...) and read the 1,000 stored summaries
through per-value annotation lookups: 0.66 s. It now registers only the invoked command's module
(harness.cli.COMMAND_MODULES) and reads records through readers built once per annotation
(harness.model._reader): 0.43-0.49 s. typer 0.29 then built a pydantic adapter for every option
(importing pydantic on every command); typer is pinned below 0.29 and the command takes 0.34-0.41 s
on a quiet machine, of which about 0.09 s reading the runs, 0.05-0.1 s writing the site and the rest
the interpreter, typer/rich, jinja2 and the report modules.
"""

from __future__ import annotations

import argparse
import math
import os
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
COLD_TARGET_SECONDS = 0.3


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


def cold_process_seconds(runs: int, experiments: int, tree: Path | None = None) -> float:
    """A fresh interpreter's whole wall time to import the report package and render the page
    once, less the time it spent making up the history (a real report reads it from the store).
    `tree`: a checkout of another revision to time instead (its harness and benchmarks)."""
    benchmarks = tree / "benchmarks" if tree else Path(__file__).parent
    code = _COLD_CHILD.format(benchmarks=str(benchmarks), runs=runs, experiments=experiments)
    # cwd too: `-c` puts the working directory first on sys.path, ahead of PYTHONPATH.
    environment = {**os.environ, "PYTHONPATH": str(tree)} if tree else None
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment, cwd=tree
    )
    return time.perf_counter() - started - float(done.stdout.split()[-1])


def checkout(revision: str, folder: Path) -> Path:
    """The files of `revision` (git archive) in `folder`: a baseline to time in the same run."""
    root = Path(__file__).resolve().parent.parent
    command = ["git", "-C", str(root), "archive", revision, "harness", "benchmarks"]
    archive = subprocess.run(command, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def interpreter_seconds() -> float:
    """A bare interpreter's start and exit: the floor under any cold process."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def cli_seconds(runs: int, experiments: int) -> float | None:
    """One cold `harness report --scenario` of the history stored in a SQLite file (whole CLI)."""
    from harness.store import open_store

    harness = Path(sys.executable).with_name("harness")
    if not harness.exists():
        return None
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/history.db"
        with open_store(url) as store:
            for record, grade in history(runs, experiments):
                store.save(record, grade)
        started = time.perf_counter()
        command = [str(harness), "report", "--scenario", "aeon-nova", "--store", url]
        command += ["--out", f"{folder}/site"]
        subprocess.run(command, check=True, capture_output=True)
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--experiments", type=int, default=1, help="Experiments the runs take turns among.")
    parser.add_argument(
        "--baseline-ref", help="Also time cold processes of this git revision, interleaved (e.g. HEAD~5)."
    )
    args = parser.parse_args()
    baseline, fresh_runs, reference_runs = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        tree = checkout(args.baseline_ref, Path(folder)) if args.baseline_ref else None
        for _ in range(args.repeat):  # interleaved: load on the machine hits all three alike
            baseline.append(interpreter_seconds())
            fresh_runs.append(cold_process_seconds(args.runs, args.experiments))
            if tree is not None:
                reference_runs.append(cold_process_seconds(args.runs, args.experiments, tree))
    fresh = statistics.median(fresh_runs)
    pairs = history(args.runs, args.experiments)
    cold = render_seconds(pairs)
    warm = [render_seconds(pairs) for _ in range(args.repeat)]
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        write_site([], Path(folder), history=pairs)
        site = time.perf_counter() - started
    median = statistics.median(warm)
    print(f"{args.runs} runs of {args.experiments} experiment(s)")
    base = statistics.median(baseline)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    print(f"bare interpreter (baseline, same run): median {base:.3f} s over {args.repeat}")
    print(
        f"cold process (import + first render), {args.runs} runs: median {fresh:.3f} s, "
        f"min {min(fresh_runs):.3f} s over {args.repeat} ({fresh / base:.1f}x a bare interpreter)"
    )
    if reference_runs:
        reference = statistics.median(reference_runs)
        print(
            f"cold process of {args.baseline_ref} (same run, interleaved): median {reference:.3f} s, "
            f"min {min(reference_runs):.3f} s; this tree takes {fresh / reference:.2f}x that"
        )
    try:
        cli = cli_seconds(args.runs, args.experiments)
    except (OSError, subprocess.CalledProcessError, AttributeError) as error:
        print(f"cold `harness report --scenario` not timed: {error}")
    else:
        if cli is not None:
            print(f"cold `harness report --scenario` (whole CLI, SQLite), {args.runs} runs: {cli:.3f} s")
    print(f"system page, {args.runs} runs: first {cold:.3f} s")
    print(f"system page, {args.runs} runs: median {median:.3f} s, max {max(warm):.3f} s over {args.repeat}")
    print(f"write_site (index + system page, files), {args.runs} runs: {site:.3f} s")
    print(f"warm target ≤ {TARGET_SECONDS:.1f} s: {'met' if median <= TARGET_SECONDS else 'MISSED'}")
    cold_ok = fresh <= COLD_TARGET_SECONDS
    print(f"cold process target ≤ {COLD_TARGET_SECONDS:.1f} s: {'met' if cold_ok else 'MISSED'}")
    return 0 if median <= TARGET_SECONDS and cold_ok else 1


if __name__ == "__main__":
    sys.exit(main())
