"""Client load on the regional APIs: Locust, one process or distributed, paced per region.

`start_load` runs Locust's own distributed mode: a master and N local worker processes (N from the
argument, the configuration's `locust_workers`, the scenario's `load.workers`, else one per core;
0 runs a single Locust process), or it attaches to a master someone else runs (`locust_master`
in the configuration, `--locust-master HOST:PORT` on the CLI: the master's web UI address) whose
workers run on other machines or as pods. Either way the harness drives the master through its web
API: the swarm, live statistics, the workers it knows. `stop_load` ends it and returns Locust's
aggregated statistics as measurements (requests, failures, percentiles, workers).

A worker lost mid-run (its process exited, or the master marked it missing) is written down when
it is seen, and reported by stop_load as a `load.worker_lost` event and in the measurements'
evidence: the load the experiment asked for did not run to its end.

Locust always runs as subprocesses: importing it in-process after requests or boto3 fails with
RecursionError. Local processes bind 127.0.0.1 only, in one process group, and are gone within 2 s
of stop_load (SIGTERM to the master, which collects its workers' last statistics, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
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
MASTER_ENVIRONMENT = "HARNESS_LOCUST_MASTER"  # what --locust-master sets
_REQUESTS_PER_SECOND_PER_USER = 10.0
_READY_SECONDS = 40.0  # Locust processes importing on a loaded machine, workers connecting
_PROOF_SECONDS = 15.0
_STOP_GRACE_SECONDS = 1.2  # SIGTERM → SIGKILL: the master's quit waits 0.5 s for its workers' stats
_MONITOR_SECONDS = 0.25
_HTTP_SECONDS = 2.0
_MAX_WORKERS = 256
_HOST_PORT = re.compile(r"^(?:https?://)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})/?$")

# Popen objects of Locust processes this process started, so that they are reaped.
_children: dict[int, subprocess.Popen[bytes]] = {}
# Worker monitors of the loads this process started, by stats prefix.
_monitors: dict[str, _Monitor] = {}


def start_load(
    duration_seconds: float,
    requests_per_minute: Mapping[str, float] | None = None,
    workers: int | None = None,
    master: str | None = None,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Start Locust against every region's API for at most `duration_seconds`. Undo with stop_load.

    `requests_per_minute` maps region → rate (e.g. `{us-east-1: 1000, eu-west-1: 800}`); by
    default each region's `requests_per_minute` from the scenario file. Half the requests write
    an item, half read it back. `workers`: local Locust worker processes under a local master
    (0: one Locust process; default the configuration's `locust_workers`, the scenario's
    `load.workers`, else one per core). `master`: `HOST:PORT` of a running master's web UI to
    attach to instead (default the configuration's `locust_master`, or HARNESS_LOCUST_MASTER).
    Proof of effect: the master's live statistics count requests for every region, from every
    worker it was started with.
    """
    configuration = configuration or {}
    if not 0 < duration_seconds <= 86400:
        raise ConfigError(
            "arguments", "duration_seconds", f"expected 0 < seconds ≤ 1 day, got {duration_seconds!r}"
        )
    targets = _targets(configuration, requests_per_minute)
    web_url = master_url(master, configuration)
    count = None if web_url else _worker_count(workers, configuration)
    directory = Path(configuration.get("run_dir") or ledger.state_dir(configuration) / "load")
    directory.mkdir(parents=True, exist_ok=True)
    prefix = directory / f"locust-{time.time_ns()}"
    fault_id = _faults.open_fault(
        configuration,
        f"{_MODULE}.start_load",
        "locust",
        ledger.Undo(_MODULE, "stop_load", {"stats_prefix": str(prefix)}),
    )
    at = time.monotonic()
    try:
        if web_url is None:
            assert count is not None
            web_url = _launch(prefix, targets, count)
        else:
            _write_state(prefix, {"mode": "attached", "web_url": web_url, "processes": [], "workers": None})
        proofs = _swarm(prefix, web_url, targets, duration_seconds)
    except BaseException:
        # Nothing half-started outlives a failed start (a worker that could not be spawned, an
        # interrupt while waiting for the workers): stop what is there and close the fault.
        stop_load(str(prefix), configuration)
        raise
    description = f"Locust at {web_url}"
    state = _state(prefix)
    return _faults.record_effect(
        configuration,
        fault_id,
        proofs or [(False, f"{description}: nothing observed")],
        at_monotonic=at,
        pid=state["processes"][0]["pid"] if state["processes"] else None,
        master=web_url,
        workers=state["workers"],
        stats_prefix=str(prefix),
        targets=targets,
    )


