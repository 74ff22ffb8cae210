"""What a run leaves in the state directory so `harness recover` can clean up after a crash.

The fault ledger covers faults. This covers the rest of what a killed run leaves behind:

* a sandbox started for a run or a suite: ``<state>/sandboxes/<id>.json`` names its directory
  and the owning process; written before the first component starts, removed once it is down;
* a run in progress: ``<state>/runs/<run-id>.json`` names its output folder and the owning
  process; written when the run starts, removed once its record is in the history.

After kill -9 the notes stay. `recover` stops every sandbox whose owner is gone, stores in the
history any run.json the dead run had written, and removes the atomic writes' temporary files
(``.<name>.*.tmp``) from those output folders. A note whose owner still runs is left alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from harness import interrupts
from harness.model import Scenario

__all__ = ["Cleanup", "clean_up", "owned_sandbox", "run_stored", "running_run"]

SANDBOXES_DIR = "sandboxes"
RUNS_DIR = "runs"
# A temporary file younger than this may belong to a writer that is still alive.
_TMP_MIN_AGE_SECONDS = 2.0


def _owner() -> dict[str, Any]:
    pid = os.getpid()
    return {"pid": pid, "create_time": psutil.Process(pid).create_time()}


def _owner_alive(note: dict[str, Any]) -> bool:
    """Whether the process that wrote the note still runs (the same process, not a reused pid)."""
    try:
        process = psutil.Process(int(note["pid"]))
        return abs(process.create_time() - float(note["create_time"])) < 0.5
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


def _notes(state_dir: Path, kind: str) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted((Path(state_dir) / kind).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        found.append((path, data if isinstance(data, dict) else {}))
    return found


def _sandbox_note(state_dir: Path, directory: Path) -> Path:
    digest = hashlib.sha1(str(directory).encode()).hexdigest()[:16]
    return Path(state_dir) / SANDBOXES_DIR / f"{digest}.json"


@contextmanager
def owned_sandbox(
    scenario: Scenario,
    directory: Path,
    state_dir: Path,
    *,
    components: Collection[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Iterator[Any]:
    """`sandbox.up` for a run: noted in the state dir first (so `harness recover` can stop it after
    kill -9), always brought down, and the note removed once it is down."""
    from harness import sandbox

    directory = Path(directory).absolute()
    note = _sandbox_note(state_dir, directory)
    _write(note, {"directory": str(directory), "scenario": scenario.name, **_owner()})
    try:
        try:
            box = sandbox.up(scenario, directory, components=components, progress=progress)
        except BaseException:
            interrupts.CONTROLLER.note_stopped("the sandbox")  # up tore down what it had started
            raise
        try:
            yield box
        finally:
            with interrupts.deferred():  # a first signal now must not leave half a sandbox
                interrupts.CONTROLLER.note_stopped("the sandbox")
                box.down()
    finally:
        note.unlink(missing_ok=True)


def _run_note(state_dir: Path, run_id: str) -> Path:
    return Path(state_dir) / RUNS_DIR / f"{run_id}.json"


def running_run(state_dir: Path, run_id: str, out_dir: Path) -> None:
    """Note a run in progress and where it writes, for `recover` after a crash."""
    _write(
        _run_note(state_dir, run_id), {"run_id": run_id, "out_dir": str(Path(out_dir).absolute()), **_owner()}
    )


def run_stored(state_dir: Path, run_id: str) -> None:
    """The run's record is in the history: nothing of it is left to recover."""
    _run_note(state_dir, run_id).unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class Cleanup:
    """What `clean_up` did, one line each."""

    stopped: tuple[str, ...] = ()
    stored: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    busy: tuple[str, ...] = ()  # notes left alone because their owner still runs

    @property
    def is_empty(self) -> bool:
        return not (self.stopped or self.stored or self.removed or self.errors)


def _stray_temporaries(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    now = time.time()
    found = []
    for path in [*folder.glob(".*.tmp"), *folder.glob("*/.*.tmp")]:
        with suppress(OSError):
            if now - path.stat().st_mtime >= _TMP_MIN_AGE_SECONDS:
                found.append(path)
    return found


def clean_up(state_dir: Path, store_url: str | None = None) -> Cleanup:
    """Stop sandboxes and finish runs whose owner died; see the module docstring."""
    from harness import report, sandbox, store

    stopped, stored, removed, errors, busy = [], [], [], [], []
    for note, data in _notes(state_dir, SANDBOXES_DIR):
        if _owner_alive(data):
            busy.append(f"sandbox {data.get('directory')} (pid {data.get('pid')} still runs)")
            continue
        directory = data.get("directory")
        if directory:
            try:
                names = sandbox.down(Path(directory))
            except Exception as error:  # report it and keep the note for another try
                errors.append(f"could not stop the sandbox in {directory}: {type(error).__name__}: {error}")
                continue
            what = f"{len(names)} process(es)" if names else "nothing was running"
            stopped.append(f"sandbox {directory} left by pid {data.get('pid')}: {what}")
        note.unlink(missing_ok=True)
    live_outputs = set()
    dead_runs = []
    for note, data in _notes(state_dir, RUNS_DIR):
        if _owner_alive(data):
            busy.append(f"run {data.get('run_id')} (pid {data.get('pid')} still runs)")
            live_outputs.add(data.get("out_dir"))
        else:
            dead_runs.append((note, data))
    for note, data in dead_runs:
        out_dir = Path(str(data.get("out_dir") or "."))
        run_file = out_dir / str(data.get("run_id")) / "run.json"
        if run_file.exists():
            try:
                record, grade = report.load_run(run_file)
                if grade is None:
                    raise ValueError("run.json holds no grade")
                with store.open_store(store_url) as history:
                    history.save(record, grade)
                stored.append(f"run {record.run_id} from {run_file}")
            except Exception as error:
                errors.append(f"could not store {run_file} in the history: {type(error).__name__}: {error}")
                continue
        if str(out_dir) not in live_outputs:
            for path in _stray_temporaries(out_dir):
                path.unlink(missing_ok=True)
                removed.append(str(path))
        note.unlink(missing_ok=True)
    for kind in (SANDBOXES_DIR, RUNS_DIR):  # the notes' own atomic writes
        for path in _stray_temporaries(Path(state_dir) / kind):
            path.unlink(missing_ok=True)
            removed.append(str(path))
    return Cleanup(tuple(stopped), tuple(stored), tuple(removed), tuple(errors), tuple(busy))
