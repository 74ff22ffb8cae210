"""Interrupt trials: run an experiment through the CLI, interrupt it, then check nothing was left behind.

Shared by tests/safety (20 trials) and benchmarks/interrupts.py (100). A trial starts
`python -m harness run` against a running sandbox (Redis behind the fault proxy), sends SIGINT,
SIGTERM or SIGKILL at a random moment, runs `harness recover` after SIGKILL, and then checks
the estate: no open fault in the ledger, every component running and not paused, every proxy
enabled with only the toxics it started with, and a Sentinel-named primary that takes writes
with both replicas attached.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import redis

from harness import ledger, sandbox
from harness.sandbox.examples import example_scenario

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = Path(__file__).resolve().parent / "experiments"
# Long faults (an interrupt lands mid-fault) and one short one (interrupts also land after it).
TRIAL_EXPERIMENTS = ("pause-replica.yaml", "stop-replica.yaml", "latency.yaml", "partition.yaml")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
RUN_TIMEOUT_SECONDS = 90.0
STEADY_TIMEOUT_SECONDS = 20.0

SCENARIO = """\
name: safety
environment: sandbox
regions:
  - {name: us-east-1, primary: true}
  - {name: eu-west-1}
  - {name: ap-southeast-1}
redis: {sentinel_quorum: 2, sentinels: 3, down_after: 30s, failover_timeout: 60s}
targets:
  rto: {measure: rto_seconds, at_most: 60s}