def stop_load(stats_prefix: str | None = None, configuration: Mapping[str, Any] | None = None) -> dict:
    """Stop the Locust run start_load began (by default the open one in the ledger) and return its stats.

    Returns per-request-name `stats`, `measurements` (load_requests_total_count, load_failure_ratio,
    load_rps, load_p50/p95/p99_latency_seconds; with workers also load_workers_count and
    load_workers_lost_count) and `events` (`load.worker_lost`, one per worker lost mid-run).
    Every local Locust process is gone within 2 s. Safe to call twice.
    """
    directory = ledger.state_dir(configuration)
    if stats_prefix is None:
        fault = ledger.open_fault_for(directory, f"{_MODULE}.start_load", "locust")
        if fault is None:
            return {"stopped": False, "detail": "no open start_load fault", "measurements": []}
        stats_prefix = fault.undo.arguments["stats_prefix"]
    prefix = Path(stats_prefix)
    _stop(prefix)
    for open_fault in ledger.open_faults(directory):
        if open_fault.action == f"{_MODULE}.start_load" and open_fault.undo.arguments.get(
            "stats_prefix"
        ) == str(prefix):
            ledger.record_undone(directory, open_fault.fault_id)
    return {"stopped": True, **summarize(prefix)}


# ---------------------------------------------------------------- statistics


def summarize(prefix: Path) -> dict:
    """Locust's final statistics (`<prefix>.json`: the master's entries, every worker's requests
    aggregated by Locust) and the worker losses seen (`<prefix>.workers.jsonl`), as per-name stats,
    measurements and events."""
    path = Path(f"{prefix}.json")
    losses = _losses(prefix)
    events = [{"at_monotonic": loss["at_monotonic"], "kind": "load.worker_lost", "detail": loss["detail"]}
              for loss in losses]  # fmt: skip
    if not path.exists():
        reason = f"Locust wrote no statistics ({path} missing; see {prefix}.log)"
        return {"stats": [], "measurements": [], "events": events, "detail": reason}
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
        own: dict[float, int] = {}
        for milliseconds, count in entry["response_times"].items():
            own[float(milliseconds)] = own.get(float(milliseconds), 0) + count
            histogram[float(milliseconds)] = histogram.get(float(milliseconds), 0) + count
        average = entry["total_response_time"] / requests / 1000 if requests else None
        stats.append(
            {"name": entry["name"], "method": entry["method"], "requests": requests,
             "failures": entry["num_failures"], "average_seconds": average,
             **{f"p{round(q * 100)}_seconds": _quantile(own, q) for q in (0.5, 0.95, 0.99)}}
        )  # fmt: skip
    if not total:
        return {"stats": stats, "measurements": [], "events": events, "detail": "Locust sent no request"}
    elapsed = max(last - first, 1e-9)
    state = _state(prefix)
    workers = state.get("workers")
    evidence = f"{total} requests, {failures} failed, over {elapsed:.1f} s"
    by_worker = _requests_by_worker(prefix)
    if workers:
        shares = ", ".join(str(n) for n in sorted(by_worker.values(), reverse=True)) or "none reported"
        evidence += f", aggregated by the Locust master from {workers} workers (requests each: {shares})"
    if losses:
        evidence += f"; {len(losses)} worker(s) lost mid-run ({_describe_losses(losses)}): the load fell short of the plan from then on"  # noqa: E501
    measurements = [
        _measurement("load_requests_total_count", float(total), "count", evidence),
        _measurement("load_failure_ratio", failures / total, "ratio", evidence),
        _measurement("load_rps", total / elapsed, "rps", evidence),
        *(
            _measurement(
                f"load_p{round(q * 100)}_latency_seconds", _quantile(histogram, q), "seconds", evidence
            )
            for q in (0.5, 0.95, 0.99)
        ),
    ]
    if workers is not None and (workers or state.get("mode") == "attached"):
        measurements.append(_measurement("load_workers_count", float(workers), "count", evidence))
        measurements.append(_measurement("load_workers_lost_count", float(len(losses)), "count", evidence))
    return {
        "stats": stats,
        "measurements": measurements,
        "events": events,
        "requests_by_worker": by_worker,
    }


