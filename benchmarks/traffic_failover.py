"""Traffic failover accuracy: the traffic canary's measure against an independent observer.

    .venv/bin/python benchmarks/traffic_failover.py [--repetitions 10] [--rate-hz 20] [--json F]

A sandbox of two regions (Redis, the regional APIs, the HAProxy global balancer; health checks
every 0.2 s, fall 3, rise 2). Each repetition: the traffic canary of every client region runs
(`harness.probes.traffic`, `--rate-hz`), and an independent observer asks the balancer as a
us-east-1 client every 5 ms on a fresh connection each time (its own code, not the probe's). At a
random instant us-east-1's API is killed through the harness action (`stop_instance`, journalled
in the fault ledger as any run does), the balancer reroutes its clients to eu-west-1, and the API
is restarted once the balancer has marked it down.

Injected truth: the observer's outage, from the answer of its last success before its first
failure (the API still answered then) to the answer of its first success after it, at 5 ms
resolution. Measured: `traffic_failover_seconds` from the canary's samples and the ledger's
fault (harness.traffic_measures, exactly as grading computes it). Prints every repetition and
p50/p95/max of the error; goal: p95 of |measured - truth| ≤ 100 ms; exit 1 when missed.

Everything runs on 127.0.0.1 with free ports and is torn down at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.actions import instances  # noqa: E402
from harness.measures import percentile  # noqa: E402
from harness.model import HealthCheck, TrafficSettings  # noqa: E402
from harness.probes import traffic  # noqa: E402
from harness.sandbox import down, up  # noqa: E402
from harness.sandbox.examples import example_scenario  # noqa: E402

__all__: list[str] = []

GOAL_SECONDS = 0.100
OBSERVER_INTERVAL_SECONDS = 0.005
EAST = "us-east-1"


class Observer(threading.Thread):
    """A us-east-1 client asking the balancer every 5 ms, each request on a fresh connection."""

    def __init__(self, url: str, header: str) -> None:
        super().__init__(name="observer", daemon=True)
        parts = urllib.parse.urlsplit(url)
        self._host, self._port, self._header = parts.hostname or "127.0.0.1", parts.port, header
        self.halt = threading.Event()
        self.samples: list[tuple[float, float, bool]] = []  # (sent, answered, ok)

    def run(self) -> None:
        while not self.halt.is_set():
            sent = time.monotonic()
            ok = False
            connection = http.client.HTTPConnection(self._host, self._port, timeout=1.0)
            try:
                connection.request("GET", "/health", headers={self._header: EAST})
                response = connection.getresponse()
                response.read()
                ok = 200 <= response.status < 300
            except Exception:  # a failure is an observation
                ok = False
            finally:
                connection.close()
            self.samples.append((sent, time.monotonic(), ok))
            self.halt.wait(max(0.0, sent + OBSERVER_INTERVAL_SECONDS - time.monotonic()))

    def outage(self) -> tuple[float, float] | None:
        """(last success's answer before the first failure, first success's answer after it)."""
        first_failure = next((i for i, (_, _, ok) in enumerate(self.samples) if not ok), None)
        if first_failure is None or first_failure == 0:
            return None
        before = self.samples[first_failure - 1][1]
        after = next((answered for _, answered, ok in self.samples[first_failure:] if ok), None)
        return None if after is None else (before, after)


def repetition(endpoints: dict[str, Any], work: Path, index: int, rate_hz: float) -> dict[str, Any]:
    configuration = {
        **endpoints,
        "harness_state_dir": str(work / f"state-{index}"),
        "run_dir": str(work / f"run-{index}"),
        "run_id": f"bench-{index}",
    }
    observer = Observer(endpoints["traffic"]["url"], endpoints["traffic"]["client_region_header"])
    out: dict[str, Any] = {}
    canary = threading.Thread(
        target=lambda: out.update(traffic.traffic_canary(60, rate_hz, 1.0, configuration=configuration))
    )
    observer.start()
    canary.start()
    try:
        time.sleep(random.uniform(0.6, 1.2))  # a random phase against the canary's ticks and the checks
        instances.stop_instance(f"api-{EAST}", configuration=configuration)
        traffic.wait_for_balancer(EAST, "down", 10, configuration=configuration)
        time.sleep(0.5)
    finally:
        observer.halt.set()
        instances.start_instance(f"api-{EAST}", configuration=configuration)
    traffic.wait_for_balancer(EAST, "up", 10, configuration=configuration)
    time.sleep(0.3)
    traffic.stop_traffic_canary(configuration)
    canary.join(timeout=10)
    observer.join(timeout=5)
    measured = next((m for m in out.get("measurements", []) if m["name"] == "traffic_failover_seconds"), None)
    window = observer.outage()
    truth = None if window is None else window[1] - window[0]
    value = None if measured is None else measured["value"]
    return {
        "measured_seconds": value,
        "lower_bound": bool(measured and measured["lower_bound"]),
        "truth_seconds": truth,
        "error_seconds": None if value is None or truth is None else value - truth,
        "observer_requests": len(observer.samples),
        "evidence": "" if measured is None else measured["evidence"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--rate-hz", type=float, default=20.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    health = HealthCheck("/health", 0.2, 0.1, 3, 2)
    scenario = replace(example_scenario(2), traffic=TrafficSettings(health=health))
    with tempfile.TemporaryDirectory(prefix="bench-traffic-") as temp:
        work = Path(temp)
        sandbox = work / "sandbox"
        try:
            endpoints = up(scenario, sandbox, components={"redis", "api", "balancer"}).endpoints
            results = []
            for index in range(args.repetitions):
                result = repetition(endpoints, work, index, args.rate_hz)
                results.append(result)
                shown = {
                    k: round(v, 4) if isinstance(v, float) else v
                    for k, v in result.items()
                    if k != "evidence"
                }
                print(f"repetition {index + 1}: {shown}", flush=True)
        finally:
            down(sandbox)
    errors = [abs(r["error_seconds"]) for r in results if r["error_seconds"] is not None]
    missing = len(results) - len(errors)
    if not errors:
        print("no repetition produced both a measure and a truth", file=sys.stderr)
        return 1
    p50, p95, worst = percentile(errors, 0.5), percentile(errors, 0.95), max(errors)
    print(
        f"traffic failover at {args.rate_hz:g} Hz, {len(errors)} repetitions: |measured - truth| "
        f"p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, max {worst * 1000:.1f} ms "
        f"(goal p95 <= {GOAL_SECONDS * 1000:.0f} ms); truth "
        f"{min(r['truth_seconds'] for r in results if r['truth_seconds']) * 1000:.0f}"
        f"-{max(r['truth_seconds'] for r in results if r['truth_seconds']) * 1000:.0f} ms"
    )
    if args.json:
        args.json.write_text(json.dumps({"results": results, "p50": p50, "p95": p95, "max": worst}, indent=2))
    if missing:
        print(f"{missing} repetition(s) without a measure or a truth: goal missed", file=sys.stderr)
        return 1
    return 0 if p95 <= GOAL_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
