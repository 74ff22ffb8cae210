"""Outage measurement accuracy: the canary against outages of known length, marker lag against known latency.

    .venv/bin/python benchmarks/outage_accuracy.py [--repetitions 5] [--rate-hz 50] [--sandbox] [--json F]

Part 1 (always): a real redis-server on a free 127.0.0.1 port, behind one redis-sentinel (no
replica, so no failover), sampled by the harness canary (kind redis, through Sentinel) at
`--rate-hz` with a 0.5 s request timeout. The server is
* frozen: SIGSTOP, exactly N s, SIGCONT (a stopped process that answers late), and
* killed: SIGKILL, then restarted after N s; its outage ends when its port accepts again.
The injected window runs from the signal to SIGCONT (or to the port accepting); the measured one
is harness.measures' outage window (timed from the signal, as the fault ledger times a fault;
ends at the answer of the first of 3 consecutive successes). Prints p50/p95/max |error| in ms
for freezes and kills. Target: p95 ≤ 20 ms.

Part 2 (`--sandbox`): the same against a fault-proxy link in front of a regional API, disabled
for exactly 200 ms, 1 s and 5 s; and a latency toxic of known size on the link that carries
Redis replication to one region, marker lag compared with the link's one-way latency.

Everything runs on 127.0.0.1 with free ports and is torn down at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from harness.canary import Canary, CanaryTarget  # noqa: E402
from harness.measures import outage_windows, percentile  # noqa: E402
from harness.model import Sample  # noqa: E402
from harness.sandbox.components import port_accepts  # noqa: E402
from harness.sandbox.ports import free_ports  # noqa: E402

__all__: list[str] = []

# A freeze shorter than the canary timeout is latency, not failure: the canary sees no outage.
FREEZES_SECONDS = (1.0, 2.0, 4.5)
KILLS_SECONDS = (0.5, 1.0, 2.0)
PROXY_OUTAGES_SECONDS = (0.2, 1.0, 5.0)
ADDED_LATENCY_MS = (0, 100, 200)
TARGET_ERROR_SECONDS = 0.020
CANARY_TIMEOUT_SECONDS = 0.5
GAP_SECONDS = 1.0  # healthy time between outages, so windows never merge
BENCH_PROXY = "bench-api"
MASTER = "bench"


# ---------------------------------------------------------------- shared


def _signal_at(pid: int, number: int) -> float:
    """Send a signal; the midpoint of the call is when it took effect (± half a few µs)."""
    before = time.monotonic()
    os.kill(pid, number)
    return (before + time.monotonic()) / 2


def _errors_ms(
    samples: list[dict[str, Any]], injected: list[tuple[float, float, float, float]]
) -> tuple[dict[float, list[float]], int]:
    """Per nominal duration, measured - injected outage (ms), each window timed from its fault as the
    ledger times it (the moment before the signal); unmatched injections counted."""
    rows: dict[float, list[float]] = {}
    unmatched = 0
    origin = samples[0]["at_monotonic"]
    canary = [Sample.from_raw(s, origin) for s in samples]
    for nominal, fault_at, start, end in injected:
        windows = [
            w
            for w in outage_windows(canary, fault_at=fault_at - origin)
            if fault_at - origin <= w.start_seconds <= end - origin + 0.1 and w.end_seconds is not None
        ]
        if not windows:
            unmatched += 1
            continue
        window = windows[0]
        rows.setdefault(nominal, []).append((window.duration_seconds - (end - start)) * 1000)
    return rows, unmatched


def _summary(rows: dict[float, list[float]]) -> dict[str, Any]:
    errors = [e for values in rows.values() for e in values]

    def stats(values: list[float]) -> dict[str, Any]:
        absolute = [abs(v) for v in values]
        return {
            "n": len(values),
            "mean_error_ms": round(statistics.fmean(values), 2),
            "p50_abs_error_ms": round(percentile(absolute, 0.50), 2),
            "p95_abs_error_ms": round(percentile(absolute, 0.95), 2),
            "max_abs_error_ms": round(max(absolute), 2),
        }

    return {
        "by_outage": {f"{nominal:g}s": stats(values) for nominal, values in sorted(rows.items()) if values},
        **(stats(errors) if errors else {"n": 0}),
    }


# ---------------------------------------------------------------- part 1: a real Redis, frozen and killed


class _Redis:
    """redis-server plus one Sentinel watching it (no replica: Sentinel never fails over)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port, self.sentinel_port = free_ports(2)
        self.server: subprocess.Popen[bytes] | None = None
        self.sentinel: subprocess.Popen[bytes] | None = None

    def start_server(self) -> float:
        """Start redis-server; returns when its port accepts (the end of a kill's outage)."""
        self.server = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not port_accepts(self.port, 0.05):
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not listen on 127.0.0.1:{self.port}")
            time.sleep(0.0005)
        return time.monotonic()

    def start(self) -> _Redis:
        self.start_server()
        config = self.directory / "sentinel.conf"
        config.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {self.port} 1\n"
            f"sentinel down-after-milliseconds {MASTER} 600000\n"
        )
        self.sentinel = subprocess.Popen(
            [shutil.which("redis-sentinel") or "redis-sentinel", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not port_accepts(self.sentinel_port, 0.05):
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-sentinel did not listen on 127.0.0.1:{self.sentinel_port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        for process in (self.sentinel, self.server):
            if process is None or process.poll() is not None:
                continue
            try:
                os.kill(process.pid, signal.SIGCONT)
            except ProcessLookupError:
                continue
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def measure_redis(repetitions: int, rate_hz: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="outage-accuracy-redis-") as temporary:
        server = _Redis(Path(temporary)).start()
        try:
            target = CanaryTarget("redis", "bench", sentinels=(("127.0.0.1", server.sentinel_port),),
                                  master_name=MASTER)  # fmt: skip
            canary = Canary(target, rate_hz, timeout_seconds=CANARY_TIMEOUT_SECONDS).start()
            freezes: list[tuple[float, float, float, float]] = []
            kills: list[tuple[float, float, float, float]] = []
            try:
                time.sleep(1.0)
                for _ in range(repetitions):
                    for nominal in FREEZES_SECONDS:
                        assert server.server is not None
                        fault_at = time.monotonic()  # the ledger records the fault, then signals
                        start = _signal_at(server.server.pid, signal.SIGSTOP)
                        time.sleep(max(0.0, start + nominal - time.monotonic()))
                        end = _signal_at(server.server.pid, signal.SIGCONT)
                        freezes.append((nominal, fault_at, start, end))
                        time.sleep(GAP_SECONDS)
                    for nominal in KILLS_SECONDS:
                        assert server.server is not None
                        fault_at = time.monotonic()
                        start = _signal_at(server.server.pid, signal.SIGKILL)
                        server.server.wait(timeout=5)
                        time.sleep(max(0.0, start + nominal - time.monotonic()))
                        end = server.start_server()
                        kills.append((nominal, fault_at, start, end))
                        time.sleep(GAP_SECONDS)
            finally:
                samples = canary.stop()
        finally:
            server.stop()
    freeze_rows, freeze_unmatched = _errors_ms(samples, freezes)
    kill_rows, kill_unmatched = _errors_ms(samples, kills)
    return {
        "rate_hz": rate_hz,
        "canary_timeout_seconds": CANARY_TIMEOUT_SECONDS,
        "requests": len(samples),
        "freezes": {**_summary(freeze_rows), "unmatched": freeze_unmatched},
        "kills": {**_summary(kill_rows), "unmatched": kill_unmatched},
    }


# ---------------------------------------------------------------- part 2: the sandbox (--sandbox)


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


def measure_proxy_outages(endpoints: dict[str, Any], repetitions: int, rate_hz: float) -> dict[str, Any]:
    url = endpoints["faultproxy_url"]
    api_port = endpoints["regions"][endpoints["primary_region"]]["api_url"].rsplit(":", 1)[1]
    listen = _api(url, "POST", "/proxies", {"name": BENCH_PROXY, "listen": "127.0.0.1:0",
                                             "upstream": f"127.0.0.1:{api_port}"})["listen"]  # fmt: skip
    canary = Canary(
        CanaryTarget("http", "bench", url=f"http://{listen}"), rate_hz, timeout_seconds=CANARY_TIMEOUT_SECONDS
    ).start()
    injected: list[tuple[float, float, float, float]] = []
    try:
        time.sleep(1.0)
        for _ in range(repetitions):
            for nominal in PROXY_OUTAGES_SECONDS:
                fault_at = time.monotonic()
                start = _timed_enable(url, False)
                time.sleep(max(0.0, start + nominal - time.monotonic()))
                end = _timed_enable(url, True)
                injected.append((nominal, fault_at, start, end))
                time.sleep(GAP_SECONDS)
    finally:
        samples = canary.stop()
    rows, unmatched = _errors_ms(samples, injected)
    return {"rate_hz": rate_hz, "requests": len(samples), "unmatched": unmatched, **_summary(rows)}


def measure_lag(endpoints: dict[str, Any], state_dir: Path, markers: int) -> dict[str, Any]:
    from harness.actions.network import add_latency, remove_latency
    from harness.probes.replication import replication_lag_seconds

    configuration = {**endpoints, "harness_state_dir": str(state_dir)}
    primary = endpoints["primary_region"]
    link = next(link for link in endpoints["links"].values() if link["service"] == "redis")
    region, base_ms = link["from"], link["latency_seconds"] * 1000
    proxy_port = int(link["listen"].rsplit(":", 1)[1])
    replica_url = endpoints["regions"][region]["redis_url"]
    replica_port = replica_url.rsplit(":", 1)[1].split("/")[0]
    replica = redis.Redis.from_url(replica_url, socket_timeout=2)
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
                    lags = [
                        value
                        for name, value in output["replicas"].items()
                        if value is not None and (region in name or name.endswith(f":{replica_port}"))
                    ]
                    if lags:
                        errors.append(lags[0] * 1000 - (base_ms + added_ms))
            finally:
                if added_ms:
                    remove_latency(primary, region, configuration=configuration)
            results[f"{base_ms + added_ms:g}ms"] = {
                "n": len(errors),
                "median_error_ms": statistics.median(errors) if errors else None,
                "p95_abs_error_ms": percentile([abs(e) for e in errors], 0.95) if errors else None,
            }
    finally:
        replica.close()
    return {"region": region, "markers_not_through_proxy": bypassed, "by_one_way_latency": results}


def measure_sandbox(repetitions: int, rate_hz: float, markers: int) -> dict[str, Any]:
    from harness.sandbox import down, up
    from harness.sandbox.examples import example_scenario

    with tempfile.TemporaryDirectory(prefix="outage-accuracy-") as temporary:
        directory = Path(temporary) / "sandbox"
        try:
            sandbox = up(example_scenario(3), directory, components={"redis", "proxy", "api"})
            # Lag first: the sandbox's replicas replicate through the proxy only until Sentinel
            # re-points them at the primary directly (about 10 s after start).
            lag = measure_lag(dict(sandbox.endpoints), Path(temporary) / "state", markers)
            outages = measure_proxy_outages(dict(sandbox.endpoints), repetitions, rate_hz)
        finally:
            down(directory)
    return {"proxy_outages": outages, "replication_lag": lag}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--rate-hz", type=float, default=50.0)
    parser.add_argument("--markers", type=int, default=10)
    parser.add_argument("--sandbox", action="store_true", help="also the fault-proxy and marker-lag parts")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results: dict[str, Any] = {"redis": measure_redis(args.repetitions, args.rate_hz)}
    if args.sandbox:
        results["sandbox"] = measure_sandbox(args.repetitions, args.rate_hz, args.markers)
    print(json.dumps(results, indent=2))
    verdict = "PASS"
    for part in ("freezes", "kills"):
        figures = results["redis"][part]
        p95 = figures.get("p95_abs_error_ms")
        met = p95 is not None and p95 <= TARGET_ERROR_SECONDS * 1000 and figures["unmatched"] == 0
        verdict = verdict if met else "FAIL"
        print(
            f"redis {part}: |error| p50 {figures.get('p50_abs_error_ms')} ms, p95 {p95} ms, "
            f"max {figures.get('max_abs_error_ms')} ms over {figures['n']} outages "
            f"({figures['unmatched']} unmatched); target p95 ≤ {TARGET_ERROR_SECONDS * 1000:.0f} ms"
        )
    print(f"outage accuracy: {verdict}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