def _requests_by_worker(prefix: Path) -> dict[str, int]:
    try:
        counts = json.loads(Path(f"{prefix}.by_worker.json").read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else {}


def _quantile(histogram: Mapping[float, int], q: float) -> float | None:
    """Locust keeps a histogram (response time in ms → count): the q-quantile in seconds."""
    if not histogram:
        return None
    return percentile(numpy.repeat(list(histogram), list(histogram.values())), q) / 1000


def _describe_losses(losses: list[dict[str, Any]]) -> str:
    return "; ".join(str(loss["detail"].get("what", "?")) for loss in losses)


def _measurement(name: str, value: float | None, unit: str, evidence: str) -> dict[str, Any]:
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "source": "locust",
        "evidence": evidence,
        "lower_bound": False,
    }


# ---------------------------------------------------------------- arguments


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


def master_url(master: str | None, configuration: Mapping[str, Any]) -> str | None:
    """The web UI URL of the master to attach to (`master`, else the configuration's `locust_master`,
    else HARNESS_LOCUST_MASTER), or None to start one here. ConfigError when malformed."""
    if master is not None:
        text, field = master, ("arguments", "master")
    elif configuration.get("locust_master"):
        text, field = str(configuration["locust_master"]), ("configuration", "locust_master")
    elif os.environ.get(MASTER_ENVIRONMENT):
        text, field = os.environ[MASTER_ENVIRONMENT], ("environment", MASTER_ENVIRONMENT)
    else:
        return None
    match = _HOST_PORT.match(text.strip()) if isinstance(text, str) else None
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ConfigError(*field, f"expected HOST:PORT of a Locust master's web UI, got {text!r}")
    scheme = "https" if text.strip().startswith("https://") else "http"
    return f"{scheme}://{match.group(1)}:{match.group(2)}"


def _worker_count(workers: int | None, configuration: Mapping[str, Any]) -> int:
    if workers is not None:
        value, field = workers, ("arguments", "workers")
    elif configuration.get("locust_workers") not in (None, ""):
        value, field = configuration["locust_workers"], ("configuration", "locust_workers")
    elif (scenario_workers := _scenario_workers(configuration)) is not None:
        value, field = scenario_workers
    else:
        return len(os.sched_getaffinity(0)) or 1  # the cores this process may run on (cpusets too)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_WORKERS:
        raise ConfigError(*field, f"expected a whole number of workers 0..{_MAX_WORKERS}, got {value!r}")
    return value


def _scenario_workers(configuration: Mapping[str, Any]) -> tuple[Any, tuple[str, str]] | None:
    path = configuration.get("scenario_path")
    if not path:
        return None
    from harness.loading import load_scenario

    workers = getattr(load_scenario(path), "load_workers", None)
    return None if workers is None else (workers, (str(path), "load.workers"))


# ---------------------------------------------------------------- local processes


def _free_ports(count: int) -> list[int]:
    from harness.sandbox.ports import free_ports

    return free_ports(count)


