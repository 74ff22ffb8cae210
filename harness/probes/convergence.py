"""Convergence of an active-active store, Jepsen set-full style, per region pair.

While it runs (``background: true``), a writer in every region

* adds **unique elements** (``convergence_elements``) at `rate_hz`, and
* updates **per-key registers** (``convergence_registers``) at `register_rate_hz`; every region
  writes the same keys (``<token>/e<epoch>/k<i>``: a new set of `keys_per_epoch` keys every
  `epoch_seconds`), so while regions are cut off from each other both sides write the same keys,

and a reader in every region polls (every `poll_seconds` while a write from another region is
outstanding) for the elements the other regions wrote. Everything is written and read at each
region's **own** endpoint: the probe never crosses a link itself, replication does.

What lands in the run record (grading, ``harness.convergence_measures``, recomputes from it):

* ``Sample(probe="propagation", region="<origin>-><reader>")`` per element and other region:
  ``at_seconds`` = the write's acknowledgement, value = the answer of the first read in the
  other region that showed it minus that acknowledgement (ok). Its resolution is one poll period
  (`poll_seconds`; 50 ms while a write has been outstanding over 1 s, as through a cut)
  plus a read's round trip (the element became visible somewhere between the last read that
  missed it and the one that showed it). Not shown by `timeout_seconds` after the ack, or by
  the end: ok False, value = the time waited (a lower bound), error ``not seen within X s`` or
  ``unreachable: ...`` when the region could not be read meanwhile.
* ``convergence.started``: regions, the pairs that must be measured, rates, the epoch clock
  (the event's time is epoch 0's start), poll and digest periods.
* ``convergence.register_write`` per register write: key, value, origin, ``prev`` (the value the
  writer's region held for the key when it wrote, read under a row lock in the same
  transaction: who it had seen), ``acked`` and ``commit_us`` (``pg_xact_commit_timestamp`` of its
  transaction, microseconds since 1970). A write whose outcome is unknown has ``acked`` false.
* ``convergence.digest`` whenever a region's digest of a closed epoch (md5 over the epoch's
  elements and register values) changes (first sighting included); ``digest`` None with an
  ``error`` when the region could not be read. Rounds run every `digest_seconds`; the
  ``convergence.stopped`` event names the last round, so between two recorded changes the digest
  was seen unchanged at every round.
* ``convergence.final`` per region, read after the writers stop and the regions settle (at most
  `settle_seconds`): every register of the probe (value, origin, ``commit_us`` of the row as
  that region holds it: pglogical keeps the origin's commit timestamp) and the acknowledged
  elements the region does not hold.
* ``convergence.stopped``: acknowledged and failed writes per region, stale reads per pair
  (reads sent after a write's acknowledgement that did not show it), the last digest round.

Bounds: `duration_seconds` ≤ 3600 of writing, then at most `settle_seconds`; at most
`max_elements` elements per region; rates ≤ 50 Hz; every statement times out after 1 s; a stop
request (`harness.probes._cancel`) ends writing and settling within 0.2 s (the final read still
happens, bounded by the statement timeout).

Against your own active-active service: the probe needs, per region, an endpoint that can
(1) add an element, (2) write a register returning the previous value and the commit
timestamp, (3) read which of a list of element ids it holds, (4) digest the data of a key range
and (5) list a key range's registers with their commit timestamps: the `Endpoint` protocol, the
only thing the measurement logic (`run`) talks to. Two transports implement it:
`PostgresEndpoint` over a DSN (``configuration["regions"][region]["postgres_dsn"]``, the tables
of harness.sandbox.pglogical.SCHEMA) and `harness.probes._convergence_http.HttpEndpoint` over
``configuration["regions"][region]["convergence_url"]`` (four routes; the digest is computed by
the probe from the range read). A region with both is probed over its URL. See docs/measures.md,
"Active-active convergence".
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.errors import ConfigError
from harness.probes import _cancel

__all__ = ["convergence"]

PROPAGATION = "propagation"
_MAX_RATE_HZ = 50.0
_STATEMENT_TIMEOUT_MS = 1000
_IDLE_SECONDS = 0.005  # a reader with nothing outstanding looks again this often
_ERROR_BACKOFF_SECONDS = 0.05
_MAX_IDS_PER_READ = 2000
# While a region has had a write outstanding this long (a cut), its reader polls at most every
# _SLOW_POLL_SECONDS: asking for thousands of ids every few milliseconds would load the machine,
# and a visibility of seconds does not need millisecond resolution.
_SLOW_AFTER_SECONDS = 1.0
_SLOW_POLL_SECONDS = 0.05


# ---------------------------------------------------------------- endpoints


@dataclass(frozen=True, slots=True)
class RegisterAck:
    prev: str | None  # the value the region held before this write (None: no row)
    commit_us: int | None  # commit timestamp, microseconds since 1970 (None: could not be read)
    problem: str = ""  # acknowledged, but its answer was incomplete (recorded as the write's error)


@dataclass(frozen=True, slots=True)
class RegisterRow:
    value: str
    origin: str
    commit_us: int | None


class Endpoint(Protocol):
    """What the probe needs from one region of an active-active store (one connection per thread)."""

    def add_element(self, element_id: str, origin: str) -> None: ...
    def write_register(self, key: str, value: str, origin: str) -> RegisterAck: ...
    def held_elements(self, ids: Sequence[str]) -> set[str]: ...
    def digests(self, low: str, high: str) -> dict[str, tuple[str, int]]: ...
    def registers(self, low: str, high: str) -> dict[str, RegisterRow]: ...
    def elements(self, low: str, high: str) -> set[str]: ...
    def close(self) -> None: ...


# Keys and ids are "<token>/e<epoch:06d>/..." so a closed epoch is a key range, digested alone.
_DIGESTS = """
SELECT split_part(x, '/', 2) AS epoch, md5(string_agg(x, ',' ORDER BY x COLLATE "C")), count(*) FROM (
  SELECT 'E' || id AS x FROM convergence_elements
   WHERE id COLLATE "C" >= %(low)s AND id COLLATE "C" < %(high)s
  UNION ALL
  SELECT 'R' || key || '=' || value FROM convergence_registers
   WHERE key COLLATE "C" >= %(low)s AND key COLLATE "C" < %(high)s
) AS rows GROUP BY 1
"""
# x starts with 'E' or 'R': split_part(..., 2) of "E<token>/e000012/..." is the epoch label.
# Byte order ("C") everywhere: a locale's collation may skip the '/' and break the key ranges.


class PostgresEndpoint:
    """A region's PostgreSQL (a DSN); a connection is reopened after an error."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._connection: Any = None

    def _conn(self) -> Any:
        import psycopg

        if self._connection is None or self._connection.closed:
            # Keep the DSN's own options (e.g. -c synchronous_commit=on): the keyword replaces them.
            own = psycopg.conninfo.conninfo_to_dict(self.dsn).get("options") or ""
            self._connection = psycopg.connect(
                self.dsn,
                connect_timeout=1,
                autocommit=True,
                options=f"{own} -c statement_timeout={_STATEMENT_TIMEOUT_MS}".strip(),
            )
        return self._connection

    def _run(self, work: Callable[[Any], Any]) -> Any:
        import psycopg

        try:
            return work(self._conn())
        except psycopg.Error:
            self.close()
            raise

    def add_element(self, element_id: str, origin: str) -> None:
        self._run(
            lambda c: c.execute(
                "INSERT INTO convergence_elements (id, origin) VALUES (%s, %s)", (element_id, origin)
            )
        )

    def write_register(self, key: str, value: str, origin: str) -> RegisterAck:
        def work(connection: Any) -> RegisterAck:
            with connection.transaction():
                row = connection.execute(
                    "SELECT value FROM convergence_registers WHERE key = %s FOR UPDATE", (key,)
                ).fetchone()
                xid = connection.execute(
                    "INSERT INTO convergence_registers (key, value, origin) VALUES (%s, %s, %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, origin = EXCLUDED.origin, "
                    "written_at = clock_timestamp() RETURNING xmin::text",
                    (key, value, origin),
                ).fetchone()[0]
            # After the commit: its timestamp is what last_update_wins compares.
            found = connection.execute(
                "SELECT (extract(epoch FROM pg_xact_commit_timestamp(%s::xid)) * 1000000)::bigint", (xid,)
            ).fetchone()
            commit_us = int(found[0]) if found and found[0] is not None else None
            return RegisterAck(row[0] if row else None, commit_us)

        return self._run(work)

    def held_elements(self, ids: Sequence[str]) -> set[str]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT id FROM convergence_elements WHERE id = ANY(%s)", (list(ids),)
            ).fetchall()
        )
        return {r[0] for r in rows}

    def digests(self, low: str, high: str) -> dict[str, tuple[str, int]]:
        rows = self._run(lambda c: c.execute(_DIGESTS, {"low": low, "high": high}).fetchall())
        return {str(r[0]): (str(r[1]), int(r[2])) for r in rows}

    def registers(self, low: str, high: str) -> dict[str, RegisterRow]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT key, value, origin, "
                "(extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000000)::bigint "
                'FROM convergence_registers WHERE key COLLATE "C" >= %s AND key COLLATE "C" < %s',
                (low, high),
            ).fetchall()
        )
        return {r[0]: RegisterRow(r[1], r[2], None if r[3] is None else int(r[3])) for r in rows}

    def elements(self, low: str, high: str) -> set[str]:
        rows = self._run(
            lambda c: c.execute(
                'SELECT id FROM convergence_elements WHERE id COLLATE "C" >= %s AND id COLLATE "C" < %s',
                (low, high),
            ).fetchall()
        )
        return {r[0] for r in rows}

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # closing a broken connection: nothing left to do
                self._connection.close()
        self._connection = None


