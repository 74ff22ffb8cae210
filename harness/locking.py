"""One run per target at a time, with a lock that dies with its holder.

With a local (SQLite) history the lock is ``fcntl.flock`` on ``<state dir>/locks/<target>.lock``:
the kernel drops it when the holder's process ends, however it ends, kill -9 included, so a
lock is never stale. With a PostgreSQL history, which several machines may share, it is a
session-level advisory lock: the server drops it when the holder's connection closes.

The holder writes its pid, host and start time where a refused run can read them (the lock
file, or the connection's ``application_name``), so the refusal names who holds the target.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import psycopg

from harness.errors import EnvironmentProblem, TargetBusy
from harness.store import is_postgres_url, redact_url, resolve_store_url

__all__ = ["LOCKS_DIR", "Holder", "lock_path", "target_lock"]

LOCKS_DIR = "locks"
# First key of every harness advisory lock, so they never meet another application's.
_ADVISORY_NAMESPACE = 0x686C6F63  # "hloc"
_APPLICATION_PREFIX = "harness-lock"


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a target's lock."""

    pid: int | None
    host: str
    started_at: str  # ISO 8601 UTC; empty when not known

    def describe(self) -> str:
        pid = f"pid {self.pid}" if self.pid is not None else "an unknown process"
        where = f" on {self.host}" if self.host else ""
        since = f", since {self.started_at}" if self.started_at else ""
        return f"{pid}{where}{since}"


def _this_process() -> Holder:
    return Holder(os.getpid(), socket.gethostname(), datetime.now(UTC).isoformat(timespec="seconds"))


def _busy(target_name: str, holder: Holder, where: str) -> TargetBusy:
    return TargetBusy(
        f"target {target_name!r} is busy: another harness run holds its lock ({holder.describe()}; "
        f"{where}); wait for it to finish"
    )


@contextmanager
def target_lock(state_dir: str | Path, target_name: str, store_url: str | None = None) -> Iterator[Holder]:
    """Hold the run lock on `target_name` for the block; yields this process as the holder.

    Raises TargetBusy, naming the holder, when another run has it (no waiting). The lock is an
    advisory lock when the history (`store_url`, else $HARNESS_STORE) is PostgreSQL, else a
    file lock under `state_dir`.
    """
    if not target_name:
        raise ValueError("target_lock needs a target name")
    url = resolve_store_url(store_url)
    if is_postgres_url(url):
        with _advisory_lock(url, target_name) as holder:
            yield holder
    else:
        with _file_lock(Path(state_dir), target_name) as holder:
            yield holder


# ---------------------------------------------------------------- file lock


def lock_path(state_dir: str | Path, target_name: str) -> Path:
    """The lock file of a target; the name is percent-encoded so any target name is one file."""
    return Path(state_dir) / LOCKS_DIR / f"{quote(target_name, safe='')}.lock"


def _read_holder(fd: int) -> Holder:
    try:
        data = json.loads(os.pread(fd, 4096, 0))
        return Holder(int(data["pid"]), str(data["host"]), str(data["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        # The holder is between taking the lock and writing its name.
        return Holder(None, "", "")


@contextmanager
def _file_lock(state_dir: Path, target_name: str) -> Iterator[Holder]:
    path = lock_path(state_dir, target_name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot open the lock file {path}: {exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(target_name, _read_holder(fd), f"lock file {path}") from None
        holder = _this_process()
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(holder)).encode(), 0)
        try:
            yield holder
        finally:
            # Cleared before release, so a refused run never reads a former holder's name.
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


# ---------------------------------------------------------------- advisory lock


def _advisory_key(target_name: str) -> int:
    return zlib.crc32(target_name.encode()) & 0x7FFFFFFF


def _application_name(holder: Holder) -> str:
    return f"{_APPLICATION_PREFIX} {holder.pid} {holder.host}"[:63]  # PostgreSQL keeps 63 bytes


_HOLDER_QUERY = """
SELECT a.application_name, a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
  AND l.classid::bigint = %s AND l.objid::bigint = %s
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def _advisory_holder(connection: psycopg.Connection, key: int) -> Holder:
    row = connection.execute(_HOLDER_QUERY, (_ADVISORY_NAMESPACE, key)).fetchone()
    if row is None:  # released between our attempt and this look-up
        return Holder(None, "", "")
    application, backend_start = row
    parts = (application or "").split(" ")
    if len(parts) >= 3 and parts[0] == _APPLICATION_PREFIX and parts[1].isdigit():
        pid, host = int(parts[1]), parts[2]
    else:
        pid, host = None, ""
    started = backend_start.astimezone(UTC).isoformat(timespec="seconds") if backend_start else ""
    return Holder(pid, host, started)


@contextmanager
def _advisory_lock(url: str, target_name: str) -> Iterator[Holder]:
    holder = _this_process()
    key = _advisory_key(target_name)
    try:
        connection = psycopg.connect(
            url, autocommit=True, connect_timeout=10, application_name=_application_name(holder)
        )
    except psycopg.Error as exc:
        raise EnvironmentProblem(f"cannot reach the history at {redact_url(url)} to lock: {exc}") from None
    try:
        (acquired,) = connection.execute(
            "SELECT pg_try_advisory_lock(%s::int4, %s::int4)", (_ADVISORY_NAMESPACE, key)
        ).fetchone()
        if not acquired:
            raise _busy(target_name, _advisory_holder(connection, key), f"advisory lock at {redact_url(url)}")
        yield holder
    finally:
        connection.close()  # the server releases the session's advisory locks
