"""Outage measurement accuracy: the canary against outages of known length, marker lag against known latency.

    .venv/bin/python benchmarks/outage_accuracy.py [--repetitions 20] [--rate-hz 50] [--json out.json]

Part 1: a fault-proxy link in front of a regional API is disabled for exactly 200 ms, 1 s and
5 s (`--repetitions` times each) while an HTTP canary runs at `--rate-hz`. The injected window
runs from the middle of the disable call to the middle of the enable call; the measured one
is harness.measures' outage window (first failed request → first success). Target: |error|
≤ 50 ms at p95.

Part 2: a latency toxic of known size is added to the link that carries Redis replication to
one region; marker lag (probes.replication) is compared with the link's one-way latency.

Everything runs on a local sandbox (127.0.0.1, free ports), torn down at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from actions.network import add_latency, remove_latency  # noqa: E402
from harness.canary import Canary, CanaryTarget  # noqa: E402
from harness.measures import outage_windows  # noqa: E402
from harness.sandbox import down, up  # noqa: E402
from harness.sandbox.examples import example_scenario  # noqa: E402
from probes._window import to_sample  # noqa: E402
from probes.replication import replication_lag_seconds  # noqa: E402

__all__: list[str] = []

OUTAGES_SECONDS = (0.2, 1.0, 5.0)
ADDED_LATENCY_MS = (0, 100, 200)
TARGET_ERROR_SECONDS = 0.050
GAP_SECONDS = 0.6  # healthy time between outages, so windows never merge
BENCH_PROXY = "bench-api"


def _api(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method)
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read()
    return json.loads(text) if text.strip() else None


def _timed_enable(url: str, enabled: bool) -> float:
    """Switch the proxy; the midpoint of the API call is when it took effect (± half the call)."""
    before = time.monotonic()
    _api(url, "POST", f"/proxies/{BENCH_PROXY}", {"enabled": enabled})
    return (before + time.monotonic()) / 2


def _percentile(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


def measure_outages(endpoints: dict[str, Any], repetitions: int, rate_hz: float) -> dict[str, Any]:
    url = endpoints["faultproxy_url"]
    api_port = endpoints["regions"][endpoints["primary_region"]]["api_url"].rsplit(":", 1)[1]
    listen = _api(url, "POST", "/proxies", {"name": BENCH_PROXY, "listen": "127.0.0.1:0",
                                             "upstream": f"127.0.0.1:{api_port}"})["listen"]  # fmt: skip
    canary = Canary(
        CanaryTarget("http", "bench", url=f"http://{listen}"), rate_hz, timeout_seconds=0.5
    ).start()
    injected: list[tuple[float, float, float]] = []  # (nominal seconds, start, end)
    try:
        time.sleep(1.0)
        for _ in range(repetitions):
            for nominal in OUTAGES_SECONDS:
                start = _timed_enable(url, False)
                time.sleep(max(0.0, start + nominal - time.monotonic()))
                end = _timed_enable(url, True)
                injected.append((nominal, start, end))
                time.sleep(GAP_SECONDS)
    finally:
        samples = canary.stop()
    origin = samples[0]["at_monotonic"]
    windows = outage_windows([to_sample(s, origin) for s in samples])
    rows: dict[float, list[float]] = {nominal: [] for nominal in OUTAGES_SECONDS}
    unmatched = 0
    for nominal, start, end in injected:
        inside = [
            w for w in windows if start - 0.1 <= w.start_seconds + origin <= end + 0.1 and w.end_seconds
        ]
        if len(inside) != 1:
            unmatched += 1
            continue
        (window,) = inside
        rows[nominal].append(window.duration_seconds - (end - start))
    errors = [e for values in rows.values() for e in values]
    return {
        "rate_hz": rate_hz,
        "requests": len(samples),
        "unmatched_outages": unmatched,
        "by_outage": {
            f"{nominal:g}s": {
                "n": len(values),
                "mean_error_ms": statistics.fmean(values) * 1000 if values else None,
                "p95_abs_error_ms": _percentile([abs(v) for v in values], 0.95) * 1000 if values else None,
                "max_abs_error_ms": max(abs(v) for v in values) * 1000 if values else None,
            }
            for nominal, values in rows.items()
        },
        "p95_abs_error_ms": _percentile([abs(e) for e in errors], 0.95) * 1000 if errors else None,
    }


def measure_lag(endpoints: dict[str, Any], state_dir: Path, markers: int) -> dict[str, Any]:
    configuration = {**endpoints, "harness_state_dir": str(state_dir)}
    primary = endpoints["primary_region"]
    link = next(link for link in endpoints["links"].values() if link["service"] == "redis")
    region, base_ms = link["from"], link["latency_seconds"] * 1000
    proxy_port = int(link["listen"].rsplit(":", 1)[1])
    replica = redis.Redis.from_url(endpoints["regions"][region]["redis_url"], socket_timeout=2)
    results: dict[str, Any] = {}
    bypassed = 0
    try:
        for added_ms in ADDED_LATENCY_MS:
            if added_ms:
                add_latency(primary, region, latency_ms=added_ms, configuration=configuration)
            try:
                errors = []
                for _ in range(markers):
                    # Only markers that travel through the proxy count (Sentinel may re-point the replica).
                    if int(replica.info("replication")["master_port"]) != proxy_port:
                        bypassed += 1
                        continue
                    output = replication_lag_seconds("redis", timeout_seconds=5, configuration=configuration)
                    lag = next(s["value"] for s in output["samples"] if s["region"] == region)
                    errors.append(lag * 1000 - (base_ms + added_ms))
            finally:
                if added_ms:
                    remove_latency(primary, region, configuration=configuration)
            results[f"{base_ms + added_ms:g}ms"] = {
                "n": len(errors),
                "median_error_ms": statistics.median(errors) if errors else None,
                "p95_abs_error_ms": _percentile([abs(e) for e in errors], 0.95) if errors else None,
            }
    finally:
        replica.close()
    return {"region": region, "markers_not_through_proxy": bypassed, "by_one_way_latency": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=20)
    parser.add_argument("--rate-hz", type=float, default=50.0)
    parser.add_argument("--markers", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="outage-accuracy-") as temporary:
        directory = Path(temporary) / "sandbox"
        try:
            sandbox = up(example_scenario(3), directory, components={"redis", "proxy", "api"})
            # Lag first: the sandbox's replicas replicate through the proxy only until Sentinel
            # re-points them at the primary directly (about 10 s after start).
            lag = measure_lag(dict(sandbox.endpoints), Path(temporary) / "state", args.markers)
            outages = measure_outages(dict(sandbox.endpoints), args.repetitions, args.rate_hz)
        finally:
            down(directory)
    results = {"outages": outages, "replication_lag": lag}
    print(json.dumps(results, indent=2))
    p95 = outages["p95_abs_error_ms"]
    verdict = "PASS" if p95 is not None and p95 <= TARGET_ERROR_SECONDS * 1000 else "FAIL"
    print(f"outage error p95 {p95:.1f} ms, target ≤ {TARGET_ERROR_SECONDS * 1000:.0f} ms: {verdict}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
