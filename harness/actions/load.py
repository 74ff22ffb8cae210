"""Client load on the regional APIs: Locust in a subprocess, paced per region.

`start_load` launches Locust headless with one user class per region (harness/actions/locustfile.py),
each paced to that region's request rate; `stop_load` ends it and returns its statistics as
measurements. Locust always runs as a subprocess: importing it in-process after requests or
boto3 fails with RecursionError.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy
import psutil

from harness import ledger
from harness.actions import _faults
from harness.errors import ConfigError, EnvironmentProblem
from harness.measures import percentile

__all__ = ["start_load", "stop_load"]

_MODULE = "harness.actions.load"
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
_REQUESTS_PER_SECOND_PER_USER = 10.0
_PROOF_SECONDS = 15.0
_STOP_SECONDS = 15.0

# Popen objects of Locust processes this process started, so that they are reaped.
_children: dict[int, subprocess.Popen[bytes]] = {}


def start_load(
    duration_seconds: float,
    requests_per_minute: Mapping[str, float] | None = None,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Start Locust against every region's API for at most `duration_seconds`. Undo with stop_load.

    `requests_per_minute` maps region → rate (e.g. `{us-east-1: 1000, eu-west-1: 800}`); by
    default each region's `requests_per_minute` from the scenario file. Half the requests write
    an item, half read it back. Proof of effect: Locust's live statistics count requests.
    """
    configuration = configuration or {}
    if not 0 < duration_seconds <= 86400:
        raise ConfigError(
            "arguments", "duration_seconds", f"expected 0 < seconds ≤ 1 day, got {duration_seconds!r}"
        )
    targets = _targets(configuration, requests_per_minute)
    directory = Path(configuration.get("run_dir") or ledger.state_dir(configuration) / "load")
    directory.mkdir(parents=True, exist_ok=True)
    prefix = directory / f"locust-{time.time_ns()}"
    users = sum(t["users"] for t in targets)
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "-u", str(users), "-r", str(users), "-t", f"{math.ceil(duration_seconds)}s", "--stop-timeout", "2",
        "--json-file", str(prefix), "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    environment = {**os.environ, "HARNESS_LOAD_TARGETS": json.dumps(targets)}
    fault_id = _faults.open_fault(
        configuration,
        f"{_MODULE}.start_load",
        "locust",
        ledger.Undo(_MODULE, "stop_load", {"stats_prefix": str(prefix)}),
    )
    at = time.monotonic()
    with open(f"{prefix}.log", "ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=environment,
            start_new_session=True,
        )  # fmt: skip
    _children[process.pid] = process
    _write_pid(prefix, process.pid)
    count = _wait_for_requests(prefix, process)
    proven = count > 0
    evidence = (
        f"Locust (pid {process.pid}) sent {count} requests within {_PROOF_SECONDS:g} s"
        if proven
        else f"Locust (pid {process.pid}) counted no request within {_PROOF_SECONDS:g} s; see {prefix}.log"
    )
    return _faults.record_effect(
        configuration,
        fault_id,
        [(proven, evidence)],
        at_monotonic=at,
        pid=process.pid,
        stats_prefix=str(prefix),
        targets=targets,
    )


def stop_load(stats_prefix: str | None = None, configuration: Mapping[str, Any] | None = None) -> dict:
    """Stop the Locust run start_load began (by default the open one in the ledger) and return its stats.

    Returns per-request-name `stats` and `measurements`: load_requests_total_count,
    load_failure_ratio, load_rps and load_p99_latency_seconds. Safe to call twice.
    """
    directory = ledger.state_dir(configuration)
    fault = None
    if stats_prefix is None:
        fault = ledger.open_fault_for(directory, f"{_MODULE}.start_load", "locust")
        if fault is None:
            return {"stopped": False, "detail": "no open start_load fault", "measurements": []}
        stats_prefix = fault.undo.arguments["stats_prefix"]
    prefix = Path(stats_prefix)
    _terminate(prefix)
    for open_fault in ledger.open_faults(directory):
        if open_fault.action == f"{_MODULE}.start_load" and open_fault.undo.arguments.get(
            "stats_prefix"
        ) == str(prefix):
            ledger.record_undone(directory, open_fault.fault_id)
    return {"stopped": True, **summarize(prefix)}


