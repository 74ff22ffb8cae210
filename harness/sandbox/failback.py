"""Failback: put every primary back in the scenario's primary region, between a suite's experiments.

A failover experiment leaves the primary where it moved, as production would; the next experiment
of a suite on the same sandbox must start from the estate the scenario declares, or a "primary
region loss" hits a replica region. `restore_estate` asks harness.primaries who is primary and,
for each kind that is away from home, moves it back the way the sandbox's failover manager does it:

* Redis (Sentinel): the home replica gets the best ``replica-priority``, one Sentinel is asked for
  ``SENTINEL FAILOVER`` once every Sentinel agrees on the master with no failover running, and
  the failback waits until every Sentinel has finished it; the priority is restored. A Sentinel
  reads priorities from its replicas' INFO only every 10 s and turns a reachable old master into
  a replica only ~8 s after the switch, so the Sentinel asked reads INFO every 0.1 s meanwhile
  (``SENTINEL DEBUG INFO-PERIOD``, put back after) and the old master is told to follow the home
  server at once (what Sentinel would send).
* PostgreSQL under Patroni: Patroni's REST switchover (leader → home candidate), once the home
  replica has caught up on the leader's timeline (else Patroni reinitializes it first).
* The harness's own PostgreSQL promotion mode: a clean switchover by hand: once the home standby
  has caught up on the primary's timeline (else, its WAL forked off when it was killed, it is
  cloned afresh with pg_basebackup), the away primary stops cleanly (its WAL reaches the standbys
  first), the home standby is promoted, the other standbys stream from it through their proxy
  routes again, the old primary rejoins as a standby.

Each kind then waits (bounded) until every other server replicates from the home primary.
A failback that does not finish within its bound is reported, never raised: the runner's
premise check (measures.region_loss_premise) keeps the next verdict honest. Only the harness's
own sandbox is touched: a user's target keeps its primaries where they are.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from harness import interrupts, primaries
from harness.errors import EnvironmentProblem
from harness.sandbox import postgres
from harness.sandbox.components import HOST, Component, load_components, start_component, stop_component

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "Outcome", "estate_record", "restore_estate"]

DEFAULT_TIMEOUT_SECONDS = 60.0
_POLL_SECONDS = 0.05
_SOCKET_TIMEOUT_SECONDS = 1.0
_FAST_INFO_PERIOD_MS = 100
_CATCH_UP_SECONDS = 5.0  # a standby not caught up by then is cloned afresh (harness's own PostgreSQL)
_KINDS = {"redis": "Redis", "postgres": "PostgreSQL"}


@dataclass(frozen=True, slots=True)
class Outcome:
    """One kind's failback: where its primary was, whether it is home again, how long it took."""

    kind: str  # "redis" | "postgres"
    home: str  # the scenario's primary region
    moved_from: str  # the region that held the primary before ("" when nobody could tell)
    restored: bool
    seconds: float
    detail: str = ""  # why it was not restored; how, when it was

    def line(self) -> str:
        """One progress line, e.g. "estate: Redis primary back in us-east-1 after 3.2 s"."""
        name = _KINDS.get(self.kind, self.kind)
        if self.restored:
            return f"estate: {name} primary back in {self.home} after {self.seconds:.1f} s"
        where = f" (it was in {self.moved_from})" if self.moved_from else ""
        return (
            f"estate: {name} primary NOT back in {self.home}{where} after {self.seconds:.1f} s: "
            f"{self.detail}; the next experiment runs from this topology"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "home": self.home,
            "moved_from": self.moved_from,
            "restored": self.restored,
            "seconds": round(self.seconds, 3),
            "detail": self.detail,
        }


def estate_record(outcomes: tuple[Outcome, ...] | None, why_not: str = "") -> dict[str, Any]:
    """What a run's record keeps (environment.estate): whether the estate was checked and restored
    before it. `outcomes` None: not checked, `why_not` says why (first experiment, user target)."""
    if outcomes is None:
        return {"checked": False, "restored": None, "detail": why_not, "failbacks": []}
    return {
        "checked": True,
        "restored": all(o.restored for o in outcomes),
        "detail": "; ".join(o.detail for o in outcomes if not o.restored),
        "failbacks": [o.to_dict() for o in outcomes],
    }


class _NotYet(Exception):
    """A bounded wait ran out; the message names what did not happen."""