def region_endpoints(configuration: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Region → (transport, address) from ``configuration["regions"]``; at least two regions.

    A region's ``convergence_url`` (the HTTP contract of harness.probes._convergence_http) wins
    over its ``postgres_dsn``: the DSN may be there for other probes (the canary's), the URL only
    for this one, so naming it is the deliberate choice. Regions may mix transports: both digest
    identical data identically."""
    from harness.probes._convergence_http import check_url

    regions = configuration.get("regions") or {}
    if not isinstance(regions, Mapping):
        raise ConfigError("configuration", "regions", "expected a mapping of region to endpoints")
    found: dict[str, tuple[str, str]] = {}
    for region, info in regions.items():
        info = info if isinstance(info, Mapping) else {}
        if info.get("convergence_url") is not None:
            try:
                found[str(region)] = ("http", check_url(info["convergence_url"]))
            except ValueError as error:
                raise ConfigError("configuration", f"regions.{region}.convergence_url", str(error)) from None
        elif info.get("postgres_dsn"):
            found[str(region)] = ("postgres", str(info["postgres_dsn"]))
    if len(found) < 2:
        expected = "expected a writable PostgreSQL DSN or a convergence_url in at least two regions"
        raise ConfigError("configuration", "regions.*.postgres_dsn", expected)
    return found


def endpoint_factories(configuration: Mapping[str, Any]) -> dict[str, Callable[[], Endpoint]]:
    """Region → a factory of its endpoint (each thread of the probe opens its own)."""
    from harness.probes._convergence_http import HttpEndpoint

    factories: dict[str, Callable[[], Endpoint]] = {}
    for region, (transport, address) in region_endpoints(configuration).items():
        kind: Callable[[str], Endpoint] = HttpEndpoint if transport == "http" else PostgresEndpoint
        factories[region] = lambda kind=kind, address=address: kind(address)
    return factories


# ---------------------------------------------------------------- bookkeeping


@dataclass(slots=True)
class _Element:
    element_id: str
    origin: str
    acked: float  # monotonic time of the acknowledgement
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # reader region → sample


class _Tracker:
    """Acknowledged elements and what each other region has shown of them (writers and readers share it)."""

    def __init__(self, regions: Sequence[str], timeout_seconds: float) -> None:
        self.regions = tuple(regions)
        self.timeout_seconds = timeout_seconds
        self.lock = threading.Lock()
        self.elements: list[_Element] = []
        self.pending: dict[str, dict[str, _Element]] = {r: {} for r in regions}
        self.last_read_ok: dict[str, float] = {}
        self.last_error: dict[str, str] = {}
        self.stale_reads: dict[str, int] = {}  # "a->b" → reads after an ack that missed it
        self.acked: dict[str, int] = dict.fromkeys(regions, 0)
        self.failed: dict[str, int] = dict.fromkeys(regions, 0)
        self.last_failure: dict[str, str] = {}

    def add(self, element: _Element) -> None:
        with self.lock:
            self.elements.append(element)
            self.acked[element.origin] += 1
            for region in self.regions:
                if region != element.origin:
                    self.pending[region][element.element_id] = element

    def write_failed(self, region: str, error: str) -> None:
        with self.lock:
            self.failed[region] += 1
            self.last_failure[region] = error[:240]

    def outstanding(self, region: str) -> tuple[list[str], float]:
        """The oldest outstanding element ids for `region` (acknowledgement order) and the oldest's ack."""
        with self.lock:
            pending = self.pending[region]
            oldest = next(iter(pending.values())).acked if pending else math.inf
            return list(itertools.islice(pending, _MAX_IDS_PER_READ)), oldest

    def read(self, region: str, asked: Sequence[str], held: set[str], sent: float, answered: float) -> None:
        with self.lock:
            self.last_read_ok[region] = answered
            for element_id in asked:
                element = self.pending[region].get(element_id)
                if element is None:
                    continue
                pair = f"{element.origin}->{region}"
                if element_id in held:
                    element.results[region] = _sample(pair, answered - element.acked, element.acked, "")
                    del self.pending[region][element_id]
                elif sent >= element.acked:
                    self.stale_reads[pair] = self.stale_reads.get(pair, 0) + 1
            self._expire(region, answered)

    def read_failed(self, region: str, error: str, now: float) -> None:
        with self.lock:
            self.last_error[region] = error[:200]
            self._expire(region, now)

    def _expire(self, region: str, now: float) -> None:
        for element_id, element in list(self.pending[region].items()):
            if now - element.acked >= self.timeout_seconds:
                element.results[region] = self._unseen(region, element, now)
                del self.pending[region][element_id]

    def close(self, now: float) -> None:
        with self.lock:
            for region in self.regions:
                for element in self.pending[region].values():
                    element.results[region] = self._unseen(region, element, now)
                self.pending[region].clear()

    def _unseen(self, region: str, element: _Element, now: float) -> dict[str, Any]:
        pair = f"{element.origin}->{region}"
        waited = max(0.0, now - element.acked)
        if self.last_read_ok.get(region, -math.inf) >= element.acked:
            return _sample(pair, waited, element.acked, f"not seen within {waited:.3f} s", ok=False)
        error = self.last_error.get(region, "no answer")
        return _sample(pair, waited, element.acked, f"unreachable: {error}"[:240], ok=False)

    def any_pending(self) -> bool:
        with self.lock:
            return any(self.pending.values())

    def samples(self) -> list[dict[str, Any]]:
        with self.lock:
            return [s for e in self.elements for s in e.results.values()]


def _sample(pair: str, value: float, at: float, error: str, ok: bool = True) -> dict[str, Any]:
    return {
        "probe": PROPAGATION,
        "at_monotonic": at,
        "value": value,
        "ok": ok,
        "region": pair,
        "error": error,
    }


def _event(kind: str, detail: dict[str, Any], at: float | None = None) -> dict[str, Any]:
    return {"at_monotonic": time.monotonic() if at is None else at, "kind": kind, "detail": detail}


class _Epochs:
    """The epoch clock: epoch n covers [origin + n·length, origin + (n+1)·length)."""

    def __init__(self, token: str, origin: float, length: float) -> None:
        self.token, self.origin, self.length = token, origin, length

    def current(self, now: float | None = None) -> int:
        return max(0, int(((time.monotonic() if now is None else now) - self.origin) // self.length))

    def label(self, epoch: int) -> str:
        return f"e{epoch:06d}"

    def prefix(self, epoch: int) -> str:
        return f"{self.token}/{self.label(epoch)}"

    def all_keys(self) -> tuple[str, str]:
        return f"{self.token}/", f"{self.token}0"  # '0' sorts right after '/'


# ---------------------------------------------------------------- the probe


def convergence(
    duration_seconds: float,
    rate_hz: float = 10.0,
    register_rate_hz: float = 4.0,
    keys_per_epoch: int = 2,
    epoch_seconds: float = 1.0,
    poll_seconds: float = 0.005,
    digest_seconds: float = 0.25,
    timeout_seconds: float = 120.0,
    settle_seconds: float = 30.0,
    sustain_seconds: float = 1.0,
    max_elements: int = 20_000,
    configuration: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write elements and registers in every region for `duration_seconds` and time their arrival
    in every other region (for ``background: true``; start it before the fault, let it run past
    the heal).

    After writing, keep reading until every region shows every element and the regions' digests
    agree for `sustain_seconds`, at most `settle_seconds`; then read each region's final state.
    Returns `samples` (probe ``propagation``, region ``origin->reader``), `events`
    (``convergence.*``, see the module docstring) and a `summary` (per pair p50/p95/max and
    counts). Grading derives propagation_p99_seconds, convergence_seconds,
    lww_discarded_writes_count, lww_violations_count and lost_writes_count from them.

    Each region is reached at its own endpoint in ``configuration["regions"]``: its
    ``convergence_url`` (the HTTP contract of docs/measures.md) when given, else its
    ``postgres_dsn``; at least two regions.
    """
    _check("duration_seconds", duration_seconds, 0.0, 3600.0)
    _check("rate_hz", rate_hz, 0.1, _MAX_RATE_HZ)
    _check("register_rate_hz", register_rate_hz, 0.0, _MAX_RATE_HZ)
    _check("epoch_seconds", epoch_seconds, 0.1, 600.0)
    _check("poll_seconds", poll_seconds, 0.001, 5.0)
    _check("digest_seconds", digest_seconds, 0.05, 60.0)
    _check("timeout_seconds", timeout_seconds, 0.1, 3600.0)
    _check("settle_seconds", settle_seconds, 0.0, 3600.0)
    _check("sustain_seconds", sustain_seconds, 0.0, 600.0)
    _check_whole("keys_per_epoch", keys_per_epoch, 100)
    _check_whole("max_elements", max_elements, 100_000)
    configuration = configuration or {}
    factories = endpoint_factories(configuration)
    settings = Settings(
        duration_seconds, rate_hz, register_rate_hz, keys_per_epoch, epoch_seconds, poll_seconds,
        digest_seconds, timeout_seconds, settle_seconds, sustain_seconds, max_elements,
    )  # fmt: skip
    return run(settings, factories, configuration)


@dataclass(frozen=True, slots=True)
class Settings:
    duration_seconds: float
    rate_hz: float
    register_rate_hz: float
    keys_per_epoch: int
    epoch_seconds: float
    poll_seconds: float
    digest_seconds: float
    timeout_seconds: float
    settle_seconds: float
    sustain_seconds: float
    max_elements: int


def run(
    settings: Settings, endpoints: Mapping[str, Callable[[], Endpoint]], configuration: Mapping[str, Any]
) -> dict[str, Any]:
    """The probe over any endpoints (a factory per region: each thread opens its own)."""
    regions = sorted(endpoints)
    token = "cv" + uuid.uuid4().hex[:12]
    # Writers connect before the clock starts: a slow connection must not shift a region's first
    # register write onto another region's turn (a start-up conflict that is not last-write-wins').
    writers = {region: endpoints[region]() for region in regions}
    for endpoint in writers.values():
        with contextlib.suppress(Exception):  # unreachable now: each write tries again
            endpoint.held_elements(["-"])
    origin = time.monotonic()
    epochs = _Epochs(token, origin, settings.epoch_seconds)
    tracker = _Tracker(regions, settings.timeout_seconds)
    events: list[dict[str, Any]] = []
    events_lock = threading.Lock()
    pairs = [f"{a}->{b}" for a in regions for b in regions if a != b]
    events.append(
        _event(
            "convergence.started",
            {
                "token": token,
                "regions": regions,
                "pairs": pairs,
                "rate_hz": settings.rate_hz,
                "register_rate_hz": settings.register_rate_hz,
                "keys_per_epoch": settings.keys_per_epoch,
                "epoch_seconds": settings.epoch_seconds,
                "poll_seconds": settings.poll_seconds,
                "slow_poll_seconds": max(settings.poll_seconds, _SLOW_POLL_SECONDS),
                "slow_after_seconds": _SLOW_AFTER_SECONDS,
                "digest_seconds": settings.digest_seconds,
                "timeout_seconds": settings.timeout_seconds,
                "sustain_seconds": settings.sustain_seconds,
            },
            at=origin,
        )
    )

    def emit(event: dict[str, Any]) -> None:
        with events_lock:
            events.append(event)

    stop_writing = threading.Event()
    done = threading.Event()
    digester = _Digester(regions, endpoints, epochs, emit)
    threads = [
        threading.Thread(
            target=_write_loop,
            args=(region, index, len(regions), writers[region], settings, epochs, tracker, emit,
                  stop_writing, configuration),
            name=f"convergence-write-{region}",
            daemon=True,
        )
        for index, region in enumerate(regions)
    ] + [
        threading.Thread(
            target=_read_loop,
            args=(region, endpoints[region], settings, tracker, done),
            name=f"convergence-read-{region}",
            daemon=True,
        )
        for region in regions
    ]  # fmt: skip
    digest_thread = threading.Thread(
        target=digester.loop, args=(settings.digest_seconds, done), name="convergence-digest", daemon=True
    )
    for thread in (*threads, digest_thread):
        thread.start()
    try:
        stopped = _cancel.wait(settings.duration_seconds, configuration)
        stop_writing.set()
        for thread in threads[: len(regions)]:
            thread.join(timeout=_STATEMENT_TIMEOUT_MS / 1000 + 1.0)
        # Settle: every element seen everywhere (or timed out) and the digests agreeing, sustained.
        settle_until = time.monotonic() + settings.settle_seconds
        closed_at = epochs.current() + 1  # the epoch the last writes went into is closed from here
        while not stopped and time.monotonic() < settle_until:
            if not tracker.any_pending() and digester.agreed_through(closed_at, settings.sustain_seconds):
                break
            if _cancel.wait(min(0.05, settings.digest_seconds), configuration):
                break
    finally:
        done.set()
        tracker.close(time.monotonic())
        for thread in (*threads[len(regions) :], digest_thread):
            thread.join(timeout=_STATEMENT_TIMEOUT_MS / 1000 + 1.0)
    events.extend(_final_state(regions, endpoints, epochs, tracker))
    with tracker.lock:
        stale = dict(tracker.stale_reads)
        acked, failed, failures = dict(tracker.acked), dict(tracker.failed), dict(tracker.last_failure)
    events.append(
        _event(
            "convergence.stopped",
            {
                "token": token,
                "acked_elements": acked,
                "failed_writes": failed,
                "last_failure": failures,
                "stale_reads": stale,
                "digest_rounds": digester.rounds,
            },
            at=digester.last_round or time.monotonic(),
        )
    )
    samples = tracker.samples()
    return {"samples": samples, "events": events, "summary": _summary(samples, pairs, acked, stale)}


def _write_loop(
    region: str,
    index: int,
    count: int,
    endpoint: Endpoint,
    settings: Settings,
    epochs: _Epochs,
    tracker: _Tracker,
    emit: Callable[[dict[str, Any]], None],
    stop_writing: threading.Event,
    configuration: Mapping[str, Any],
) -> None:
    """Elements at rate_hz, registers at register_rate_hz, each region's registers a fraction of a
    period after the previous region's (so in steady state regions rarely write a key at once)."""
    start = epochs.origin  # one clock for every region
    element_period = 1.0 / settings.rate_hz
    register_period = 1.0 / settings.register_rate_hz if settings.register_rate_hz > 0 else math.inf
    next_element = start
    next_register = start + register_period * index / count if math.isfinite(register_period) else math.inf
    sequence = 0
    register_sequence = 0
    try:
        while not stop_writing.is_set() and not _cancel.stop_requested(configuration):
            now = time.monotonic()
            if now >= next_register:
                next_register += register_period
                epoch = epochs.current(now)
                key = f"{epochs.prefix(epoch)}/k{register_sequence % settings.keys_per_epoch}"
                value = f"{region}:{register_sequence}"
                register_sequence += 1
                _write_register(endpoint, region, key, value, emit)
            elif now >= next_element:
                next_element += element_period
                if sequence >= settings.max_elements:
                    continue
                epoch = epochs.current(now)
                element_id = f"{epochs.prefix(epoch)}/{region}/{sequence}"
                sequence += 1
                try:
                    endpoint.add_element(element_id, region)
                except Exception as exc:  # not acknowledged: never expected anywhere
                    tracker.write_failed(region, f"{type(exc).__name__}: {exc}")
                    continue
                tracker.add(_Element(element_id, region, time.monotonic()))
            else:
                stop_writing.wait(min(next_element, next_register, now + _cancel.CHECK_SECONDS) - now)
    finally:
        endpoint.close()


def _write_register(
    endpoint: Endpoint, region: str, key: str, value: str, emit: Callable[[dict[str, Any]], None]
) -> None:
    detail: dict[str, Any] = {"key": key, "value": value, "origin": region}
    try:
        ack = endpoint.write_register(key, value, region)
    except Exception as exc:
        # The commit may or may not have happened: not acknowledged, but it may survive somewhere.
        error = f"{type(exc).__name__}: {exc}"[:240]
        emit(_event("convergence.register_write", {**detail, "acked": False, "prev": None, "commit_us": None,
                                                   "error": error}))  # fmt: skip
        return
    detail.update(acked=True, prev=ack.prev, commit_us=ack.commit_us)
    if ack.problem:
        detail["error"] = ack.problem[:240]
    emit(_event("convergence.register_write", detail))


def _read_loop(
    region: str,
    factory: Callable[[], Endpoint],
    settings: Settings,
    tracker: _Tracker,
    done: threading.Event,
) -> None:
    endpoint = factory()
    try:
        while not done.is_set():
            asked, oldest = tracker.outstanding(region)
            if not asked:
                done.wait(_IDLE_SECONDS)
                continue
            sent = time.monotonic()
            try:
                held = endpoint.held_elements(asked)
            except Exception as exc:  # unreachable: the outstanding writes stay outstanding
                tracker.read_failed(region, f"{type(exc).__name__}: {exc}", time.monotonic())
                done.wait(_ERROR_BACKOFF_SECONDS)
                continue
            answered = time.monotonic()
            tracker.read(region, asked, held, sent, answered)
            slow = answered - oldest > _SLOW_AFTER_SECONDS and len(held) < len(asked)
            done.wait(max(settings.poll_seconds, _SLOW_POLL_SECONDS) if slow else settings.poll_seconds)
    finally:
        endpoint.close()


# A closed epoch every region has held identically for this long is no longer read: no write can
# still land in it (a write commits within its 1 s statement timeout, plus 1 s to reconnect), so it
# cannot change again, and the rounds stay short however long the probe runs.
_SETTLED_SECONDS = 5.0


class _Digester:
    """Rounds of per-epoch digests of every closed, unsettled epoch in every region; records changes only."""

    def __init__(
        self,
        regions: Sequence[str],
        endpoints: Mapping[str, Callable[[], Endpoint]],
        epochs: _Epochs,
        emit: Callable[[dict[str, Any]], None],
    ) -> None:
        self.regions, self.factories, self.epochs, self.emit = regions, endpoints, epochs, emit
        self.seen: dict[tuple[str, int], str | None] = {}
        self.changed_at: dict[int, float] = {}  # epoch → last change in any region
        self.lock = threading.Lock()
        self.rounds = 0
        self.last_round = 0.0
        self.settled_below = 0  # epochs below this one agreed everywhere for _SETTLED_SECONDS

    def loop(self, period: float, done: threading.Event) -> None:
        endpoints = {r: f() for r, f in self.factories.items()}
        try:
            next_round = time.monotonic()
            while not done.is_set():
                self.round(endpoints)
                next_round += period
                done.wait(max(0.0, next_round - time.monotonic()))
        finally:
            for endpoint in endpoints.values():
                endpoint.close()

    def round(self, endpoints: Mapping[str, Endpoint]) -> None:
        closed = self.epochs.current()  # epochs below this one are closed
        if closed == 0:
            return
        first = self.settled_below
        low = self.epochs.prefix(first)
        high = self.epochs.prefix(closed)
        for region in self.regions:
            at = time.monotonic()
            try:
                found: dict[str, tuple[str, int]] | None = endpoints[region].digests(low, high)
                error = ""
            except Exception as exc:
                found, error = None, f"{type(exc).__name__}: {exc}"[:200]
            for epoch in range(first, closed):
                label = self.epochs.label(epoch)
                digest, rows = (None, 0) if found is None else found.get(label, ("empty", 0))
                with self.lock:
                    if (region, epoch) in self.seen and self.seen[(region, epoch)] == digest:
                        continue
                    self.seen[(region, epoch)] = digest
                    self.changed_at[epoch] = at
                detail = {"region": region, "epoch": epoch, "digest": digest, "rows": rows}
                if error:
                    detail["error"] = error
                self.emit(_event("convergence.digest", detail, at=at))
        with self.lock:
            self.rounds += 1
            self.last_round = time.monotonic()
            while self.settled_below < closed and self._agreed(
                self.settled_below, _SETTLED_SECONDS, self.last_round
            ):
                self.settled_below += 1

    def _agreed(self, epoch: int, held: float, now: float) -> bool:
        digests = {self.seen.get((r, epoch), "?") for r in self.regions}
        if len(digests) != 1 or None in digests or "?" in digests:
            return False
        return now - self.changed_at.get(epoch, now) >= held

    def agreed_through(self, epochs: int, sustain: float) -> bool:
        """Every epoch below `epochs` has one digest in every region, unchanged for `sustain` s."""
        now = time.monotonic()
        with self.lock:
            unsettled = range(self.settled_below, epochs)
            return self.last_round > 0 and all(self._agreed(epoch, sustain, now) for epoch in unsettled)


def _final_state(
    regions: Sequence[str],
    endpoints: Mapping[str, Callable[[], Endpoint]],
    epochs: _Epochs,
    tracker: _Tracker,
) -> list[dict[str, Any]]:
    """Every region's registers (with commit timestamps) and the acknowledged elements it lacks."""
    low, high = epochs.all_keys()
    with tracker.lock:
        acked = {e.element_id for e in tracker.elements}
    events = []
    for region in regions:
        endpoint = endpoints[region]()
        at = time.monotonic()
        try:
            registers = endpoint.registers(low, high)
            held = endpoint.elements(low, high)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:240]
            events.append(_event("convergence.final", {"region": region, "error": error}, at=at))
            continue
        finally:
            endpoint.close()
        events.append(
            _event(
                "convergence.final",
                {
                    "region": region,
                    "registers": {
                        k: {"value": r.value, "origin": r.origin, "commit_us": r.commit_us}
                        for k, r in sorted(registers.items())
                    },
                    "elements_held": len(held & acked),
                    "missing_elements": sorted(acked - held),
                },
                at=at,
            )
        )
    return events


def _summary(
    samples: list[dict[str, Any]], pairs: Sequence[str], acked: Mapping[str, int], stale: Mapping[str, int]
) -> dict[str, Any]:
    from harness.measures import percentile

    per_pair: dict[str, Any] = {}
    for pair in pairs:
        values = [s["value"] for s in samples if s["region"] == pair and s["value"] is not None]
        if not values:
            per_pair[pair] = None
            continue
        per_pair[pair] = {
            "writes": len(values),
            "not_seen": sum(1 for s in samples if s["region"] == pair and not s["ok"]),
            "p50_seconds": percentile(values, 0.5),
            "p95_seconds": percentile(values, 0.95),
            "p99_seconds": percentile(values, 0.99),
            "max_seconds": max(values),
            "stale_reads": stale.get(pair, 0),
        }
    return {"pairs": per_pair, "acked_elements": dict(acked)}


def _check(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError("arguments", name, f"expected a number {low:g}..{high:g}, got {value!r}")


def _check_whole(name: str, value: Any, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ConfigError("arguments", name, f"expected a whole number 1..{high}, got {value!r}")
