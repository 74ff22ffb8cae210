"""Replication faults on an active-active PostgreSQL estate (pglogical): stop and start a region's intake.

`stop_replication(region)` disables every pglogical subscription *of* that region (the changes
the other regions write stop arriving there; what the region writes still leaves it), the way
an operator pauses a subscriber. It is journalled through the fault ledger before anything is
touched and undone by `start_replication`, a rollback or ``harness recover``.

The subscriptions are found in ``configuration["replication"]`` (the sandbox's endpoints.json:
``"<provider>-><subscriber>": {"subscription": ..., "subscriber": ..., "provider": ...}``) and
each region's server in ``configuration["regions"][region]["postgres_dsn"]``.

Proof of effect is observed, not read from pglogical's own listing alone: after the subscriptions
are disabled, a marker row is written at every provider (table ``harness_replication_markers``,
replicated like every table of the sandbox's estate, and apart from the convergence probe's
tables) and must still be absent from the stopped region after one second, while pglogical
reports each subscription ``disabled``. An estate without that table leaves the effect unproven.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import psycopg

from harness import ledger
from harness.actions._faults import Proof, close_faults, open_fault, record_effect
from harness.errors import ConfigError, EnvironmentProblem

__all__ = ["start_replication", "stop_replication"]

_MODULE = "harness.actions.replication"
OBSERVE_SECONDS = 1.0  # a marker absent this long after it was written did not replicate
READY_TIMEOUT_SECONDS = 15.0
MARKERS = "harness_replication_markers"


def stop_replication(region: str, configuration: Mapping[str, Any] | None = None) -> dict:
    """Disable every pglogical subscription of `region`: it stops receiving the other regions' writes
    (its own writes still leave it). Undo with start_replication.

    Proof of effect: every subscription reports ``disabled``, and a marker row written at each
    provider after the stop has not reached `region` one second later.
    """
    dsn, subscriptions = _intake(configuration, region)
    fault_id = open_fault(
        configuration,
        f"{_MODULE}.stop_replication",
        region,
        ledger.Undo(
            _MODULE, "start_replication", {"region": region, "dsn": dsn, "subscriptions": dict(subscriptions)}
        ),
    )
    at = time.monotonic()
    with _connect(dsn) as connection:
        for name in subscriptions.values():
            connection.execute("SELECT pglogical.alter_subscription_disable(%s, true)", (name,))
    proofs = [_disabled_proof(dsn, subscriptions)]
    proofs += _markers_withheld(configuration, dsn, region, subscriptions)
    return record_effect(
        configuration,
        fault_id,
        proofs,
        at_monotonic=at,
        region=region,
        subscriptions=sorted(subscriptions.values()),
    )


def start_replication(
    region: str,
    dsn: str | None = None,
    subscriptions: Mapping[str, str] | None = None,
    wait: bool = True,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Enable again every subscription stop_replication disabled in `region`. Safe to call twice.

    `dsn` and `subscriptions` (provider → subscription) come from the fault ledger on an undo;
    otherwise from the configuration. `wait`: return once each subscription is ``replicating``
    again (at most 15 s; a link still cut keeps it ``down``, which is reported, not raised).
    """
    if dsn is None or subscriptions is None:
        dsn, subscriptions = _intake(configuration, region)
    with _connect(dsn) as connection:
        for name in subscriptions.values():
            connection.execute("SELECT pglogical.alter_subscription_enable(%s, true)", (name,))
    close_faults(configuration, (f"{_MODULE}.stop_replication",), region)
    status = _wait_replicating(dsn, subscriptions, READY_TIMEOUT_SECONDS if wait else 0.0)
    return {
        "region": region,
        "subscriptions": sorted(subscriptions.values()),
        "status": status,
        "replicating": all(s == "replicating" for s in status.values()),
    }


# ---------------------------------------------------------------- configuration