def _launch(prefix: Path, targets: list[dict[str, Any]], workers: int) -> str:
    """Start a Locust master (or one process when `workers` is 0) and its workers on loopback; each
    process is in `<prefix>.locust.json` before the next starts, so stop_load finds them all."""
    web_port, master_port = _free_ports(2)
    environment = {
        **os.environ,
        "HARNESS_LOAD_TARGETS": json.dumps(targets),
        "HARNESS_LOAD_PER_WORKER_FILE": f"{prefix}.by_worker.json",
    }
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
    head = [
        *base, "--web-host", "127.0.0.1", "--web-port", str(web_port), "--json-file", str(prefix),
        "--only-summary",
    ]  # fmt: skip
    if workers:
        head += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port)]
    state: dict[str, Any] = {
        "mode": "local",
        "web_url": f"http://127.0.0.1:{web_port}",
        "processes": [],
        "workers": workers,
    }
    with open(f"{prefix}.log", "ab") as log:
        leader = subprocess.Popen(
            head, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=environment,
            process_group=0,  # its own group: a Ctrl-C at the terminal is the harness's to handle
        )  # fmt: skip
        _adopt(state, leader, "master" if workers else "locust")
        _write_state(prefix, state)
        for _ in range(workers):
            # Workers join the master's process group: one killpg reaches every process.
            worker = subprocess.Popen(
                [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=environment,
                process_group=leader.pid,
            )  # fmt: skip
            _adopt(state, worker, "worker")
            _write_state(prefix, state)
    return str(state["web_url"])


def _adopt(state: dict[str, Any], process: subprocess.Popen[bytes], role: str) -> None:
    _children[process.pid] = process
    started = psutil.Process(process.pid).create_time()
    state["processes"].append({"pid": process.pid, "started_at": started, "role": role})


def _write_state(prefix: Path, state: Mapping[str, Any]) -> None:
    path = Path(f"{prefix}.locust.json")
    path.with_suffix(".tmp").write_text(json.dumps(state))
    os.replace(path.with_suffix(".tmp"), path)


def _state(prefix: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(f"{prefix}.locust.json").read_text())
    except (OSError, ValueError):
        return {"mode": "legacy", "web_url": None, "processes": _legacy_processes(prefix), "workers": None}


def _legacy_processes(prefix: Path) -> list[dict[str, Any]]:
    # Loads started before distributed mode wrote `<prefix>.pid` (one process); recover still stops them.
    try:
        recorded = json.loads(Path(f"{prefix}.pid").read_text())
    except (OSError, ValueError):
        return []
    return [{"pid": recorded["pid"], "started_at": recorded["started_at"], "role": "locust"}]


def _alive(entry: Mapping[str, Any]) -> psutil.Process | None:
    """The recorded process if it is still running (a reused pid is not ours)."""
    if entry["pid"] in _children:
        _children[entry["pid"]].poll()
    try:
        process = psutil.Process(entry["pid"])
        if abs(process.create_time() - entry["started_at"]) > 0.5 or process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except psutil.NoSuchProcess:
        return None


# ---------------------------------------------------------------- the master's web API


def _get(url: str, timeout: float = _HTTP_SECONDS) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def _post(url: str, form: Mapping[str, str], timeout: float = _HTTP_SECONDS) -> dict[str, Any]:
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def _stats(web_url: str, timeout: float = _HTTP_SECONDS) -> dict[str, Any] | None:
    try:
        return _get(f"{web_url}/harness/stats", timeout)
    except (OSError, ValueError):
        return None


def _swarm(
    prefix: Path, web_url: str, targets: list[dict[str, Any]], duration_seconds: float
) -> list[_faults.Proof]:
    """Wait for the master (and its local workers), start the swarm, watch for the first requests."""
    state = _state(prefix)
    expected = state["workers"]
    deadline = time.monotonic() + _READY_SECONDS
    stats = None
    while time.monotonic() < deadline:
        exited = [p for p in state["processes"] if _alive(p) is None]
        if exited:
            codes = ", ".join(f"{p['role']} pid {p['pid']}" for p in exited)
            raise EnvironmentProblem(f"Locust exited before the swarm ({codes}); see {prefix}.log")
        stats = _stats(web_url, timeout=1.0)
        # Local: every worker started; attached: at least one (workers elsewhere may still connect).
        if stats is not None and (not stats["distributed"] or stats["worker_count"] >= (expected or 1)):
            break
        time.sleep(0.1)
    if stats is None:
        return [(False, f"no Locust master answered at {web_url}/harness/stats within {_READY_SECONDS:g} s")]
    if stats["distributed"] and expected and stats["worker_count"] < expected:
        return [
            (
                False,
                f"{stats['worker_count']} of {expected} Locust workers connected within {_READY_SECONDS:g} s",
            )
        ]
    if stats["distributed"] and stats["worker_count"] == 0:
        return [(False, f"the Locust master at {web_url} has no worker")]
    if expected is None:  # attached: the workers the master has now are the ones the run counts on
        state["workers"] = stats["worker_count"] if stats["distributed"] else 0
        _write_state(prefix, state)
    users = sum(t["users"] for t in targets)
    answer = _post(
        f"{web_url}/swarm",
        {"user_count": str(users), "spawn_rate": str(users), "run_time": f"{math.ceil(duration_seconds)}s",
         "harness_targets": json.dumps(targets)},
    )  # fmt: skip
    if not answer.get("success", False):
        return [(False, f"the Locust master refused the swarm: {answer.get('message', answer)}")]
    monitor = _Monitor(prefix, web_url, state)
    _monitors[str(prefix)] = monitor
    monitor.start()
    return _first_requests(web_url, targets, state)


def _first_requests(
    web_url: str, targets: list[dict[str, Any]], state: Mapping[str, Any]
) -> list[_faults.Proof]:
    """Proof: the master's aggregated statistics count a write to every region."""
    regions = [t["region"] for t in targets]
    deadline = time.monotonic() + _PROOF_SECONDS
    seen: dict[str, int] = {}
    stats = None
    while time.monotonic() < deadline:
        stats = _stats(web_url) or stats
        if stats is not None:
            seen = {
                e["name"].removesuffix(" write"): e["num_requests"]
                for e in stats["entries"]
                if e["name"].endswith(" write")
            }
            if all(seen.get(region) for region in regions):
                break
        time.sleep(0.2)
    who = (
        f"Locust master at {web_url} with {state['workers']} workers"
        if state["workers"]
        else f"Locust at {web_url}"
    )
    total = stats["total_requests"] if stats else 0
    silent = [region for region in regions if not seen.get(region)]
    if silent:
        return [(False, f"{who} counted no request to {', '.join(silent)} within {_PROOF_SECONDS:g} s "
                        f"({total} requests in all); a remote master needs this harness's locustfile "
                        f"with these regions in HARNESS_LOAD_TARGETS")]  # fmt: skip
    return [(True, f"{who} sent {total} requests to {', '.join(regions)} within {_PROOF_SECONDS:g} s")]


class _Monitor(threading.Thread):
    """Watches the workers while the load runs, writing each loss to `<prefix>.workers.jsonl` when
    first seen: a local worker process that exited, or a worker the master marks missing or drops
    while the run is on."""

    def __init__(self, prefix: Path, web_url: str, state: Mapping[str, Any]) -> None:
        super().__init__(name=f"locust-monitor-{prefix.name}", daemon=True)
        self.prefix, self.web_url = prefix, web_url
        self.processes = list(state["processes"])
        self.workers = [p for p in self.processes if p["role"] == "worker"]
        self.halt = threading.Event()
        self.known: dict[str, str] = {}  # worker id → state, as the master last said
        self.lost: set[str] = set()

    def run(self) -> None:
        while not self.halt.wait(_MONITOR_SECONDS):
            self.check()
            if self.processes and not any(_alive(p) for p in self.processes):
                return  # stopped from elsewhere (harness recover): nothing left to watch

    def check(self, ask_master: bool = True) -> None:
        """One look at the workers (also run once by stop_load before it stops anything)."""
        for worker in self.workers:
            key = f"pid:{worker['pid']}"
            if key not in self.lost and _alive(worker) is None:
                child = _children.get(worker["pid"])
                code = child.poll() if child is not None else None
                self._lose(
                    key, {"what": f"worker pid {worker['pid']} exited (code {code})", "pid": worker["pid"]}
                )
        stats = _stats(self.web_url, timeout=0.5) if ask_master else None
        if stats is None or not stats["distributed"]:
            return
        running = stats["state"] in ("spawning", "running")
        now = {w["id"]: w["state"] for w in stats["workers"]}
        for worker_id, worker_state in now.items():
            if worker_state == "missing" and running:
                self._lose(
                    f"id:{worker_id}",
                    {"what": f"master marked worker {worker_id} missing", "worker": worker_id},
                )
        for worker_id in self.known.keys() - now.keys():
            if running:
                self._lose(
                    f"id:{worker_id}", {"what": f"worker {worker_id} left the master", "worker": worker_id}
                )
        self.known = now

    def _lose(self, key: str, detail: dict[str, Any]) -> None:
        if key in self.lost:
            return
        self.lost.add(key)
        line = {"at_monotonic": time.monotonic(), "at_wall": time.time(), "detail": detail}
        with open(f"{self.prefix}.workers.jsonl", "a") as handle:
            handle.write(json.dumps(line) + "\n")

    def finish(self) -> None:
        self.halt.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=0.6)


