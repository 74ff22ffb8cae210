"""The sandbox's processes: how each was started, and how to stop, start, pause and resume it.

Every component runs in its own process group (a new session), writes to ``logs/<name>.log``
and is recorded in ``<sandbox dir>/components.json`` with its pid, process group, command,
environment and port. Everything here works from that file alone, so a sandbox can be
driven (and torn down) after the process that started it has crashed.

A recorded pid is trusted only while the process with that pid has the recorded start time;
a reused pid is never signalled.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal as signals
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from harness.errors import EnvironmentProblem

COMPONENTS_FILE = "components.json"
LOCK_FILE = "components.lock"
HOST = "127.0.0.1"

# Popen objects of children started by this process, kept so that they are reaped once dead.
_children: dict[int, subprocess.Popen[bytes]] = {}

# Sandboxes going down in this process: no component starts in them any more. A signal during `up`
# tears the sandbox down while start workers still run; one spawning after `down` read the
# component list would outlive it (a Sentinel did, in the crash tests). Spawning and closing take
# one lock, so a spawn either is recorded before `down` reads, or is refused.
_closing: set[Path] = set()
_spawn_lock = threading.Lock()


def refuse_spawns(directory: Path) -> None:
    """From now on no component starts in `directory` (until allow_spawns)."""
    with _spawn_lock:
        _closing.add(Path(directory).absolute())


def allow_spawns(directory: Path) -> None:
    with _spawn_lock:
        _closing.discard(Path(directory).absolute())


@dataclass(frozen=True, slots=True)
class Component:
    """One process of the sandbox, as recorded in components.json."""

    name: str  # e.g. "redis-us-east-1", "sentinel-1"
    kind: str  # redis | sentinel | postgres | api | prometheus | faultproxy | *-exporter | etcd | patroni
    region: str  # "" for components that belong to no region
    role: str  # e.g. "primary", "replica", "sentinel", "standby", ""
    pid: int
    pgid: int
    port: int
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)  # added to the harness's environment
    log: str = ""
    cwd: str = ""
    user: str = ""  # OS user the process runs as; "" = the harness's own
    started_at: float = 0.0  # process start time (psutil create_time), guards against pid reuse

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["command"] = list(self.command)
        data["env"] = dict(self.env)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Component:
        return cls(**{**data, "command": tuple(data["command"]), "env": dict(data.get("env", {}))})


# ---------------------------------------------------------------- the record


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with open(directory / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read(directory: Path) -> dict[str, Any]:
    path = directory / COMPONENTS_FILE
    if not path.exists():
        return {"components": {}, "cleanup_paths": []}
    return json.loads(path.read_text())


def _write(directory: Path, data: Mapping[str, Any]) -> None:
    path = directory / COMPONENTS_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2))
    os.replace(temporary, path)


def load_components(directory: Path) -> dict[str, Component]:
    """The recorded components of the sandbox in `directory`, by name, in start order."""
    data = _read(Path(directory))
    return {name: Component.from_dict(item) for name, item in data["components"].items()}


def record_component(directory: Path, component: Component) -> None:
    """Add or replace one component in components.json (atomically, under a file lock)."""
    directory = Path(directory)
    with _locked(directory):
        data = _read(directory)
        data["components"][component.name] = component.to_dict()
        _write(directory, data)


def record_cleanup_path(directory: Path, path: Path) -> None:
    """Remember a path outside the sandbox directory that `down` must delete."""
    directory = Path(directory)
    with _locked(directory):
        data = _read(directory)
        if str(path) not in data["cleanup_paths"]:
            data["cleanup_paths"].append(str(path))
        _write(directory, data)


def cleanup_paths(directory: Path) -> list[Path]:
    """Paths outside the sandbox directory that belong to it."""
    return [Path(p) for p in _read(Path(directory))["cleanup_paths"]]


def forget_components(directory: Path) -> None:
    """Drop components.json and its lock file (after everything recorded has been stopped)."""
    for name in (COMPONENTS_FILE, LOCK_FILE):
        (Path(directory) / name).unlink(missing_ok=True)


# ---------------------------------------------------------------- processes


def _process(component: Component) -> psutil.Process | None:
    """The live process recorded for `component`, or None when it is gone or the pid was reused."""
    if component.pid in _children:
        _children[component.pid].poll()
    try:
        process = psutil.Process(component.pid)
        if abs(process.create_time() - component.started_at) > 0.5:
            return None
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except psutil.NoSuchProcess:
        return None


def is_alive(component: Component) -> bool:
    """Whether the recorded process is still running (a stopped, paused process counts)."""
    return _process(component) is not None


def is_paused(component: Component) -> bool:
    """Whether the recorded process is stopped by SIGSTOP."""
    process = _process(component)
    try:
        return process is not None and process.status() == psutil.STATUS_STOPPED
    except psutil.NoSuchProcess:
        return False


def port_accepts(port: int, timeout_seconds: float = 0.5) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout_seconds):
            return True
    except OSError:
        return False


def _group_members(component: Component) -> list[psutil.Process]:
    """Live processes in the component's process group started no earlier than the component."""
    members = []
    for process in psutil.process_iter(["pid", "create_time"]):
        try:
            if (
                os.getpgid(process.pid) == component.pgid
                and process.info["create_time"] >= component.started_at - 0.5
                and process.status() != psutil.STATUS_ZOMBIE
            ):
                members.append(process)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return members


