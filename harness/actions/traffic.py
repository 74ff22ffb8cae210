"""Traffic actions on the global load balancer: drain a region (evacuation), restore it, weigh it.

They speak HAProxy's runtime API through the admin socket named in the configuration's
``traffic.admin_socket`` (the sandbox's endpoints.json writes it). Servers are found by name:
every server named after the region, in every backend (the sandbox names each server after its
region, one backend per client region). Against a real target they work with any HAProxy whose
runtime API socket the harness can reach and whose servers carry region names; a cloud balancer
(Route 53, a GSLB, a CDN) has no such socket, so there these actions are sandbox-only and an
evacuation is driven by the provider's own tooling.

Each action is journalled in the fault ledger before anything changes, with its undo, so a
rollback and ``harness recover`` put the region back (a balancer that is gone took its runtime
changes with it: nothing left to undo). The proof of effect is read back from the
runtime API (``show servers state``): every server of the region reports the new admin state
or weight. What users see (no request served by the drained region any more) is the traffic
probe's measure, not this proof.

A drained server takes no new requests; in a backend whose home server is drained, HAProxy
sends requests to the first backup that is up (the region's failover order). A weight of 0 has
the same effect; other weights only matter where several servers are active (policy weighted).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import ledger
from harness.actions._faults import Proof, close_faults, open_fault, record_effect
from harness.errors import ConfigError
from harness.sandbox import haproxy_admin
from harness.sandbox.haproxy_admin import ServerState

__all__ = ["drain_region", "reset_region_weight", "restore_region", "set_region_weight"]

_MODULE = "harness.actions.traffic"
MAX_WEIGHT = 256


def drain_region(region: str, configuration: Mapping[str, Any] | None = None) -> dict:
    """Drain every balancer server of `region`: no new requests go there (zonal-shift style).
    Undo with restore_region.

    Proof of effect: the runtime API reports each of the region's servers in drain state.
    """
    admin = _admin_socket(configuration)
    before = _servers_of(admin, region)
    names = [s.name for s in before]
    undo = ledger.Undo(_MODULE, "restore_region", {"region": region, "admin_socket": admin, "servers": names})
    fault_id = open_fault(configuration, f"{_MODULE}.drain_region", region, undo, reuse_open=True)
    at = time.monotonic()
    haproxy_admin.set_state(admin, names, "drain")
    after = _states(admin, names)
    proofs: list[Proof] = [
        _proof(server, after.get(server.name), "drain", lambda s: s.drained) for server in before
    ]
    return record_effect(configuration, fault_id, proofs, at_monotonic=at, region=region, servers=names)


def restore_region(
    region: str,
    admin_socket: str | None = None,
    servers: Sequence[str] | None = None,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Put `region`'s balancer servers back in service (``state ready``); safe to call twice.
    `admin_socket` and `servers` come from the ledger's undo; else from the configuration."""
    admin = admin_socket or _admin_socket(configuration)
    at = time.monotonic()
    try:
        names = list(servers) if servers is not None else [s.name for s in _servers_of(admin, region)]
        haproxy_admin.set_state(admin, names, "ready")
        after = _states(admin, names)
    except haproxy_admin.BalancerGone as gone:
        # The drain lived in the process's memory and went with it: nothing is left to undo.
        close_faults(configuration, (f"{_MODULE}.drain_region",), region)
        return {"region": region, "restored": True, "balancer_gone": str(gone), "at_monotonic": at}
    close_faults(configuration, (f"{_MODULE}.drain_region",), region)
    return {
        "region": region,
        "servers": names,
        "restored": all(not s.drained and not s.maintenance for s in after.values()),
        "states": {name: state.state for name, state in after.items()},
        "at_monotonic": at,
    }


def set_region_weight(region: str, weight: int, configuration: Mapping[str, Any] | None = None) -> dict:
    """Set the weight of every balancer server of `region` (0..256; 0 sends it no new requests).
    Undo with reset_region_weight (the weights before the first change).

    Proof of effect: the runtime API reports the new weight for each of the region's servers.
    """
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= MAX_WEIGHT:
        raise ConfigError(
            "arguments", "weight", f"expected a whole number from 0 to {MAX_WEIGHT}, got {weight!r}"
        )
    admin = _admin_socket(configuration)
    before = _servers_of(admin, region)
    names = [s.name for s in before]
    undo = ledger.Undo(
        _MODULE,
        "reset_region_weight",
        {"region": region, "admin_socket": admin, "weights": {s.name: s.weight for s in before}},
    )
    fault_id = open_fault(configuration, f"{_MODULE}.set_region_weight", region, undo, reuse_open=True)
    at = time.monotonic()
    haproxy_admin.set_weight(admin, names, weight)
    after = _states(admin, names)
    proofs: list[Proof] = [
        _proof(server, after.get(server.name), f"weight {weight}", lambda s: s.weight == weight)
        for server in before
    ]
    return record_effect(
        configuration, fault_id, proofs, at_monotonic=at, region=region, weight=weight, servers=names
    )


def reset_region_weight(
    region: str,
    admin_socket: str | None = None,
    weights: Mapping[str, int] | None = None,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Give `region`'s servers back their weights: those in `weights` (the ledger's undo), else the
    weights of the balancer's configuration. Safe to call twice."""
    admin = admin_socket or _admin_socket(configuration)
    try:
        if weights is None:
            weights = {s.name: s.initial_weight for s in _servers_of(admin, region)}
        for name, weight in weights.items():
            haproxy_admin.set_weight(admin, [name], weight)
        after = _states(admin, list(weights))
    except haproxy_admin.BalancerGone as gone:  # the weights went with the process
        close_faults(configuration, (f"{_MODULE}.set_region_weight",), region)
        return {"region": region, "reset": True, "balancer_gone": str(gone)}
    close_faults(configuration, (f"{_MODULE}.set_region_weight",), region)
    return {
        "region": region,
        "weights": {name: state.weight for name, state in after.items()},
        "reset": all(after[name].weight == weight for name, weight in weights.items() if name in after),
    }


# ---------------------------------------------------------------- the balancer


def _admin_socket(configuration: Mapping[str, Any] | None) -> str:
    traffic = (configuration or {}).get("traffic")
    admin = traffic.get("admin_socket") if isinstance(traffic, Mapping) else None
    if not admin:
        raise ConfigError(
            "configuration",
            "traffic.admin_socket",
            "expected the balancer's HAProxy runtime API socket (the sandbox's endpoints.json has it; "
            "a cloud balancer has none: these actions are sandbox-only there)",
        )
    return str(Path(admin))


def _servers_of(admin: str, region: str) -> list[ServerState]:
    """Every server named `region`, in every backend; ConfigError naming the servers there are."""
    states = haproxy_admin.servers_state(admin)
    found = [s for s in states if s.server == region]
    if not found:
        known = sorted({s.server for s in states})
        raise ConfigError("arguments", "region", f"no balancer server named {region!r} (servers: {known})")
    return found


def _states(admin: str, names: Sequence[str]) -> dict[str, ServerState]:
    wanted = set(names)
    return {s.name: s for s in haproxy_admin.servers_state(admin) if s.name in wanted}


def _proof(before: ServerState, after: ServerState | None, what: str, holds: Any) -> Proof:
    if after is None:
        return False, f"{before.name}: gone from the runtime API after the change"
    held = bool(holds(after))
    return held, (
        f"{before.name}: {before.state} (weight {before.weight}) -> {after.state} (weight {after.weight}), "
        f"{'reads back' if held else 'does not read back'} {what}"
    )
