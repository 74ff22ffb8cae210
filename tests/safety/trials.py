"""Interrupt trials: run an experiment through the CLI, interrupt it, then check nothing was left behind.

Shared by tests/safety and benchmarks/interrupts.py. A trial starts `python -m harness run`
against a running sandbox (Redis and the regional APIs behind the fault proxy), sends SIGINT,
SIGTERM or SIGKILL at a chosen or random moment, runs `harness recover` after SIGKILL, and then
checks the estate: no open fault in the ledger, every component running and not paused, every
proxy enabled with only the toxics it started with, no load generator left, and a
Sentinel-named primary that takes writes with both replicas attached.

The signal matrix (`run_matrix_case`, experiments/matrix-*.yaml) runs one experiment per local fault
kind (instance failure, partition, latency, load), each with a steady-state probe, a background
`recovery-time` probe and a slow rollback, and lands the signal in a chosen phase by watching the
run's progress lines and the ledger. From the signal it polls the fault proxy and the process
table until the fault's effect is gone.
"""

from __future__ import annotations

import json
import os
import random
import re
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

import psutil
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


def write_scenario(path: Path, extra: str = "", experiments: list[Path] | None = None) -> Path:
    """The safety scenario (plus `extra` lines), listing `experiments` (default: every safety
    experiment) with the rto target, so that their runs are graded."""
    listed = experiments if experiments is not None else sorted(EXPERIMENTS.glob("*.yaml"))
    listing = "".join(f"  - {{path: {e}, cadence: daily, targets: [rto]}}\n" for e in listed)
    path.write_text(SCENARIO + extra + "experiments:\n" + listing)
    return path


@contextmanager
def running_estate(directory: Path) -> Iterator[Estate]:
    """A Redis + regional APIs + fault proxy sandbox (three regions, Sentinel down-after 30 s: no
    failover during a trial), always brought down."""
    scenario = example_scenario(3)
    scenario = replace(
        scenario, redis=replace(scenario.redis, down_after_seconds=30.0, failover_timeout_seconds=60.0)
    )
    sandbox_dir = directory / "sandbox"
    try:
        box = sandbox.up(scenario, sandbox_dir, components={"redis", "proxy", "api"})
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


def start_harness(estate: Estate, state_dir: Path, log_path: Path, *args: str) -> subprocess.Popen[bytes]:
    """`python -m harness ARGS` in the background, SIGINT reset to Ctrl-C, output to `log_path`."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            harness_command(*args),
            cwd=ROOT,
            env=estate.env(state_dir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def wait_for_output(
    log_path: Path, pattern: str, process: subprocess.Popen[bytes], timeout: float = 60
) -> bool:
    """Whether the process printed a line matching `pattern` (regex) within `timeout` seconds."""
    return _wait_for_line(log_path, pattern, process, timeout)


def suite_scenario(path: Path, experiments: list[Path], extra: str = "") -> Path:
    """The safety scenario listing only `experiments` (daily), for `harness suite`."""
    return write_scenario(path, extra, experiments)


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


def load_generators(near: Path | None = None) -> list[psutil.Process]:
    """Locust processes running now (harness.actions.load starts them); with `near`, only those of
    this pytest session (their stats file lies under its base temporary folder), so a load test run
    beside the suite on the same machine is not taken for a leftover of this one."""
    session = _session_folder(near) if near is not None else None
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if not any(part.endswith("locustfile.py") for part in cmdline):
            continue
        if session is not None:
            try:
                stats = process.environ().get("HARNESS_LOAD_PER_WORKER_FILE", "")
            except psutil.Error:
                stats = ""
            if not stats.startswith(session):
                continue
        found.append(process)
    return found


def _session_folder(path: Path) -> str | None:
    """The pytest session's base temporary folder (``.../pytest-N/``) holding `path`, if any."""
    for parent in (path, *path.parents):
        if parent.name.startswith("pytest-") and parent.name[7:].isdigit():
            return f"{parent}/"
    return None


