"""The history of runs (SQLite by default, PostgreSQL by URL) and atomic record files.

A run is one row, written in one transaction: a crash at any point leaves every earlier run
intact and no half-written one. The row keeps the full record and grade as JSON, a light
copy without samples, events and journal but with every measurement derivable from them (for
listings and trends), and indexed columns.

Where the history lives, in order: the URL given, the ``HARNESS_STORE`` environment variable,
or ``history.sqlite3`` in the state directory (``.harness`` unless ``HARNESS_STATE_DIR`` says
otherwise). URLs: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, a plain file path,
or ``postgresql://user@host:port/db``.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from harness import measures
from harness.errors import ConfigError, EnvironmentProblem
from harness.ledger import state_dir
from harness.model import Grade, RunRecord

__all__ = [
    "STORE_ENV",
    "Store",
    "is_postgres_url",
    "open_store",
    "parse_started_at",
    "redact_url",
    "resolve_store_url",
    "write_json_atomic",
    "write_text_atomic",
]

STORE_ENV = "HARNESS_STORE"
SQLITE_FILE = "history.sqlite3"
_POSTGRES_SCHEMES = ("postgresql", "postgres")
# Parts of a record too large for listings; `runs(full=False)` leaves them out.
_HEAVY_FIELDS = ("samples", "events", "journal")
# Serialises schema creation between processes sharing one PostgreSQL history.
_SCHEMA_LOCK_KEY = 0x68617273  # "hars"


# ---------------------------------------------------------------- URLs


def resolve_store_url(url: str | None = None) -> str:
    """The history URL in force: the one given, else $HARNESS_STORE, else SQLite in the state dir."""
    chosen = url or os.environ.get(STORE_ENV)
    if chosen:
        return chosen
    return f"sqlite:///{state_dir() / SQLITE_FILE}"


def is_postgres_url(url: str) -> bool:
    return urlsplit(url).scheme in _POSTGRES_SCHEMES


def redact_url(url: str) -> str:
    """The URL without its password, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _sqlite_path(url: str) -> Path:
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    if "://" in url:
        scheme = urlsplit(url).scheme
        raise ConfigError(
            STORE_ENV, "", f"expected sqlite:///PATH, postgresql://... or a file path, got a {scheme}:// URL"
        )
    return Path(url)


# ---------------------------------------------------------------- times


def parse_started_at(text: str) -> datetime:
    """A record's ``started_at`` (ISO 8601) as an aware UTC datetime; naive times are taken as UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _sqlite_time(moment: datetime) -> str:
    # One fixed width, so that text order is time order.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


# ---------------------------------------------------------------- dialects


@dataclass(frozen=True, slots=True)
class _Dialect:
    """What differs between SQLite and PostgreSQL: column types, placeholders, value codecs."""

    time_type: str
    json_type: str
    placeholder: str
    json_param: str  # how a JSON text parameter is written in SQL
    json_text: str  # how a JSON column is read back as text
    encode_time: Callable[[datetime], Any]
    decode_time: Callable[[Any], datetime]

    def sql(self, text: str) -> str:
        return text.replace("?", self.placeholder).replace("{json}", self.json_param)

    def schema(self) -> tuple[str, ...]:
        return (
            f"""CREATE TABLE IF NOT EXISTS runs (
                run_id TEXT PRIMARY KEY,
                scenario TEXT NOT NULL,
                experiment_path TEXT NOT NULL,
                started_at {self.time_type} NOT NULL,
                verdict TEXT NOT NULL,
                score DOUBLE PRECISION NOT NULL,
                summary {self.json_type} NOT NULL,
                record {self.json_type} NOT NULL,
                grade {self.json_type} NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS runs_by_scenario ON runs (scenario, started_at)",
            "CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs (scenario, experiment_path, started_at)",
            "CREATE INDEX IF NOT EXISTS runs_by_time ON runs (started_at)",
        )