def _intake(configuration: Mapping[str, Any] | None, region: str) -> tuple[str, dict[str, str]]:
    """The region's DSN and its subscriptions (provider region → subscription name)."""
    configuration = configuration or {}
    replication = configuration.get("replication") or {}
    if not isinstance(replication, Mapping) or not replication:
        raise ConfigError(
            "configuration",
            "replication",
            "expected the active-active estate's subscriptions (endpoints.json of a sandbox with "
            "postgres.topology: active-active)",
        )
    subscriptions = {
        str(entry.get("provider")): str(entry["subscription"])
        for entry in replication.values()
        if isinstance(entry, Mapping) and entry.get("subscriber") == region and entry.get("subscription")
    }
    if not subscriptions:
        known = sorted({str(e.get("subscriber")) for e in replication.values() if isinstance(e, Mapping)})
        raise ConfigError(
            "configuration", "replication", f"no subscription of region {region!r} (regions: {known})"
        )
    dsn = ((configuration.get("regions") or {}).get(region) or {}).get("postgres_dsn")
    if not dsn:
        raise ConfigError(
            "configuration", f"regions.{region}.postgres_dsn", "expected the region's PostgreSQL DSN"
        )
    return str(dsn), subscriptions


def _connect(dsn: str) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, connect_timeout=2, autocommit=True)
    except psycopg.OperationalError as error:
        raise EnvironmentProblem(f"PostgreSQL at {dsn} unreachable: {error}") from None


# ---------------------------------------------------------------- observation


def subscription_status(dsn: str) -> dict[str, str]:
    """Subscription name → pglogical status on one server."""
    with _connect(dsn) as connection:
        rows = connection.execute(
            "SELECT subscription_name, status FROM pglogical.show_subscription_status()"
        )
        return {str(name): str(status) for name, status in rows.fetchall()}


def _wait_replicating(dsn: str, subscriptions: Mapping[str, str], timeout_seconds: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout_seconds
    while True:
        found = subscription_status(dsn)
        status = {name: found.get(name, "missing") for name in subscriptions.values()}
        if all(s == "replicating" for s in status.values()) or time.monotonic() >= deadline:
            return status
        time.sleep(0.05)


def _disabled_proof(dsn: str, subscriptions: Mapping[str, str]) -> Proof:
    found = subscription_status(dsn)
    status = {name: found.get(name, "missing") for name in subscriptions.values()}
    held = all(s == "disabled" for s in status.values())
    listed = ", ".join(f"{name} {s}" for name, s in sorted(status.items()))
    return held, f"pglogical reports {listed}"


def _markers_withheld(
    configuration: Mapping[str, Any] | None, dsn: str, region: str, subscriptions: Mapping[str, str]
) -> list[Proof]:
    """Write a marker at every provider; each must still be missing from `region` after a second."""
    regions = (configuration or {}).get("regions") or {}
    written: dict[str, str] = {}
    proofs: list[Proof] = []
    for provider in subscriptions:
        provider_dsn = (regions.get(provider) or {}).get("postgres_dsn")
        if not provider_dsn:
            proofs.append((False, f"no DSN for provider {provider}: no marker written there"))
            continue
        marker = f"stop-{region}-{uuid.uuid4().hex[:12]}"
        try:
            with _connect(str(provider_dsn)) as connection:
                connection.execute(f"INSERT INTO {MARKERS} (id, origin) VALUES (%s, %s)", (marker, provider))
        except (psycopg.Error, EnvironmentProblem) as error:
            proofs.append((False, f"marker not written at {provider}: {error}"))
            continue
        written[provider] = marker
    if not written:
        return proofs
    time.sleep(OBSERVE_SECONDS)
    with _connect(dsn) as connection:
        arrived = {
            str(row[0])
            for row in connection.execute(
                f"SELECT id FROM {MARKERS} WHERE id = ANY(%s)", (list(written.values()),)
            ).fetchall()
        }
    for provider, marker in written.items():
        held = marker not in arrived
        proofs.append(
            (
                held,
                f"marker {marker} written at {provider} "
                + (f"absent from {region} after {OBSERVE_SECONDS:g} s" if held else f"reached {region}"),
            )
        )
    return proofs