def _wait(condition: Callable[[], bool], deadline: float, what: str) -> None:
    """Poll `condition` until true; _NotYet naming `what` at the deadline. Errors while polling
    (a server restarting) count as not yet. An interrupt stops the wait (interrupts.Interrupted)."""
    last = ""
    while True:
        try:
            if condition():
                return
        except (redis.RedisError, OSError, ValueError, KeyError) as error:
            last = f" (last error: {error})"
        if time.monotonic() >= deadline:
            raise _NotYet(f"{what} did not happen in time{last}")
        if interrupts.sleep(_POLL_SECONDS):
            interrupts.checkpoint()
            raise _NotYet(f"interrupted while waiting for {what}")


def restore_estate(
    endpoints: Mapping[str, Any], timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
) -> tuple[Outcome, ...]:
    """Move every primary that is away from `endpoints["primary_region"]` back home; one Outcome
    per kind that was away (or whose primary nobody could name), none when all are home."""
    outcomes = []
    for restore in (_restore_redis, _restore_postgres):
        outcome = restore(endpoints, timeout_seconds)
        if outcome is not None:
            outcomes.append(outcome)
    return tuple(outcomes)


# ---------------------------------------------------------------- Redis (Sentinel)


def _redis(url_or_address: str) -> redis.Redis:
    kwargs = {
        "socket_timeout": _SOCKET_TIMEOUT_SECONDS,
        "socket_connect_timeout": _SOCKET_TIMEOUT_SECONDS,
        "decode_responses": True,
    }
    if "://" in url_or_address:
        return redis.Redis.from_url(url_or_address, **kwargs)
    host, _, port = url_or_address.rpartition(":")
    return redis.Redis(host=host, port=int(port), **kwargs)


def _restore_redis(endpoints: Mapping[str, Any], timeout_seconds: float) -> Outcome | None:
    sentinels = [str(s) for s in endpoints.get("redis_sentinels") or ()]
    home = str(endpoints.get("primary_region", ""))
    urls = primaries.by_region(endpoints, "redis_url")
    if not sentinels or home not in urls:
        return None
    started = time.monotonic()
    current = primaries.redis_primary(endpoints)
    if current is not None and current.region == home:
        return None
    if current is None:
        return Outcome("redis", home, "", False, 0.0, "no Sentinel names the Redis master")
    try:
        _redis_failover(endpoints, sentinels, home, urls, started + timeout_seconds)
    except (_NotYet, redis.RedisError, OSError, ValueError) as error:
        return Outcome("redis", home, current.region, False, time.monotonic() - started, str(error))
    seconds = time.monotonic() - started
    return Outcome("redis", home, current.region, True, seconds, "SENTINEL FAILOVER to the home replica")