def processes_mentioning(text: str) -> list[str]:
    """Processes whose command line or working folder mentions `text` (a test's temporary folder):
    what a run left. The working folder catches servers that rewrite their title (a Sentinel shows
    only "redis-sentinel 127.0.0.1:PORT [sentinel]")."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        if process.pid == os.getpid() or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(process.info["cmdline"] or [])
        if text in cmdline or text in (process.info["cwd"] or ""):
            found.append(f"pid {process.pid}: {cmdline[:160]} (in {process.info['cwd']})")
    return found


def leftovers(estate: Estate, state_dir: Path) -> list[str]:
    """What a run left behind right now; empty when the estate is back to its steady state."""
    problems = [f"open fault: {f.action} on {f.target}" for f in ledger.open_faults(state_dir)]
    problems += [f"load generator left: pid {p.pid}" for p in load_generators(state_dir)]
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
    said = f"harness: interrupted by {trial.signal.name}: " in log
    if trial.signal is not signal.SIGKILL and phase in ("mid-fault", "after-fault") and not said:
        problems.append("no line saying what was undone")
    return Outcome(
        trial, code, phase, recover_output, tuple(problems), time.monotonic() - signal_monotonic, log
    )


# ---------------------------------------------------------------- the signal matrix

KINDS = ("instance", "partition", "latency", "load")
PHASES = ("baseline", "steady-state", "method", "rollbacks", "report")
UNDO_LIMIT_SECONDS = 2.0  # signal -> the fault's effect gone, on the proxy and the process table
EXIT_LIMIT_SECONDS = 20.0  # signal -> the harness has exited (a 60 s background probe would pass it)


def matrix_experiment_path(kind: str) -> Path:
    """The signal matrix's experiment of one fault kind: a 2 s steady-state probe, a background
    `recovery-time` probe (8 s timeout: still running when a method-phase signal lands), the
    fault held 3 s, and a rollback that waits 3 s."""
    return EXPERIMENTS / f"matrix-{kind}.yaml"


def fault_effects(estate: Estate) -> list[str]:
    """Any fault's effect visible right now on the fault proxy or the process table."""
    visible = []
    for name, (enabled, toxics) in proxies(estate.endpoints).items():
        if not enabled:
            visible.append(f"proxy {name} disabled")
        if tuple(sorted(toxics)) != estate.proxy_toxics.get(name, ()):
            visible.append(f"proxy {name} has toxics {sorted(toxics)}")
    components = sandbox.load_components(estate.directory)
    for component in components.values():
        try:
            process = psutil.Process(component.pid)
            if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                visible.append(f"{component.name} is dead")
            elif process.status() == psutil.STATUS_STOPPED:
                visible.append(f"{component.name} is paused")
        except psutil.NoSuchProcess:
            visible.append(f"{component.name} is dead")
    visible += [f"load generator pid {p.pid}" for p in load_generators(estate.directory)]
    return visible