_SQLITE = _Dialect(
    time_type="TEXT",
    json_type="TEXT",
    placeholder="?",
    json_param="?",
    json_text="{}",
    encode_time=_sqlite_time,
    decode_time=parse_started_at,
)
_POSTGRES = _Dialect(
    time_type="TIMESTAMPTZ",
    json_type="JSONB",
    placeholder="%s",
    json_param="%s::jsonb",
    json_text="{}::text",
    encode_time=lambda moment: moment,
    decode_time=lambda value: value.astimezone(UTC),
)

_UPSERT = """
INSERT INTO runs (run_id, scenario, experiment_path, started_at, verdict, score, summary, record, grade)
VALUES (?, ?, ?, ?, ?, ?, {json}, {json}, {json})
ON CONFLICT (run_id) DO UPDATE SET
    scenario = excluded.scenario, experiment_path = excluded.experiment_path,
    started_at = excluded.started_at, verdict = excluded.verdict, score = excluded.score,
    summary = excluded.summary, record = excluded.record, grade = excluded.grade
"""


# ---------------------------------------------------------------- the store


_NON_FINITE = "$non_finite"


def _tag_non_finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {_NON_FINITE: repr(value)}  # 'nan', 'inf' or '-inf'
    if isinstance(value, dict):
        return {key: _tag_non_finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_tag_non_finite(item) for item in value]
    return value