def _redis_failover(
    endpoints: Mapping[str, Any],
    sentinels: list[str],
    home: str,
    urls: Mapping[str, str],
    deadline: float,
) -> None:
    master = str(endpoints.get("redis_master_name", ""))
    home_server = _redis(urls[home])
    home_port = int(home_server.connection_pool.connection_kwargs["port"])

    def settled() -> int | None:
        # The master every answering Sentinel names, with no failover in progress; None while a
        # failover runs or they disagree (a finished one reaches the others by their hellos).
        views = [view for view in (_sentinel_view(s, master) for s in sentinels) if view is not None]
        ports = {port for port, _ in views}
        return ports.pop() if views and len(ports) == 1 and not any(busy for _, busy in views) else None

    sentinel = _first_answering(sentinels)
    prior_priority = str(home_server.config_get("replica-priority").get("replica-priority", "100"))
    prior_period = _info_period(sentinel)
    stage = ["the Sentinels to agree on one master, with no failover in progress"]

    def step() -> bool:
        # Done once every Sentinel has finished failing over to the home server, not only names it:
        # while its failover is in progress a Sentinel names the promoted server already, but the
        # failover ends only once it has seen every replica follow, and never while the promoted
        # server is down: an experiment killing the primary right after would leave it stuck and
        # no new failover would start. Each pass re-reads the state, so a failover asked for
        # earlier (an interrupted failback) that brought the master home counts, and one that
        # failed is asked for again.
        port = settled()
        if port is None:
            stage[0] = "the Sentinels to agree on one master, with no failover in progress"
            return False
        if port == home_port:
            return True
        info = home_server.info("replication")
        if info.get("role") == "master":
            # The old primary came back as a master; the Sentinels, agreed on another, count it as
            # its replica and would send this same command some seconds from now.
            home_server.replicaof(HOST, port)
        if info.get("master_port") != port or info.get("master_link_status") != "up":
            stage[0] = f"the {home} Redis replica to sync with the master on port {port}"
            return False
        replicas = sentinel.sentinel_slaves(master)
        if not any(
            int(r.get("port", 0)) == home_port and int(r.get("slave-priority", -1)) == 1 for r in replicas
        ):
            stage[0] = f"the Sentinel to read the {home} replica's priority"
            return False
        try:
            sentinel.execute_command("SENTINEL", "FAILOVER", master)
            stage[0] = f"the failover to {home} to finish"
        except redis.ResponseError as error:  # INPROG: one is running; NOGOODSLAVE: not yet
            stage[0] = f"SENTINEL FAILOVER ({error})"
        return False

    try:
        home_server.config_set("replica-priority", 1)  # lowest non-zero: Sentinel's first choice
        if prior_period is not None:
            sentinel.execute_command("SENTINEL", "DEBUG", "INFO-PERIOD", _FAST_INFO_PERIOD_MS)
        try:
            _wait(step, deadline, "every Sentinel to finish failing over to " + home)
        except _NotYet as error:
            raise _NotYet(f"{error}; it was waiting for {stage[0]}") from None
    finally:
        with interrupts.deferred():  # put the estate's settings back even on an interrupt
            _quietly(lambda: home_server.config_set("replica-priority", prior_priority))
            if prior_period is not None:
                _quietly(lambda: sentinel.execute_command("SENTINEL", "DEBUG", "INFO-PERIOD", prior_period))
    # The old master still answers as a master: Sentinel would demote it ~8 s from now with this
    # same command (it already counts it as a replica of the home server), so say it now.
    others = {region: _redis(url) for region, url in urls.items() if region != home}
    for server in others.values():
        if _quietly(lambda server=server: server.info("replication").get("role")) == "master":
            server.replicaof(HOST, home_port)

    def every_replica_follows_home() -> bool:
        for server in others.values():
            info = server.info("replication")
            if info.get("master_port") != home_port or info.get("master_link_status") != "up":
                return False
        return True

    _wait(every_replica_follows_home, deadline, f"every Redis replica to replicate from {home}")


def _first_answering(sentinels: list[str]) -> redis.Redis:
    for address in sentinels:
        client = _redis(address)
        if _quietly(client.ping):
            return client
    raise _NotYet("no Sentinel answers")


def _info_period(sentinel: redis.Redis) -> int | None:
    """The Sentinel's INFO period (ms), or None when it has no SENTINEL DEBUG (before Redis 7)."""
    try:
        found = sentinel.execute_command("SENTINEL", "DEBUG")
    except redis.ResponseError:
        return None
    if isinstance(found, list):  # RESP2 flat list
        found = dict(zip(found[::2], found[1::2], strict=False))
    value = (found or {}).get("INFO-PERIOD")
    return int(value) if value is not None else None


def _sentinel_view(address: str, master: str) -> tuple[int, bool] | None:
    """(the master's port, whether a failover is in progress) as a Sentinel sees it; None: no answer."""
    try:
        state = _redis(address).sentinel_master(master)
    except (redis.RedisError, OSError):
        return None
    return int(state["port"]), "failover_in_progress" in str(state.get("flags", ""))


