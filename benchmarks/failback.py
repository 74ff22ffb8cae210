"""Time the failback a suite runs between experiments (harness.sandbox.failback), per mode.

    .venv/bin/python benchmarks/failback.py [--mode redis postgres patroni] [--repeat 3] [--json out.json]

Each round does what a failover experiment and its rollback leave behind, then the failback:
the home primary killed (the PostgreSQL modes: while a writer commits as fast as it can, so the
killed server's WAL usually forks off the promoted one's), the failover (Sentinel's; the harness's
own pg_promote plus the old primary rejoined as a standby; Patroni's after its 20 s TTL), the old
primary back, then `restore_estate` timed until every replica follows the home primary again.
Prints each round's seconds and the median per mode; the failover itself is not counted.

Figures (2 cores shared with other work, Redis 7.0, PostgreSQL 15, Patroni; 3 rounds each, after a
kill; medians): redis 3.3 s (3.2-3.4: the home server synced, the Sentinel reading the new
priority at a 0.1 s INFO period, the forced failover, every Sentinel finished, every replica
following); postgres, the harness's own mode, 5.7 s (5.7-5.8: 5 s waiting for the home server,
whose WAL forked off, to catch up, then a fresh pg_basebackup clone and the clean switchover);
patroni 12.9 s (12.3-13.3: the same 5 s wait, Patroni's reinitialize, the REST switchover).
Clean moves (tests/sandbox/test_failback.py, one-off runs): redis 1.3-2.3 s, postgres 0.3-0.7 s,
patroni 5.1-7.1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from harness import primaries
from harness.sandbox import failback, postgres
from harness.sandbox.components import load_components, start_component, stop_component
from harness.sandbox.examples import example_scenario
from harness.sandbox.lifecycle import Sandbox, down, up

HOME = "us-east-1"
FAILOVER_TIMEOUT_SECONDS = 90.0


def _writes_while(dsn: str, action: Callable[[], None]) -> None:
    """Commit as fast as possible on `dsn` while `action` runs (a kill under load)."""
    stop = threading.Event()

    def write() -> None:
        with contextlib.suppress(psycopg.Error), psycopg.connect(dsn, autocommit=True) as connection:
            while not stop.is_set():
                connection.execute("INSERT INTO items (key, value) VALUES (gen_random_uuid()::text, 'x')")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    time.sleep(0.3)
    action()
    stop.set()
    writer.join(5)


def _await(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + FAILOVER_TIMEOUT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {FAILOVER_TIMEOUT_SECONDS:g} s")
        time.sleep(0.1)


def _fail_over_redis(box: Sandbox) -> None:
    stop_component(box.directory, f"redis-{HOME}", signal.SIGKILL)
    _await(lambda: (p := primaries.redis_primary(box.endpoints)) is not None and p.region != HOME, "failover")
    start_component(box.directory, f"redis-{HOME}")


def _fail_over_postgres(box: Sandbox) -> None:
    servers = {c.region: c for c in load_components(box.directory).values() if c.kind == "postgres"}
    home = servers[HOME]
    away, *others = [c for region, c in servers.items() if region != HOME]
    _writes_while(postgres.dsn(home.port), lambda: stop_component(box.directory, home.name, signal.SIGKILL))
    with psycopg.connect(postgres.dsn(away.port), autocommit=True) as connection:
        connection.execute("SELECT pg_promote(true, 10)")
    for other in others:
        with psycopg.connect(postgres.dsn(other.port), autocommit=True) as connection:
            conninfo = postgres.standby_conninfo(other.region, away.port)
            connection.execute(f"ALTER SYSTEM SET primary_conninfo = '{conninfo}'")
            connection.execute("SELECT pg_reload_conf()")
    postgres.rejoin_as_standby(home, home.region, away.port, "")
    start_component(box.directory, home.name)


def _fail_over_patroni(box: Sandbox) -> None:
    dsn = box.endpoints["regions"][HOME]["postgres_dsn"]
    _writes_while(dsn, lambda: stop_component(box.directory, f"patroni-{HOME}", signal.SIGKILL))
    _await(
        lambda: (p := primaries.postgres_primary(box.endpoints)) is not None and p.region != HOME,
        "Patroni failover",
    )
    start_component(box.directory, f"patroni-{HOME}")


MODES: dict[str, tuple[dict[str, Any], Callable[[Sandbox], None]]] = {
    "redis": ({"components": {"redis"}}, _fail_over_redis),
    "postgres": ({"components": {"postgres", "proxy"}}, _fail_over_postgres),
    "patroni": ({"components": {"patroni"}, "failover": "patroni"}, _fail_over_patroni),
}


def measure(mode: str, repeat: int) -> list[float]:
    options, fail_over = MODES[mode]
    scenario = example_scenario(3, failover=options.get("failover", "manual"))
    directory = Path(tempfile.mkdtemp(prefix=f"failback-{mode}-"))
    seconds = []
    try:
        box = up(scenario, directory, components=options["components"])
        for round_number in range(1, repeat + 1):
            fail_over(box)
            outcomes = failback.restore_estate(box.endpoints)
            for outcome in outcomes:
                print(f"{mode} round {round_number}: {outcome.line()}", flush=True)
            if not outcomes or not all(o.restored for o in outcomes):
                raise SystemExit(f"{mode}: the failback did not restore the estate: {outcomes}")
            seconds.append(sum(o.seconds for o in outcomes))
    finally:
        down(directory)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", nargs="+", choices=sorted(MODES), default=["redis", "postgres", "patroni"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    results = {mode: measure(mode, arguments.repeat) for mode in arguments.mode}
    for mode, seconds in results.items():
        print(f"{mode}: median {statistics.median(seconds):.1f} s over {len(seconds)} rounds")
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
