"""Requests per second from one Locust process and from a Locust master with 2 workers, side by side.

    .venv/bin/python benchmarks/load.py [--seconds 12] [--rate 30000] [--json out.json]

Both runs go through harness.actions.load (start_load / stop_load, the ledger, the same
locustfile) against the same sandbox regional APIs (3 regions, Redis + API only), one after the
other in one process, asking for far more than either can send (`--rate` requests per minute per
region, paced at 10 requests per second per user), so each run sends what its Locust processes
can. The figure is Locust's own: requests ÷ first to last request, from the master's aggregated
statistics. Printed: requests per second, failure ratio, p50/p99, each worker's share, and the
ratio distributed ÷ single.

On this project's 2-core machine the load generator, the regional APIs and Redis share the same
two cores, so a second and third Locust process mostly take CPU from the servers: the ratio says
how much one machine gains, not what workers on their own machines give (there it grows with the
workers until the system under test saturates). No goal is set for the ratio; the benchmark fails
(exit 1) only when a run sends nothing or more than 5 % of its requests fail.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.actions.load import start_load, stop_load
from harness.sandbox import down, up
from harness.sandbox.examples import example_scenario

MAX_FAILURE_RATIO = 0.05


def _measure(output: dict[str, Any], name: str) -> float | None:
    found = [m["value"] for m in output.get("measurements", []) if m["name"] == name]
    return found[0] if found else None


def _run(
    configuration: dict[str, Any], rates: dict[str, float], workers: int, seconds: float
) -> dict[str, Any]:
    started = start_load(seconds + 30, rates, workers=workers, configuration=configuration)
    try:
        if not started["effect_proven"]:
            raise SystemExit(f"load did not start: {started['evidence']}")
        time.sleep(seconds)
    finally:
        output = stop_load(configuration=configuration)
    return {
        "workers": workers,
        "rps": _measure(output, "load_rps"),
        "requests": _measure(output, "load_requests_total_count"),
        "failure_ratio": _measure(output, "load_failure_ratio"),
        "p50_seconds": _measure(output, "load_p50_latency_seconds"),
        "p99_seconds": _measure(output, "load_p99_latency_seconds"),
        "requests_by_worker": sorted(output.get("requests_by_worker", {}).values(), reverse=True),
        "users": sum(t["users"] for t in started["targets"]),
    }


def _line(label: str, run: dict[str, Any]) -> str:
    shares = f", per worker {run['requests_by_worker']}" if run["requests_by_worker"] else ""
    return (
        f"{label:<28} {run['rps'] or 0:8.1f} req/s  ({run['requests'] or 0:.0f} requests, "
        f"{(run['failure_ratio'] or 0) * 100:.2f} % failed, p50 {(run['p50_seconds'] or 0) * 1000:.0f} ms, "
        f"p99 {(run['p99_seconds'] or 0) * 1000:.0f} ms, {run['users']} users{shares})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="measured seconds per run")
    parser.add_argument("--rate", type=float, default=30_000, help="requests per minute asked per region")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as temporary:
        root = Path(temporary)
        estate = up(example_scenario(3), root / "sandbox", components={"redis", "api"})
        try:
            configuration = {
                **estate.endpoints,
                "harness_state_dir": str(root / "state"),
                "run_dir": str(root / "run"),
            }
            rates = dict.fromkeys(estate.endpoints["regions"], args.rate)
            single = _run(configuration, rates, 0, args.seconds)
            distributed = _run(configuration, rates, 2, args.seconds)
        finally:
            down(root / "sandbox")
    ratio = (distributed["rps"] or 0) / single["rps"] if single["rps"] else float("nan")
    print(f"load against the sandbox APIs (3 regions), {args.seconds:g} s each, {os.cpu_count()} cores:")
    print(_line("one Locust process", single))
    print(_line("master + 2 workers", distributed))
    print(f"ratio distributed / single: {ratio:.2f}x")
    if args.json:
        args.json.write_text(
            json.dumps({"single": single, "distributed": distributed, "ratio": ratio}, indent=2)
        )
    problems = []
    for label, run in (("single", single), ("distributed", distributed)):
        if not run["requests"]:
            problems.append(f"{label}: no request")
        elif (run["failure_ratio"] or 0) > MAX_FAILURE_RATIO:
            problems.append(f"{label}: {run['failure_ratio']:.1%} of requests failed")
    for problem in problems:
        print(f"MISSED: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