def _untag_non_finite(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _NON_FINITE in value:
            return float(value[_NON_FINITE])
        return {key: _untag_non_finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_untag_non_finite(item) for item in value]
    return value


def _dump(data: Any) -> str:
    """Strict JSON, as PostgreSQL wants it: NaN and infinities travel as tagged objects."""
    try:
        return json.dumps(data, allow_nan=False, default=str)
    except ValueError:
        return json.dumps(_tag_non_finite(data), allow_nan=False, default=str)


def _load(text: str) -> Any:
    data = json.loads(text)
    return _untag_non_finite(data) if _NON_FINITE in text else data


def _light_copy(record: RunRecord, record_data: dict[str, Any]) -> dict[str, Any]:
    """The record without its heavy parts, carrying every measurement derivable from them."""
    light = {key: value for key, value in record_data.items() if key not in _HEAVY_FIELDS}
    given = {m.name for m in record.measurements}
    derived = []
    for name in measures.DERIVED:
        if name in given:
            continue
        try:
            measurement = measures.measure(record, name)
        except Exception:  # a derivation that trips on odd data must not cost the run its place
            continue
        if measurement is not None:
            derived.append(asdict(measurement))
    light["measurements"] = [*record_data["measurements"], *derived]
    return light


class Store:
    """The history of runs; open it with `open_store`. Usable as a context manager."""

    def __init__(self, connection: Any, dialect: _Dialect, url: str) -> None:
        self._connection = connection
        self._dialect = dialect
        self.url = redact_url(url)

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        if self._dialect is _SQLITE:
            # IMMEDIATE takes the write lock up front, so concurrent writers wait (busy_timeout)
            # instead of failing half-way.
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")
        else:
            with self._connection.transaction():
                yield self._connection

    def _create_schema(self) -> None:
        with self._transaction() as db:
            if self._dialect is _POSTGRES:
                db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            for statement in self._dialect.schema():
                db.execute(statement)

    def save(self, record: RunRecord, grade: Grade) -> None:
        """Store a run and its grade in one transaction; saving a run_id again replaces its grade."""
        if grade.run_id != record.run_id:
            raise ValueError(f"grade of run {grade.run_id!r} given for run {record.run_id!r}")
        record_data = record.to_dict()
        summary = _light_copy(record, record_data)
        started = parse_started_at(record.started_at)
        values = (
            record.run_id,
            record.scenario,
            record.experiment_path,
            self._dialect.encode_time(started),
            str(grade.verdict),
            grade.score,
            _dump(summary),
            _dump(record_data),
            _dump(grade.to_dict()),
        )
        with self._transaction() as db:
            db.execute(self._dialect.sql(_UPSERT), values)

    def runs(
        self,
        scenario: str | None = None,
        limit: int | None = None,
        *,
        experiment_path: str | None = None,
        full: bool = True,
        since: datetime | None = None,
    ) -> list[tuple[RunRecord, Grade]]:
        """Stored runs, newest first (only those started at or after `since`, when given). With
        ``full=False`` records come without samples, events and journal, which is much faster for
        listings and trends."""
        conditions: list[str] = []
        params: list[Any] = []
        if since is not None:
            conditions.append("started_at >= ?")
            params.append(self._dialect.encode_time(since.astimezone(UTC)))
        if scenario is not None:
            conditions.append("scenario = ?")
            params.append(scenario)
        if experiment_path is not None:
            conditions.append("experiment_path = ?")
            params.append(experiment_path)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        bound = ""
        if limit is not None:
            bound = "LIMIT ?"
            params.append(int(limit))
        as_text = self._dialect.json_text.format
        columns = f"{as_text('record' if full else 'summary')}, {as_text('grade')}"
        query = f"SELECT {columns} FROM runs {where} ORDER BY started_at DESC, run_id DESC {bound}"
        rows = self._connection.execute(self._dialect.sql(query), params).fetchall()
        return [(RunRecord.from_dict(_load(record)), Grade.from_dict(_load(grade))) for record, grade in rows]

    def last_runs(self, scenario: str) -> dict[str, datetime]:
        """When the newest stored run of each experiment of the scenario started (UTC), by path."""
        query = (
            "SELECT experiment_path, MAX(started_at) FROM runs WHERE scenario = ? GROUP BY experiment_path"
        )
        rows = self._connection.execute(self._dialect.sql(query), (scenario,)).fetchall()
        return {path: self._dialect.decode_time(latest) for path, latest in rows}

    def last_run_at(self, scenario: str, experiment_path: str) -> datetime | None:
        """When the newest stored run of this experiment in this scenario started (UTC)."""
        query = "SELECT MAX(started_at) FROM runs WHERE scenario = ? AND experiment_path = ?"
        (latest,) = self._connection.execute(self._dialect.sql(query), (scenario, experiment_path)).fetchone()
        return None if latest is None else self._dialect.decode_time(latest)


def open_store(url: str | None = None) -> Store:
    """Open (creating if needed) the history at `url`; see the module docstring for defaults."""
    resolved = resolve_store_url(url)
    if is_postgres_url(resolved):
        return _open_postgres(resolved)
    return _open_sqlite(_sqlite_path(resolved))


def _open_sqlite(path: Path) -> Store:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    except (OSError, sqlite3.Error) as exc:
        raise EnvironmentProblem(f"cannot open the history at {path}: {exc}") from None
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed run survives power loss too, not only a killed process.
        connection.execute("PRAGMA synchronous=FULL")
        store = Store(connection, _SQLITE, f"sqlite:///{path}")
        store._create_schema()
    except sqlite3.OperationalError as exc:
        connection.close()
        raise EnvironmentProblem(f"cannot use the history at {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise ConfigError(path, "", f"not a SQLite history: {exc}") from None
    return store


def _open_postgres(url: str) -> Store:
    import psycopg  # here, not at the top: a report read from SQLite never pays its import

    try:
        connection = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EnvironmentProblem(f"cannot connect to the history at {redact_url(url)}: {reason}") from None
    store = Store(connection, _POSTGRES, url)
    try:
        store._create_schema()
    except psycopg.Error as exc:
        connection.close()
        raise EnvironmentProblem(f"cannot create the history tables at {redact_url(url)}: {exc}") from None
    return store


# ---------------------------------------------------------------- record files


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a file so that readers see the old content or the new, never a torn file.

    A temporary file in the same directory is written and fsynced, renamed over `path`, and the
    directory fsynced so that the rename itself survives a crash.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes 0600; reports and records are shared artifacts
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write `data` as JSON with `write_text_atomic`."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