"""


@dataclass(frozen=True, slots=True)
class Estate:
    """A running sandbox and the files a `harness run` against it needs."""

    directory: Path
    endpoints: dict[str, Any]
    endpoints_path: Path
    scenario_path: Path
    proxy_toxics: dict[str, tuple[str, ...]]  # toxic names per proxy at start: the steady state

    def env(self, state_dir: Path) -> dict[str, str]:
        return {
            **os.environ,
            "HARNESS_STATE_DIR": str(state_dir),
            "HARNESS_STORE": f"sqlite:///{state_dir}/history.sqlite3",
            "PYTHONUNBUFFERED": "1",
        }


def write_scenario(path: Path, extra: str = "") -> Path:
    path.write_text(SCENARIO + extra)
    return path


@contextmanager
def running_estate(directory: Path) -> Iterator[Estate]:
    """A Redis + fault proxy sandbox (three regions, Sentinel down-after 30 s: no failover
    during a trial), always brought down."""
    scenario = example_scenario(3)
    scenario = replace(
        scenario, redis=replace(scenario.redis, down_after_seconds=30.0, failover_timeout_seconds=60.0)
    )
    sandbox_dir = directory / "sandbox"
    try:
        box = sandbox.up(scenario, sandbox_dir, components={"redis", "proxy"})
        endpoints = dict(box.endpoints)
        endpoints_path = directory / "endpoints.json"
        endpoints_path.write_text(json.dumps(endpoints))
        toxics = {name: tuple(sorted(toxics)) for name, (_, toxics) in proxies(endpoints).items()}
        yield Estate(
            sandbox_dir, endpoints, endpoints_path, write_scenario(directory / "safety.yaml"), toxics
        )
    finally:
        sandbox.down(sandbox_dir)


def harness_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness", *args]


def start_run(
    estate: Estate, experiment: Path, state_dir: Path, out_dir: Path, log_path: Path, *extra: str
) -> subprocess.Popen[bytes]:
    """`harness run` in a child process whose SIGINT is Ctrl-C (a shell's background job ignores it)."""
    command = harness_command(
        "run",
        str(experiment),
        "--scenario",
        str(estate.scenario_path),
        "--endpoints",
        str(estate.endpoints_path),
        "--out",
        str(out_dir),
        *extra,
    )
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=estate.env(state_dir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def run_harness(
    estate: Estate, state_dir: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m harness ARGS` to completion, with the state dir and history of `state_dir`."""
    return subprocess.run(
        harness_command(*args),
        cwd=ROOT,
        env={**estate.env(state_dir), **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for_fault(state_dir: Path, since_wall: float, timeout_seconds: float = 30.0) -> float | None:
    """Wall time of the first fault applied after `since_wall`, waiting for it; None if none came."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        applied = [
            e["wall"]
            for e in ledger.read_entries(state_dir)
            if e.get("event") == "applied" and e["wall"] >= since_wall
        ]
        if applied:
            return min(applied)
        time.sleep(0.02)
    return None


def proxies(endpoints: dict[str, Any]) -> dict[str, tuple[bool, list[str]]]:
    """Every fault-proxy proxy: (enabled, toxic names)."""
    url = endpoints.get("faultproxy_url")
    if not url:
        return {}
    with urllib.request.urlopen(f"{url}/proxies", timeout=5) as response:
        listed = json.loads(response.read())
    return {name: (p["enabled"], [t["name"] for t in p["toxics"]]) for name, p in listed.items()}


def _primary(endpoints: dict[str, Any]) -> redis.Redis:
    host, _, port = endpoints["redis_sentinels"][0].rpartition(":")
    with redis.Redis(host=host, port=int(port), socket_timeout=2, socket_connect_timeout=2) as sentinel:
        master_host, master_port = sentinel.sentinel_get_master_addr_by_name(endpoints["redis_master_name"])
    return redis.Redis(host=master_host, port=int(master_port), socket_timeout=2, socket_connect_timeout=2)


def leftovers(estate: Estate, state_dir: Path) -> list[str]:
    """What a run left behind right now; empty when the estate is back to its steady state."""
    problems = [f"open fault: {f.action} on {f.target}" for f in ledger.open_faults(state_dir)]
    problems += [
        f"{c.name} is {c.state}: {c.detail}" for c in sandbox.status(estate.directory) if c.state != "running"
    ]
    for name, (enabled, toxics) in proxies(estate.endpoints).items():
        if not enabled:
            problems.append(f"proxy {name} is disabled")
        if tuple(sorted(toxics)) != estate.proxy_toxics.get(name, ()):
            problems.append(f"proxy {name} has toxics {sorted(toxics)}")
    try:
        with _primary(estate.endpoints) as primary:
            primary.set("safety:steady", str(time.time()))
            replicas = primary.info("replication")["connected_slaves"]
        if replicas != len(estate.endpoints["regions"]) - 1:
            problems.append(f"primary has {replicas} replicas attached")
    except (redis.RedisError, OSError, TypeError) as exc:
        problems.append(f"no writable primary through Sentinel: {type(exc).__name__}: {exc}")
    return problems


def wait_until_steady(
    estate: Estate, state_dir: Path, timeout_seconds: float = STEADY_TIMEOUT_SECONDS
) -> list[str]:
    """Poll `leftovers` until it is empty or the time is up; the last problems found."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        problems = leftovers(estate, state_dir)
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.1)


@dataclass(frozen=True, slots=True)
class Trial:
    index: int
    experiment: str
    signal: signal.Signals
    after_fault: bool  # the delay counts from the fault's ledger entry, else from the start
    delay_seconds: float
    twice: bool = False  # a second signal 0-50 ms later, like an impatient second Ctrl-C

    def describe(self) -> str:
        origin = "after the fault" if self.after_fault else "after start"
        twice = " twice" if self.twice else ""
        return (
            f"#{self.index} {self.experiment}: {self.signal.name}{twice} {self.delay_seconds:.2f} s {origin}"
        )


def plan_trials(count: int, seed: int) -> list[Trial]:
    """`count` trials drawn from `seed`, the signals in turn: a quarter at any moment from start, the
    rest mid-fault; a quarter of the SIGINT and SIGTERM ones send their signal twice."""
    rng = random.Random(seed)
    trials = []
    for index in range(count):
        after_fault = rng.random() >= 0.25
        delay = rng.uniform(0.0, 2.0) if after_fault else rng.uniform(0.3, 4.0)
        experiment, signal_ = rng.choice(TRIAL_EXPERIMENTS), SIGNALS[index % len(SIGNALS)]
        twice = signal_ is not signal.SIGKILL and rng.random() < 0.25
        trials.append(Trial(index, experiment, signal_, after_fault, round(delay, 3), twice))
    return trials


@dataclass(frozen=True, slots=True)
class Outcome:
    trial: Trial
    exit_code: int
    phase: str  # before-fault | mid-fault | after-fault | finished (the run ended before the signal)
    recover_output: str
    problems: tuple[str, ...]  # empty: clean
    clean_seconds: float  # from the signal until the estate was verified steady
    log: str

    @property
    def is_clean(self) -> bool:
        return not self.problems


def _phase(state_dir: Path, since_wall: float, signal_wall: float) -> str:
    entries = [e for e in ledger.read_entries(state_dir) if e.get("wall", 0) >= since_wall]
    applied = {e["fault_id"]: e["wall"] for e in entries if e.get("event") == "applied"}
    undone: dict[str, float] = {}
    for entry in entries:
        if entry.get("event") == "undone":
            undone.setdefault(entry["fault_id"], entry["wall"])
    before = [fault for fault, wall in applied.items() if wall < signal_wall]
    if not before:
        return "before-fault"
    if any(undone.get(fault, float("inf")) > signal_wall for fault in before):
        return "mid-fault"
    return "after-fault"


def _expected_exit(trial: Trial, phase: str, code: int) -> str:
    """Why `code` is wrong for this trial, or ""."""
    if phase == "finished":
        return "" if code in (0, 1, 3) else f"run finished before the signal with exit {code}"
    if trial.signal is signal.SIGKILL:
        return "" if code == -signal.SIGKILL else f"expected death by SIGKILL, got exit {code}"
    if phase == "before-fault":
        # The signal may land while the interpreter is still starting (Python's own handler, or an
        # import cut short): nothing was applied yet, so only the estate is checked.
        return ""
    # Death by the signal itself (the handler restored once the run was over) reads as 128 + N to
    # a shell, like an explicit exit 128 + N; whether the faults were undone is checked apart.
    wanted = 128 + trial.signal
    if code in (wanted, -trial.signal):
        return ""
    return f"expected exit {wanted} after {trial.signal.name}, got {code}"


def run_trial(estate: Estate, trial: Trial, state_dir: Path, work_dir: Path) -> Outcome:
    """Run, interrupt, recover (after SIGKILL) and check one trial."""
    log_path = work_dir / f"trial-{trial.index:03d}.log"
    started_wall = time.time()
    process = start_run(estate, EXPERIMENTS / trial.experiment, state_dir, work_dir / "out", log_path)
    try:
        if trial.after_fault:
            wait_for_fault(state_dir, started_wall)
        time.sleep(trial.delay_seconds)
        finished_first = process.poll() is not None
        signal_wall, signal_monotonic = time.time(), time.monotonic()
        if not finished_first:
            process.send_signal(trial.signal)
            if trial.twice:
                time.sleep(random.Random(trial.index).uniform(0.0, 0.05))
                if process.poll() is None:
                    process.send_signal(trial.signal)
        code = process.wait(timeout=RUN_TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    phase = "finished" if finished_first else _phase(state_dir, started_wall, signal_wall)
    problems = []
    if wrong := _expected_exit(trial, phase, code):
        problems.append(wrong)
    recover_output = ""
    if trial.signal is signal.SIGKILL and not finished_first:
        recovered = run_harness(estate, state_dir, "recover", "--dir", str(state_dir))
        recover_output = recovered.stdout + recovered.stderr
        if recovered.returncode != 0:
            problems.append(f"harness recover exited {recovered.returncode}: {recover_output.strip()}")
    problems += wait_until_steady(estate, state_dir)
    log = log_path.read_text(errors="replace")
    if "Traceback" in log and phase != "before-fault":
        problems.append("the run printed a traceback")
    return Outcome(
        trial, code, phase, recover_output, tuple(problems), time.monotonic() - signal_monotonic, log
    )
