"""The pglogical keeper of an active-active sandbox: wakes pglogical's manager when a subscription is down.

``python -m harness.sandbox.pglogical_keeper --port P --dsn DSN [--dsn DSN ...]``

pglogical relaunches a failed subscription worker only when its database manager wakes, after
naps that grow to 3 minutes (see harness.sandbox.pglogical). Once a second the keeper asks each
server for enabled subscriptions that are ``down`` and wakes that server's manager by enabling
the (already enabled) subscription again, in a transaction that locks the subscription's row
first: a concurrent disable (harness.actions.replication.stop_replication) is ordered before or
after it, and a disabled subscription is never enabled. It holds its port open so that
``harness sandbox status`` sees it running.
"""

from __future__ import annotations

import argparse
import socket
import time

import psycopg

HOST = "127.0.0.1"
KEEP_INTERVAL_SECONDS = 1.0
_LOCK_ENABLED = "SELECT sub_enabled FROM pglogical.subscription WHERE sub_name = %s FOR UPDATE"


def wake_down_subscriptions(dsn: str) -> list[str]:
    """Wake the server's pglogical manager for every enabled subscription that is down; their names.

    The row lock orders this after a concurrent disable: a disabled subscription stays disabled.
    """
    woken = []
    with psycopg.connect(dsn, connect_timeout=1, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT subscription_name, status FROM pglogical.show_subscription_status()"
        )
        for name, status in rows.fetchall():
            if status != "down":
                continue
            with connection.transaction():
                enabled = connection.execute(_LOCK_ENABLED, (name,)).fetchone()
                if enabled is not None and enabled[0] is True:
                    connection.execute("SELECT pglogical.alter_subscription_enable(%s, false)", (name,))
                    woken.append(str(name))
    return woken


def keep(dsns: list[str], interval_seconds: float = KEEP_INTERVAL_SECONDS) -> None:
    """Forever: wake each server's manager when one of its subscriptions is down."""
    while True:
        started = time.monotonic()
        for dsn in dsns:
            try:
                woken = wake_down_subscriptions(dsn)
            except psycopg.Error:
                continue  # that server is down or restarting: its subscriptions wait for it
            if woken:
                print(f"woke pglogical manager at {dsn} for {', '.join(woken)}", flush=True)
        time.sleep(max(0.0, interval_seconds - (time.monotonic() - started)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m harness.sandbox.pglogical_keeper", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, required=True, help="held open so `sandbox status` sees it run")
    parser.add_argument("--dsn", action="append", default=[], help="a server of the estate (repeat)")
    parser.add_argument("--interval", type=float, default=KEEP_INTERVAL_SECONDS)
    args = parser.parse_args(argv)
    listener = socket.create_server((HOST, args.port))
    listener.listen(8)
    print(f"pglogical keeper on {HOST}:{args.port} watching {len(args.dsn)} servers", flush=True)
    keep(args.dsn, args.interval)


if __name__ == "__main__":
    main()