def signal_group(component: Component, signal: int) -> bool:
    """Send `signal` to the component's process group; False when nothing of it is left."""
    members = _group_members(component) if component.pgid else []
    if not members:
        return False
    for process in members:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal)
    if signal in (signals.SIGTERM, signals.SIGKILL, signals.SIGINT, signals.SIGQUIT):
        # A paused group would never act on a terminating signal.
        for process in members:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signals.SIGCONT)
    return True


def wait_gone(component: Component, timeout_seconds: float) -> bool:
    """Whether the component's process group has exited within `timeout_seconds`."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if component.pid in _children:
            _children[component.pid].poll()
        if not _group_members(component):
            _children.pop(component.pid, None)
            return True
        time.sleep(0.02)
    return False


def _members_by_component(components: Sequence[Component]) -> dict[str, list[psutil.Process]]:
    """One pass over the process table: each component's live group members, by component name.

    `down` asks this every few milliseconds for every component at once; one scan per component
    (what `_group_members` does) costs a scan of the whole table each.
    """
    owners: dict[int, list[Component]] = {}
    for component in components:
        if component.pgid:
            owners.setdefault(component.pgid, []).append(component)
    found: dict[str, list[psutil.Process]] = {c.name: [] for c in components}
    for process in psutil.process_iter(["create_time"]):
        try:
            group = owners.get(os.getpgid(process.pid))
            if not group or process.status() == psutil.STATUS_ZOMBIE:
                continue
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
        for component in group:
            if process.info["create_time"] >= component.started_at - 0.5:
                found[component.name].append(process)
    return found


def _send(processes: Sequence[psutil.Process], signal: int) -> None:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal)
    if signal in (signals.SIGTERM, signals.SIGKILL, signals.SIGINT, signals.SIGQUIT):
        for process in processes:  # a paused process would never act on a terminating signal
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signals.SIGCONT)


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop_all(
    components: Sequence[Component],
    signal_of: Mapping[str, int],
    grace_seconds: float,
    also: Sequence[tuple[psutil.Process, int]] = (),
) -> list[str]:
    """Signal every component's group at once, wait once (bounded) for all, SIGKILL what is left.

    `signal_of` maps a component name to its stop signal (SIGTERM when absent); `also` lists
    processes outside the recorded groups (Patroni's PostgreSQL) with theirs, signalled after
    the groups. Returns the names of components that had to be SIGKILLed.
    """
    members = _members_by_component(components)
    for component in components:
        _send(members[component.name], signal_of.get(component.name, signals.SIGTERM))
    for process, signal in also:
        _send([process], signal)
    extra = [process for process, _ in also]
    left = _wait_all_gone(components, extra, grace_seconds)
    killed = [name for name, processes in left.items() if processes]
    if killed or any(_running(p) for p in extra):
        for processes in left.values():
            _send(processes, signals.SIGKILL)
        _send([p for p in extra if _running(p)], signals.SIGKILL)
        _wait_all_gone(components, extra, 5.0)
    return killed


def _wait_all_gone(
    components: Sequence[Component], extra: Sequence[psutil.Process], timeout_seconds: float
) -> dict[str, list[psutil.Process]]:
    """Wait until every component's group and every `extra` process has exited; what is left."""
    deadline = time.monotonic() + timeout_seconds
    pause = 0.002  # most servers exit within milliseconds of the signal: look early, then back off
    while True:
        for component in components:
            if component.pid in _children:
                _children[component.pid].poll()
        left = _members_by_component(components)
        if not any(left.values()) and not any(_running(p) for p in extra):
            for component in components:
                _children.pop(component.pid, None)
            return left
        if time.monotonic() >= deadline:
            return left
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 0.05)


def processes_naming(paths: Sequence[Path]) -> list[psutil.Process]:
    """Live processes whose command line names one of `paths` (not this process)."""
    names = [str(p) for p in paths]
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or ())
        if process.pid != os.getpid() and any(name in command for name in names):
            found.append(process)
    return found


def kill_strays(paths: list[Path]) -> list[int]:
    """SIGKILL processes whose command line names one of `paths`; their pids.

    Catches servers that left their recorded process group (Patroni starts PostgreSQL in a
    session of its own), so that `down` leaves nothing behind even after a crash.
    """
    names = [str(p) for p in paths]
    killed = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or ())
        if any(name in command for name in names) and process.pid != os.getpid():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
                killed.append(process.pid)
    psutil.wait_procs([p for p in psutil.process_iter() if p.pid in killed], timeout=5)
    return killed