def _quietly(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except (redis.RedisError, OSError):
        return None


# ---------------------------------------------------------------- PostgreSQL


def _restore_postgres(endpoints: Mapping[str, Any], timeout_seconds: float) -> Outcome | None:
    import psycopg

    home = str(endpoints.get("primary_region", ""))
    dsns = primaries.by_region(endpoints, "postgres_dsn")
    if home not in dsns or endpoints.get("postgres_topology") == "active-active":
        return None
    started = time.monotonic()
    current = primaries.postgres_primary(endpoints)
    if current is not None and current.region == home:
        return None
    if current is None:
        return Outcome("postgres", home, "", False, 0.0, "no PostgreSQL server takes writes")
    directory = Path(str(endpoints.get("sandbox_dir") or ""))
    components = load_components(directory) if endpoints.get("sandbox_dir") else {}
    deadline = started + timeout_seconds
    patroni = {c.region: c for c in components.values() if c.kind == "patroni"}
    try:
        if patroni:
            _patroni_catch_up(patroni, dsns, current.region, home, deadline)
            _patroni_switchover(patroni, current.region, home, deadline)
            how = "Patroni switchover"
        else:
            servers = {c.region: c for c in components.values() if c.kind == "postgres"}
            if current.region not in servers or home not in servers:
                raise _NotYet("the PostgreSQL servers are not sandbox components")
            _manual_switchover(endpoints, directory, servers, current.region, home, deadline)
            how = "clean switchover by the harness"
        _wait(lambda: _postgres_home(endpoints, dsns, home), deadline, f"every standby to stream from {home}")
    except (_NotYet, EnvironmentProblem, psycopg.Error, OSError, KeyError) as error:
        return Outcome("postgres", home, current.region, False, time.monotonic() - started, str(error))
    return Outcome("postgres", home, current.region, True, time.monotonic() - started, how)


def _postgres_home(endpoints: Mapping[str, Any], dsns: Mapping[str, str], home: str) -> bool:
    """The home server is the only one taking writes and every other one streams WAL (from it:
    a standby streams from a server taking writes, and only the home server does)."""
    import psycopg

    found = primaries.postgres_primaries(endpoints)
    if [p.region for p in found] != [home]:
        return False
    for region, dsn in dsns.items():
        if region == home:
            continue
        try:
            with psycopg.connect(dsn, connect_timeout=1, autocommit=True) as connection:
                row = connection.execute("SELECT status FROM pg_stat_wal_receiver").fetchone()
        except psycopg.Error:
            return False
        if not row or row[0] != "streaming":
            return False
    return True


def _patroni_catch_up(
    patroni: Mapping[str, Component], dsns: Mapping[str, str], leader: str, home: str, deadline: float
) -> None:
    """Return once the home replica has caught up with the leader on its timeline; one whose WAL
    forked off (killed before its last WAL left) is reinitialized by Patroni (a fresh clone of the
    leader) first: Patroni would otherwise switch over to it and strand the other replicas."""
    if home not in patroni:
        raise _NotYet(f"no Patroni member in {home}")
    what = f"the {home} replica to catch up with {leader} on its timeline"

    def caught_up() -> bool:
        return _caught_up(dsns[leader], dsns[home])

    try:
        _wait(caught_up, min(deadline, time.monotonic() + _CATCH_UP_SECONDS), what)
        return
    except _NotYet:
        pass
    request = urllib.request.Request(
        f"http://{HOST}:{patroni[home].port}/reinitialize",
        data=json.dumps({"force": True}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=max(1.0, deadline - time.monotonic())):
            pass
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace").strip()
        raise _NotYet(f"{what}: Patroni refused to reinitialize it (HTTP {error.code}: {detail})") from None
    except (urllib.error.URLError, OSError) as error:
        raise _NotYet(f"{what}: Patroni's REST API did not answer ({error})") from None
    _wait(caught_up, deadline, f"{what} after Patroni reinitialized it")


def _patroni_switchover(patroni: Mapping[str, Component], leader: str, home: str, deadline: float) -> None:
    """Ask Patroni to hand leadership from `leader` to `home` (member names are regions); retried
    until the deadline while Patroni refuses (candidate not yet a healthy, caught-up replica)."""
    if home not in patroni:
        raise _NotYet(f"no Patroni member in {home}")
    body = json.dumps({"leader": leader, "candidate": home}).encode()
    urls = [f"http://{HOST}:{c.port}/switchover" for c in patroni.values()]
    refusals: list[str] = []

    def switched() -> bool:
        for url in urls:
            request = urllib.request.Request(
                url, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            remaining = max(1.0, deadline - time.monotonic())
            try:
                with urllib.request.urlopen(request, timeout=remaining) as response:
                    if response.status == 200:
                        return True
            except urllib.error.HTTPError as error:
                refusals[:] = [f"HTTP {error.code}: {error.read().decode(errors='replace').strip()}"]
                return False
            except (urllib.error.URLError, OSError) as error:
                refusals[:] = [str(error)]
                continue
        return False

    try:
        _wait(switched, deadline, f"a Patroni switchover from {leader} to {home}")
    except _NotYet as error:
        raise _NotYet(f"{error}{': ' + refusals[0] if refusals else ''}") from None


def _home_route(endpoints: Mapping[str, Any], region: str, home: str, home_port: int) -> int:
    """The port `region`'s standby reaches the home primary on: its fault-proxy route, as when
    the sandbox started (a partition then cuts replication again), else the server itself."""
    for link in (endpoints.get("links") or {}).values():
        if (
            isinstance(link, Mapping)
            and link.get("service") == "postgres"
            and link.get("from") == region
            and link.get("to") == home
        ):
            return int(str(link["listen"]).rpartition(":")[2])
    return home_port


def _manual_switchover(
    endpoints: Mapping[str, Any],
    directory: Path,
    servers: Mapping[str, Component],
    away: str,
    home: str,
    deadline: float,
) -> None:
    """A clean switchover of the harness's own PostgreSQL mode from `away` back to `home`; every
    standby then streams from the home primary the way it did when the sandbox started (through
    its region's proxy route, with its own replication slot)."""
    import psycopg

    old, new = servers[away], servers[home]

    def sql(port: int, query: str, parameters: tuple[Any, ...] = ()) -> tuple | None:
        with psycopg.connect(postgres.dsn(port), connect_timeout=2, autocommit=True) as connection:
            cursor = connection.execute(query, parameters)
            return cursor.fetchone() if cursor.description is not None else None

    def caught_up() -> bool:
        return _caught_up(postgres.dsn(old.port), postgres.dsn(new.port))

    names = sql(old.port, "SHOW synchronous_standby_names")
    synchronous_names = str(names[0]) if names and names[0] else ""
    what = f"the {home} standby to catch up with {away} on its timeline"
    try:
        _wait(caught_up, min(deadline, time.monotonic() + _CATCH_UP_SECONDS), what)
    except _NotYet:
        # Its WAL forked off (or it is far behind): a fresh base backup of the current primary
        # (the history the estate kept; what the forked WAL held was lost by the failover).
        with interrupts.deferred():
            stop_component(directory, new.name, signal.SIGINT)
            postgres.clone_standby(new, old.port)
            postgres.rejoin_as_standby(new, home, old.port, synchronous_names)
            start_component(directory, new.name, max(1.0, deadline - time.monotonic()))
        _wait(caught_up, deadline, f"{what} after a fresh base backup")
    followers = [c for region, c in servers.items() if region not in (away, home)]
    with interrupts.deferred():  # half a switchover is worse than a slower interrupt
        # A clean (fast) shutdown sends the last WAL, its shutdown checkpoint included, to the
        # connected standbys before it exits: the home standby then holds every commit.
        stop_component(directory, old.name, signal.SIGINT)
        timeout = max(1, round(deadline - time.monotonic()))
        try:
            promoted = sql(new.port, "SELECT pg_promote(true, %s)", (timeout,))
        except psycopg.Error:
            promoted = None
        if not promoted or promoted[0] is not True:
            # Nothing was promoted: the stopped server is still the primary, so it comes back as
            # one rather than leave the estate without a primary.
            start_component(directory, old.name, max(1.0, deadline - time.monotonic()))
            raise _NotYet(f"pg_promote() on {new.name} did not finish; {old.name} stays primary")
        for standby in (*followers, old):
            slot = postgres.slot_name(standby.region)
            sql(
                new.port,
                "SELECT pg_create_physical_replication_slot(%s, true) WHERE NOT EXISTS "
                "(SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)",
                (slot, slot),
            )
        for follower in followers:
            slot = postgres.slot_name(follower.region)
            upstream = _home_route(endpoints, follower.region, home, new.port)
            conninfo = postgres.standby_conninfo(follower.region, upstream)
            sql(follower.port, f"ALTER SYSTEM SET primary_conninfo = '{conninfo}'")
            sql(follower.port, f"ALTER SYSTEM SET primary_slot_name = '{slot}'")
            sql(follower.port, "SELECT pg_reload_conf()")
        upstream = _home_route(endpoints, old.region, home, new.port)
        postgres.rejoin_as_standby(
            old, old.region, upstream, synchronous_names, postgres.slot_name(old.region)
        )
        start_component(directory, old.name, max(1.0, deadline - time.monotonic()))


def _caught_up(primary_dsn: str, standby_dsn: str) -> bool:
    """Whether the standby streams on the primary's timeline and has replayed up to its current
    position; False when either does not answer.

    Not merely "streaming": an old primary killed before its last WAL left has a history that
    forked off the new primary's; it reports streaming for a moment, then fails, and promoting it
    would strand every other standby on a timeline it cannot follow."""
    import psycopg

    try:
        with psycopg.connect(primary_dsn, connect_timeout=2, autocommit=True) as connection:
            timeline, position = connection.execute(
                "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int,"
                " pg_current_wal_lsn()::text"
            ).fetchone() or (None, None)
        with psycopg.connect(standby_dsn, connect_timeout=2, autocommit=True) as connection:
            row = connection.execute(
                "SELECT status, received_tli, pg_last_wal_replay_lsn() >= %s::pg_lsn"
                " FROM pg_stat_wal_receiver",
                (position,),
            ).fetchone()
    except psycopg.Error:
        return False
    return bool(row) and row[0] == "streaming" and row[1] == timeline and row[2] is True
