"""Propagation accuracy: the convergence probe's visibility latency against an injected link latency.

    .venv/bin/python benchmarks/propagation.py [--repetitions 3] [--seconds 4] [--rate-hz 20]
                                               [--latencies 0,100,500] [--json F]

A two-region active-active sandbox (PostgreSQL 15 + pglogical both ways, every replication
connection through the fault proxy) is started once. Each repetition runs the probe
(`harness.probes.convergence`) for `--seconds` at every latency L (ms, added each way on the
link by `harness.actions.network.add_latency`; 0 = the link's own distance only). The truth of a
run at L is the baseline (the median of the 0 ms runs' medians, per pair) + L; its error is the
run's median visibility latency minus that truth, per region pair. Prints per latency the measured
p50/p95/p99 and the error, then the p95 of |error| over every run and pair. Goal: ≤ 20 ms;
exit 1 when missed.

The probe's own writes commit with ``synchronous_commit=on`` here (a DSN option): with the
sandbox's ``off``, a change leaves only when the WAL writer flushes it (every 200 ms), which is
the estate's propagation, not the probe's error, and would hide the latter under ±100 ms.

Everything runs on 127.0.0.1 with free ports and is torn down at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.actions import network  # noqa: E402
from harness.measures import percentile  # noqa: E402
from harness.model import PostgresSettings  # noqa: E402
from harness.probes.convergence import convergence  # noqa: E402
from harness.sandbox.examples import example_scenario  # noqa: E402
from harness.sandbox.lifecycle import down, up  # noqa: E402

__all__: list[str] = []

TARGET_ERROR_SECONDS = 0.020
A, B = "us-east-1", "eu-west-1"


def _synchronous(dsn: str) -> str:
    parts = urllib.parse.urlsplit(dsn)
    query = [*urllib.parse.parse_qsl(parts.query), ("options", "-c synchronous_commit=on")]
    # %20, not '+': libpq reads a '+' in a URI literally.
    encoded = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
    return urllib.parse.urlunsplit(parts._replace(query=encoded))


def _configuration(endpoints: dict[str, Any], state_dir: str) -> dict[str, Any]:
    regions = {
        r: {**info, "postgres_dsn": _synchronous(info["postgres_dsn"])}
        for r, info in endpoints["regions"].items()
    }
    return {**endpoints, "regions": regions, "harness_state_dir": state_dir}


def _run(
    configuration: dict[str, Any], latency_ms: int, seconds: float, rate_hz: float
) -> dict[str, list[float]]:
    if latency_ms:
        network.add_latency(A, B, latency_ms, configuration=configuration)
    try:
        output = convergence(seconds, rate_hz=rate_hz, settle_seconds=10.0, configuration=configuration)
    finally:
        if latency_ms:
            network.remove_latency(A, B, configuration=configuration)
    by_pair: dict[str, list[float]] = {}
    for sample in output["samples"]:
        if sample["ok"]:
            by_pair.setdefault(sample["region"], []).append(sample["value"])
    failed = output["events"][-1]["detail"].get("failed_writes", {})
    if any(failed.values()):
        raise SystemExit(
            f"probe writes failed at {latency_ms} ms: {output['events'][-1]['detail'].get('last_failure')}"
        )
    unseen = sum(1 for s in output["samples"] if not s["ok"])
    if unseen:
        print(f"  warning: {unseen} write(s) not seen in time at {latency_ms} ms", file=sys.stderr)
    return by_pair


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rate-hz", type=float, default=20.0)
    parser.add_argument(
        "--latencies", default="0,100,500", help="milliseconds, comma separated; 0 is the baseline"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        latencies = sorted({int(x) for x in args.latencies.split(",")} | {0})
    except ValueError:
        print(
            f"--latencies: expected whole milliseconds separated by commas, got {args.latencies!r}",
            file=sys.stderr,
        )
        return 2
    if args.repetitions < 1 or args.seconds <= 0 or args.rate_hz <= 0:
        print("--repetitions, --seconds and --rate-hz must be positive", file=sys.stderr)
        return 2
    directory = Path(tempfile.mkdtemp(prefix="bench-propagation-"))
    scenario = dataclasses.replace(example_scenario(2), postgres=PostgresSettings(topology="active-active"))
    runs: list[tuple[int, str, float, list[float]]] = []  # latency, pair, median, values
    started = time.monotonic()
    try:
        box = up(scenario, directory, components={"proxy", "postgres"})
        configuration = _configuration(dict(box.endpoints), str(directory / "state"))
        took = time.monotonic() - started
        print(f"estate up in {took:.1f} s; {args.repetitions} repetition(s) of {latencies} ms")
        for repetition in range(args.repetitions):
            for latency in latencies:
                for pair, values in sorted(_run(configuration, latency, args.seconds, args.rate_hz).items()):
                    runs.append((latency, pair, percentile(values, 0.5), values))
                print(f"  repetition {repetition + 1}, {latency} ms done")
    finally:
        down(directory)
    pairs = sorted({pair for _, pair, _, _ in runs})
    baseline = {
        pair: percentile([m for lat, p, m, _ in runs if lat == 0 and p == pair], 0.5) for pair in pairs
    }
    errors: list[float] = []
    rows = []
    print(f"\n{'latency':>8} {'pair':<24} {'p50':>9} {'p95':>9} {'p99':>9} {'truth':>9} {'error p50':>10}")
    for latency in latencies:
        for pair in pairs:
            mine = [(m, v) for lat, p, m, v in runs if lat == latency and p == pair]
            values = [x for _, v in mine for x in v]
            truth = baseline[pair] + latency / 1000
            run_errors = [m - truth for m, _ in mine]
            if latency:
                errors.extend(abs(e) for e in run_errors)
            row = {
                "latency_ms": latency,
                "pair": pair,
                "p50_ms": percentile(values, 0.5) * 1000,
                "p95_ms": percentile(values, 0.95) * 1000,
                "p99_ms": percentile(values, 0.99) * 1000,
                "truth_ms": truth * 1000,
                "run_errors_ms": [e * 1000 for e in run_errors],
            }
            rows.append(row)
            median_error = percentile(run_errors, 0.5) * 1000
            print(
                f"{latency:>6} ms {pair:<24} {row['p50_ms']:>6.1f} ms {row['p95_ms']:>6.1f} ms "
                f"{row['p99_ms']:>6.1f} ms {row['truth_ms']:>6.1f} ms {median_error:>+7.1f} ms"
            )
    error_p95 = percentile(errors, 0.95) if errors else float("nan")
    ok = bool(errors) and error_p95 <= TARGET_ERROR_SECONDS
    print(
        f"\npropagation error (|run median - (baseline + injected)|, {len(errors)} runs x pairs): "
        f"p95 {error_p95 * 1000:.1f} ms, max {max(errors, default=float('nan')) * 1000:.1f} ms; "
        f"goal <= {TARGET_ERROR_SECONDS * 1000:.0f} ms: {'met' if ok else 'MISSED'}"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"rows": rows, "error_p95_ms": error_p95 * 1000, "met": ok}, indent=2)
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