def _losses(prefix: Path) -> list[dict[str, Any]]:
    """Worker losses written down during the run. A process seen exiting and the master's
    missing-mark may be the same worker: the larger count of the two kinds is reported."""
    try:
        lines = [
            json.loads(line) for line in Path(f"{prefix}.workers.jsonl").read_text().splitlines() if line
        ]
    except (OSError, ValueError):
        return []
    by_pid = [line for line in lines if "pid" in line["detail"]]
    by_master = [line for line in lines if "worker" in line["detail"]]
    return by_pid if len(by_pid) >= len(by_master) else by_master


# ---------------------------------------------------------------- stopping


def _stop(prefix: Path) -> None:
    """Stop the load: local processes SIGTERM then SIGKILL (within 2 s), an attached master through
    its web API (its statistics saved to `<prefix>.json`)."""
    state = _state(prefix)
    monitor = _monitors.pop(str(prefix), None)
    attached = state.get("mode") == "attached"
    if monitor is None and (attached or state.get("workers")):
        monitor = _Monitor(prefix, state["web_url"], state)  # stopped from another process (recover)
    if monitor is not None:
        monitor.finish()
        # One last look: every local worker process, and what an attached master says (briefly: the
        # load must stop within 2 s of an interrupt).
        with contextlib.suppress(Exception):
            monitor.check(ask_master=attached)
    if attached:
        _stop_attached(prefix, state["web_url"])
        return
    _terminate(state["processes"])