def spawn(
    directory: Path,
    *,
    name: str,
    kind: str,
    region: str,
    role: str,
    port: int,
    command: tuple[str, ...],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str = "",
) -> Component:
    """Start `command` in a new process group, logging to logs/<name>.log, and record it."""
    directory = Path(directory)
    log = directory / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    workdir = cwd or directory
    with _spawn_lock:
        if directory.absolute() in _closing:
            raise EnvironmentProblem(f"{name} not started: the sandbox is going down")
        return _spawn_recorded(directory, name, kind, region, role, port, command, env, workdir, user, log)


def _spawn_recorded(
    directory: Path,
    name: str,
    kind: str,
    region: str,
    role: str,
    port: int,
    command: tuple[str, ...],
    env: Mapping[str, str] | None,
    workdir: Path,
    user: str,
    log: Path,
) -> Component:
    with open(log, "ab") as output:
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env={**os.environ, **(env or {})},
                start_new_session=True,
                user=user or None,
            )
        except FileNotFoundError as error:
            raise EnvironmentProblem(
                f"{command[0]} not found: run scripts/install-system-packages (or `make demo`) to install it"
            ) from error
    _children[process.pid] = process
    try:
        started_at = psutil.Process(process.pid).create_time()
    except psutil.NoSuchProcess:
        started_at = time.time()
    component = Component(
        name=name,
        kind=kind,
        region=region,
        role=role,
        pid=process.pid,
        pgid=process.pid,
        port=port,
        command=tuple(command),
        env=dict(env or {}),
        log=str(log),
        cwd=str(workdir),
        user=user,
        started_at=started_at,
    )
    record_component(directory, component)
    return component


def wait_until_listening(component: Component, timeout_seconds: float = 15.0) -> None:
    """Return once the component's port accepts connections; raise if it dies or times out."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if port_accepts(component.port, 0.2):
            return
        if not is_alive(component):
            raise EnvironmentProblem(
                f"{component.name} exited during start; see {component.log}: {_tail(component)}"
            )
        time.sleep(0.02)
    raise EnvironmentProblem(
        f"{component.name} did not listen on {HOST}:{component.port} within {timeout_seconds:g} s; "
        f"see {component.log}"
    )


def _tail(component: Component, lines: int = 3) -> str:
    try:
        text = Path(component.log).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


# ---------------------------------------------------------------- what actions use


def _component(directory: Path, name: str) -> Component:
    components = load_components(Path(directory))
    if name not in components:
        known = ", ".join(components) or "none"
        raise KeyError(f"no sandbox component {name!r} in {directory} (known: {known})")
    return components[name]


def stop_component(directory: Path, name: str, signal: int = signals.SIGKILL) -> Component:
    """Send `signal` to a component's process group and wait (≤ 10 s) until it has exited.

    SIGKILL is a crash; SIGTERM a clean stop. Stopping a component that is already gone does nothing.
    """
    component = _component(directory, name)
    if signal_group(component, signal):
        wait_gone(component, 10.0)
    if component.kind == "patroni" and signal == signals.SIGKILL:
        # A crashed node takes its PostgreSQL with it; Patroni runs that in a session of its own.
        kill_strays([Path(component.cwd) / f"postgres-{component.region}"])
    return component


def start_component(directory: Path, name: str, timeout_seconds: float = 15.0) -> Component:
    """Run a component's recorded command again and wait until its port accepts connections.

    Already running: returns it unchanged. A restarted Redis primary comes back as a master and
    Sentinel turns it into a replica of whichever server is master now.
    """
    directory = Path(directory)
    component = _component(directory, name)
    if is_alive(component):
        return component
    restarted = spawn(
        directory,
        name=component.name,
        kind=component.kind,
        region=component.region,
        role=component.role,
        port=component.port,
        command=component.command,
        env=component.env,
        cwd=Path(component.cwd) if component.cwd else None,
        user=component.user,
    )
    wait_until_listening(restarted, timeout_seconds)
    return restarted


def _wait_paused(component: Component, paused: bool, timeout_seconds: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while is_alive(component) and is_paused(component) != paused and time.monotonic() < deadline:
        time.sleep(0.01)


def pause_component(directory: Path, name: str) -> Component:
    """SIGSTOP a component's process group: it keeps its sockets but answers nothing."""
    component = _component(directory, name)
    signal_group(component, signals.SIGSTOP)
    _wait_paused(component, True)
    return component


def resume_component(directory: Path, name: str) -> Component:
    """SIGCONT a component paused by pause_component. Safe to call twice."""
    component = _component(directory, name)
    signal_group(component, signals.SIGCONT)
    _wait_paused(component, False)
    return component