def summarize(prefix: Path) -> dict:
    """Locust's final JSON statistics (`<prefix>.json`) as per-name stats and measurements."""
    path = Path(f"{prefix}.json")
    if not path.exists():
        reason = f"Locust wrote no statistics ({path} missing; see {prefix}.log)"
        return {"stats": [], "measurements": [], "detail": reason}
    entries = json.loads(path.read_text())
    stats = []
    histogram: dict[float, int] = {}
    total = failures = 0
    first, last = math.inf, 0.0
    for entry in entries:
        requests = entry["num_requests"]
        total += requests
        failures += entry["num_failures"]
        first = min(first, entry["start_time"])
        last = max(last, entry["last_request_timestamp"] or 0.0)
        for milliseconds, count in entry["response_times"].items():
            histogram[float(milliseconds)] = histogram.get(float(milliseconds), 0) + count
        average = entry["total_response_time"] / requests / 1000 if requests else None
        stats.append(
            {"name": entry["name"], "method": entry["method"], "requests": requests,
             "failures": entry["num_failures"], "average_seconds": average}
        )  # fmt: skip
    if not total:
        return {"stats": stats, "measurements": [], "detail": "Locust sent no request"}
    elapsed = max(last - first, 1e-9)
    # Locust keeps a histogram (response time in ms -> count): expand it for the one percentile.
    p99 = percentile(numpy.repeat(list(histogram), list(histogram.values())), 0.99) / 1000
    evidence = f"{total} requests, {failures} failed, over {elapsed:.1f} s"
    measurements = [
        _measurement("load_requests_total_count", float(total), "count", evidence),
        _measurement("load_failure_ratio", failures / total, "ratio", evidence),
        _measurement("load_rps", total / elapsed, "rps", evidence),
        _measurement("load_p99_latency_seconds", p99, "seconds", evidence),
    ]
    return {"stats": stats, "measurements": measurements}


def _measurement(name: str, value: float, unit: str, evidence: str) -> dict[str, Any]:
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "source": "locust",
        "evidence": evidence,
        "lower_bound": False,
    }


def _targets(configuration: Mapping[str, Any], rates: Mapping[str, float] | None) -> list[dict[str, Any]]:
    apis = {r: info["api_url"] for r, info in configuration.get("regions", {}).items() if info.get("api_url")}
    if not apis:
        raise ConfigError("configuration", "regions", "expected an api_url in at least one region")
    if rates is None:
        rates = _scenario_rates(configuration)
    if not isinstance(rates, Mapping) or not rates:
        raise ConfigError(
            "arguments", "requests_per_minute", "expected a mapping of region to requests per minute"
        )
    targets = []
    for region, rate in rates.items():
        if region not in apis:
            raise ConfigError(
                "arguments",
                f"requests_per_minute.{region}",
                f"no api_url for this region (regions: {sorted(apis)})",
            )
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 600_000:
            raise ConfigError(
                "arguments", f"requests_per_minute.{region}", f"expected 0 < rate ≤ 600000, got {rate!r}"
            )
        per_second = rate / 60
        users = max(1, math.ceil(per_second / _REQUESTS_PER_SECOND_PER_USER))
        targets.append(
            {"region": region, "url": apis[region], "requests_per_second": per_second, "users": users}
        )
    return targets


def _scenario_rates(configuration: Mapping[str, Any]) -> dict[str, float]:
    path = configuration.get("scenario_path")
    if not path:
        raise ConfigError(
            "arguments",
            "requests_per_minute",
            "expected per-region rates (no scenario_path to read them from)",
        )
    from harness.loading import load_scenario

    scenario = load_scenario(path)
    rates = {r.name: r.requests_per_minute for r in scenario.sandbox_regions if r.requests_per_minute}
    if not rates:
        raise ConfigError(
            path, "regions", "no region sets requests_per_minute; pass requests_per_minute instead"
        )
    return rates


def _write_pid(prefix: Path, pid: int) -> None:
    started = psutil.Process(pid).create_time()
    Path(f"{prefix}.pid").write_text(json.dumps({"pid": pid, "started_at": started}))


def _locust(prefix: Path) -> psutil.Process | None:
    """The Locust process of this run, if it is still running (a reused pid is not ours)."""
    try:
        recorded = json.loads(Path(f"{prefix}.pid").read_text())
    except (OSError, ValueError):
        return None
    if recorded["pid"] in _children:
        _children[recorded["pid"]].poll()
    try:
        process = psutil.Process(recorded["pid"])
        if (
            abs(process.create_time() - recorded["started_at"]) > 0.5
            or process.status() == psutil.STATUS_ZOMBIE
        ):
            return None
        return process
    except psutil.NoSuchProcess:
        return None


def _terminate(prefix: Path) -> None:
    """SIGTERM (Locust writes its statistics and exits), then SIGKILL after a grace period."""
    process = _locust(prefix)
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_SECONDS
    while time.monotonic() < deadline and _locust(prefix) is not None:
        time.sleep(0.05)
    if _locust(prefix) is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        while time.monotonic() < deadline + 5 and _locust(prefix) is not None:
            time.sleep(0.05)
    if (child := _children.pop(process.pid, None)) is not None:
        child.wait(timeout=5)


def _wait_for_requests(prefix: Path, process: subprocess.Popen[bytes]) -> int:
    """Requests Locust's live CSV statistics count, once above zero (or at the deadline)."""
    deadline = time.monotonic() + _PROOF_SECONDS
    while time.monotonic() < deadline:
        count = _csv_requests(prefix)
        if count:
            return count
        if process.poll() is not None:
            if process.returncode not in (0, 1):
                raise EnvironmentProblem(f"Locust exited with {process.returncode}; see {prefix}.log")
            return _csv_requests(prefix)
        time.sleep(0.2)
    return 0


def _csv_requests(prefix: Path) -> int:
    try:
        with open(f"{prefix}_stats.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("Name") == "Aggregated":
                    return int(row.get("Request Count") or 0)
    except (OSError, ValueError):
        return 0
    return 0