def _wait_for_line(log_path: Path, pattern: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    compiled = re.compile(pattern)
    while time.monotonic() < deadline:
        if compiled.search(log_path.read_text(errors="replace")):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def _wait_for_child(process: subprocess.Popen[bytes], name: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return False
        if any(child.name() == name for child in children):
            return True
        time.sleep(0.01)
    return False


def _wait_for_effect(
    state_dir: Path, since_wall: float, process: subprocess.Popen[bytes], timeout: float
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(
            e.get("event") == "effect" and e["wall"] >= since_wall for e in ledger.read_entries(state_dir)
        ):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def reach_phase(
    phase: str, process: subprocess.Popen[bytes], log_path: Path, state_dir: Path, since_wall: float
) -> bool:
    """Wait until the run is in `phase` (by its progress lines, its children and the ledger)."""
    if phase == "baseline":
        return _wait_for_line(log_path, r"canaries: \d+ started", process, 60)
    if phase == "steady-state":
        return _wait_for_child(process, "sleep", 60)  # the steady-state probe's process
    if phase == "method":
        return _wait_for_effect(state_dir, since_wall, process, 60)  # applied, effect proven, held
    if phase == "rollbacks":
        return _wait_for_line(log_path, r"rolling back", process, 60)
    if phase == "report":
        return _wait_for_line(log_path, r"checking acknowledged writes", process, 90)
    raise ValueError(phase)


@dataclass(frozen=True, slots=True)
class MatrixOutcome:
    kind: str
    phase: str
    signal: signal.Signals
    reached: bool  # the run was in the phase when the signal was sent
    finished: bool  # the run had printed its report line before the signal: only its exit was met
    exit_code: int
    visible_at_signal: tuple[str, ...]  # the fault's effect when the signal was sent
    undo_seconds: float | None  # signal -> effect gone (None: still there when the run ended)
    ledger_undo_seconds: float | None  # signal -> the ledger's last `undone` entry (the harness's view)
    slowest_poll_seconds: float  # the observer's slowest look at the proxy and process table
    exit_seconds: float
    message: str  # the harness's line saying what was undone
    left_after_exit: tuple[str, ...]  # open faults and visible effects once the harness exited
    left_after_recover: tuple[str, ...]  # the same after `harness recover` (run only if needed)
    leaked: tuple[str, ...]  # processes of the run still alive at the end
    problems: tuple[str, ...]
    log: str

    @property
    def is_clean(self) -> bool:
        return not self.problems


def _left(estate: Estate, state_dir: Path) -> list[str]:
    return [f"open fault: {f.action} on {f.target}" for f in ledger.open_faults(state_dir)] + fault_effects(
        estate
    )


def run_matrix_case(
    estate: Estate,
    kind: str,
    phase: str,
    signal_: signal.Signals,
    state_dir: Path,
    work_dir: Path,
    delay_seconds: float = 0.0,
    twice: bool = False,
) -> MatrixOutcome:
    """Run the `kind` experiment, signal it in `phase` (`delay_seconds` after reaching it), time
    the undo from outside, then check the exit, the message, the estate and the process table.
    After SIGKILL (nothing can be undone in the process) `harness recover` runs, and is checked."""
    case_dir = work_dir / f"{kind}-{phase}-{signal_.name}-{time.monotonic_ns()}"
    case_dir.mkdir(parents=True)
    experiment = matrix_experiment_path(kind)
    log_path = case_dir / "run.log"
    out_dir = case_dir / "out"
    killed = signal_ is signal.SIGKILL
    started_wall = time.time()
    process = start_run(estate, experiment, state_dir, out_dir, log_path)
    problems: list[str] = []
    undo_seconds: float | None = None
    visible: tuple[str, ...] = ()
    finished = False
    slowest_poll = 0.0
    signalled_wall = time.time()
    try:
        reached = reach_phase(phase, process, log_path, state_dir, started_wall)
        if delay_seconds:
            time.sleep(delay_seconds)
        visible = tuple(fault_effects(estate))
        # The run printed its report line: it is over, the signal only meets its exit.
        finished = re.search(r"^report: ", log_path.read_text(errors="replace"), re.MULTILINE) is not None
        signalled, signalled_wall = time.monotonic(), time.time()
        process.send_signal(signal_)
        if twice:  # an impatient second Ctrl-C while the first one's undo runs
            time.sleep(0.02)
            process.send_signal(signal_)
        deadline = signalled + EXIT_LIMIT_SECONDS
        while not killed and time.monotonic() < deadline:
            polled = time.monotonic()
            clean = not fault_effects(estate)
            slowest_poll = max(slowest_poll, time.monotonic() - polled)
            if clean:
                undo_seconds = time.monotonic() - signalled
                break
            time.sleep(0.01)
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        exit_seconds = time.monotonic() - signalled
    except subprocess.TimeoutExpired:
        code, exit_seconds = -1, EXIT_LIMIT_SECONDS
        problems.append(f"still running {EXIT_LIMIT_SECONDS:g} s after {signal_.name}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    undone_walls = [
        e["wall"]
        for e in ledger.read_entries(state_dir)
        if e.get("event") == "undone" and e["wall"] >= signalled_wall
    ]
    ledger_undo_seconds = max(undone_walls) - signalled_wall if visible and undone_walls else None
    left_after_exit = tuple(_left(estate, state_dir))
    left_after_recover: tuple[str, ...] = ()
    if left_after_exit or killed:
        recovered = run_harness(estate, state_dir, "recover", "--dir", str(state_dir))
        if recovered.returncode != 0:
            problems.append(
                f"harness recover exited {recovered.returncode}: {recovered.stderr.strip()[-300:]}"
            )
        left_after_recover = tuple(_left(estate, state_dir))
    log = log_path.read_text(errors="replace")
    lines = [line for line in log.splitlines() if line.strip()]
    message = next((line for line in reversed(lines) if "interrupted by" in line), "")
    if not reached:
        problems.append(f"the run never reached {phase}")
    if finished:
        if code not in (0, 1, 3, 128 + signal_, -signal_):
            problems.append(f"the run had finished before the signal but exited {code}")
    elif killed:
        if code != -signal.SIGKILL:
            problems.append(f"expected death by SIGKILL, got exit {code}")
    else:
        if code != 128 + signal_:
            problems.append(f"expected exit {128 + signal_} after {signal_.name}, got {code}")
        if f"harness: interrupted by {signal_.name}: " not in message:
            problems.append(f"no line saying what was undone (last line: {lines[-1] if lines else ''!r})")
        if visible and "undid" not in message:
            problems.append(
                f"the fault was visible at the signal ({'; '.join(visible)}) but the line names no undo"
            )
        if undo_seconds is None:
            problems.append("the fault's effect was still visible when the run ended")
        elif visible and undo_seconds > UNDO_LIMIT_SECONDS:
            problems.append(
                f"fault undone {undo_seconds:.2f} s after the signal (limit {UNDO_LIMIT_SECONDS:g} s)"
            )
        if left_after_exit:
            problems.append(f"left after the rollback: {list(left_after_exit)}")
        if "Traceback" in log:
            problems.append("the run printed a traceback")
    if left_after_recover:
        problems.append(f"left after harness recover: {list(left_after_recover)}")
    leaked = tuple(processes_mentioning(str(case_dir)))
    if leaked:
        problems.append(f"processes left: {list(leaked)}")
    if phase == "report" and reached and not killed and not finished:
        problems += _stored(estate, state_dir, out_dir)
    problems += wait_until_steady(estate, state_dir)
    return MatrixOutcome(
        kind,
        phase,
        signal_,
        reached,
        finished,
        code,
        visible,
        undo_seconds,
        ledger_undo_seconds,
        slowest_poll,
        exit_seconds,
        message,
        left_after_exit,
        left_after_recover,
        leaked,
        tuple(problems),
        log,
    )


def _stored(estate: Estate, state_dir: Path, out_dir: Path) -> list[str]:
    """A run interrupted while it was being stored still has its run.json and its history entry."""
    from harness import store

    run_files = list(out_dir.glob("*/run.json"))
    if len(run_files) != 1:
        return [f"expected one run.json, found {len(run_files)}"]
    run_id = run_files[0].parent.name
    with store.open_store(estate.env(state_dir)["HARNESS_STORE"]) as history:
        ids = [record.run_id for record, _ in history.runs(full=False)]
    return [] if run_id in ids else [f"run {run_id} has a run.json but is not in the history"]