def _stop_attached(prefix: Path, web_url: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        _post(f"{web_url}/stop", {}, timeout=1.5)
    # The workers flush their last statistics as their users stop; give them a moment to arrive.
    deadline = time.monotonic() + 1.0
    stats = None
    while time.monotonic() < deadline:
        stats = _stats(web_url, timeout=0.5) or stats
        if stats is not None and stats["state"] in ("stopped", "ready"):
            break
        time.sleep(0.1)
    if stats is not None and not Path(f"{prefix}.json").exists():
        Path(f"{prefix}.by_worker.json").write_text(json.dumps(stats.get("requests_by_worker", {})))
        Path(f"{prefix}.json").write_text(json.dumps(stats["entries"]))


def _terminate(processes: list[dict[str, Any]]) -> None:
    """SIGTERM to the master or lone process (it collects its workers' last statistics, writes them
    and exits), then SIGKILL to whatever is left, within _STOP_GRACE_SECONDS."""
    living = [(entry, process) for entry in processes if (process := _alive(entry)) is not None]
    if not living:
        _reap(processes)
        return
    leader = processes[0]
    with contextlib.suppress(ProcessLookupError):
        os.kill(leader["pid"], signal.SIGTERM) if _alive(leader) else None
    deadline = time.monotonic() + _STOP_GRACE_SECONDS
    while time.monotonic() < deadline and any(_alive(entry) for entry in processes):
        time.sleep(0.03)
    for entry in processes:
        if _alive(entry) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(entry["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(entry) for entry in processes):
        time.sleep(0.03)
    _reap(processes)


def _reap(processes: list[dict[str, Any]]) -> None:
    for entry in processes:
        if (child := _children.pop(entry["pid"], None)) is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=1)
