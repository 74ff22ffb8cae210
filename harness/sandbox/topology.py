"""What a scenario's sandbox consists of: regions, links, component names and their ports.

`plan` checks the topology (the loader checks the file; scenarios built in code come here
unchecked) and fixes every component's name and port before anything starts. Ports may be
pinned in the scenario under ``settings.sandbox.ports`` (component name → port); the rest
are drawn free on 127.0.0.1.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from harness.errors import ConfigError
from harness.loading import check_postgres_topology
from harness.model import Scenario
from harness.sandbox import ports as free

KINDS = ("redis", "proxy", "postgres", "patroni", "api", "prometheus", "exporters", "balancer")
FAILOVER_MODES = ("manual", "patroni")
KEEPER = "pglogical-keeper"  # wakes pglogical's manager when a subscription is down (active-active)


@dataclass(frozen=True, slots=True)
class Plan:
    """The sandbox to build for one scenario."""

    scenario: str
    primary: str
    regions: tuple[str, ...]  # primary first
    latency_seconds: Mapping[str, float]  # secondary region → one-way latency to the primary
    sentinel_regions: tuple[str, ...]  # region of sentinel-1, sentinel-2, ...
    kinds: frozenset[str]
    ports: Mapping[str, int] = field(default_factory=dict)  # component name → port
    pair_latency_seconds: Mapping[frozenset[str], float] = field(default_factory=dict)  # any two regions
    postgres_topology: str = "primary-standby"  # or "active-active" (harness.sandbox.pglogical)

    def latency_between(self, a: str, b: str) -> float:
        """One-way latency of the scenario's link between two sandbox regions; 0 without one."""
        return self.pair_latency_seconds.get(frozenset((a, b)), 0.0)

    @property
    def secondaries(self) -> tuple[str, ...]:
        return self.regions[1:]

    def has(self, kind: str) -> bool:
        return kind in self.kinds

    @property
    def active_active(self) -> bool:
        """Whether PostgreSQL is one writable server per region, replicating both ways (pglogical)."""
        return self.postgres_topology == "active-active" and self.has("postgres")


def _check_regions(scenario: Scenario) -> tuple[str, ...]:
    where = scenario.path or scenario.name
    seen: set[str] = set()
    for index, region in enumerate(scenario.regions):
        name = region.name
        if not name or not all(c.isalnum() or c == "-" for c in name) or name != name.lower():
            raise ConfigError(
                where, f"regions.{index}.name", f"expected lowercase letters, digits and dashes, got {name!r}"
            )
        if name in seen:
            raise ConfigError(where, f"regions.{index}.name", f"duplicate region {name!r}")
        seen.add(name)
    primaries = [r.name for r in scenario.regions if r.primary]
    if len(primaries) > 1:
        raise ConfigError(where, "regions", f"expected one primary region, found {', '.join(primaries)}")
    local = [r.name for r in scenario.regions if r.in_sandbox]
    if not local:
        raise ConfigError(where, "regions", "expected at least one region with sandbox: true")
    primary = scenario.primary_region
    first = primary.name if primary is not None and primary.in_sandbox else local[0]
    return (first, *[name for name in local if name != first])


def _check_links(scenario: Scenario) -> dict[frozenset[str], float]:
    """Every link between two sandbox regions: {a, b} → one-way latency."""
    where = scenario.path or scenario.name
    names = {r.name for r in scenario.regions}
    local = {r.name for r in scenario.regions if r.in_sandbox}
    latency: dict[frozenset[str], float] = {}
    pairs: set[frozenset[str]] = set()
    for index, link in enumerate(scenario.links):
        for position, region in enumerate((link.a, link.b)):
            if region not in names:
                raise ConfigError(
                    where,
                    f"links.{index}.between.{position}",
                    f"unknown region {region!r} (regions: {', '.join(sorted(names))})",
                )
        if link.a == link.b:
            raise ConfigError(
                where, f"links.{index}.between", f"a link joins two regions, got {link.a!r} twice"
            )
        pair = frozenset((link.a, link.b))
        if pair in pairs:
            raise ConfigError(
                where, f"links.{index}.between", f"duplicate link between {link.a} and {link.b}"
            )
        pairs.add(pair)
        if not math.isfinite(link.latency_seconds) or link.latency_seconds < 0:
            raise ConfigError(
                where,
                f"links.{index}.latency",
                f"expected a non-negative duration, got {link.latency_seconds!r} s",
            )
        if pair <= local:
            latency[pair] = link.latency_seconds
    return latency


def _check_settings(scenario: Scenario) -> None:
    where = scenario.path or scenario.name
    redis = scenario.redis
    if redis.sentinels < 1:
        raise ConfigError(where, "redis.sentinels", f"expected at least 1 sentinel, got {redis.sentinels}")
    if not 1 <= redis.sentinel_quorum <= redis.sentinels:
        raise ConfigError(
            where,
            "redis.sentinel_quorum",
            f"expected 1 to {redis.sentinels} (the number of sentinels), got {redis.sentinel_quorum}",
        )
    for name, seconds in (
        ("down_after", redis.down_after_seconds),
        ("failover_timeout", redis.failover_timeout_seconds),
    ):
        if not math.isfinite(seconds) or seconds < 0.001:
            raise ConfigError(
                where, f"redis.{name}", f"expected a duration of at least 1ms, got {seconds!r} s"
            )
    if scenario.postgres.failover not in FAILOVER_MODES:
        raise ConfigError(
            where,
            "postgres.failover",
            f"expected one of {', '.join(FAILOVER_MODES)}, got {scenario.postgres.failover!r}",
        )
    check_postgres_topology(where, scenario.postgres, scenario.regions)


def experiment_scenario(scenario: Scenario, extension: Mapping[str, Any]) -> Scenario:
    """The scenario an experiment's own sandbox is built from: the scenario itself, or, when the
    experiment's harness extension asks for another ``postgres_topology``, the scenario with that
    topology. A store a scenario keeps primary-standby for its failover experiments (Patroni
    included) can so be stood in by an active-active estate for the experiments about
    convergence; an active-active store has no primary, so Patroni does not run (failover manual).
    """
    wanted = extension.get("postgres_topology")
    if not wanted or wanted == scenario.postgres.topology:
        return scenario
    failover = "manual" if wanted == "active-active" else scenario.postgres.failover
    postgres = replace(scenario.postgres, topology=str(wanted), failover=failover)
    check_postgres_topology(scenario.path or scenario.name, postgres, scenario.regions)
    return replace(scenario, postgres=postgres)


def pinned_ports(scenario: Scenario) -> dict[str, int]:
    """Ports the scenario fixes under settings.sandbox.ports, checked for range and duplicates."""
    where = scenario.path or scenario.name
    sandbox = scenario.settings.get("sandbox", {}) if isinstance(scenario.settings, Mapping) else {}
    pinned = sandbox.get("ports", {}) if isinstance(sandbox, Mapping) else {}
    if not isinstance(pinned, Mapping):
        raise ConfigError(where, "settings.sandbox.ports", "expected a mapping of component name to port")
    owners: dict[int, str] = {}
    for name, port in pinned.items():
        field_name = f"settings.sandbox.ports.{name}"
        if isinstance(port, bool) or not isinstance(port, int) or not 1024 <= port <= 65535:
            raise ConfigError(where, field_name, f"expected a port number from 1024 to 65535, got {port!r}")
        if port in owners:
            raise ConfigError(where, field_name, f"duplicate port {port}, already given to {owners[port]}")
        owners[port] = str(name)
    return {str(name): port for name, port in pinned.items()}


def component_names(plan: Plan) -> list[str]:
    """Every component the plan starts, in start order."""
    names: list[str] = []
    if plan.has("proxy"):
        names.append("faultproxy")
    if plan.has("redis"):
        names += [f"redis-{r}" for r in plan.regions]
        names += [f"sentinel-{i}" for i in range(1, len(plan.sentinel_regions) + 1)]
    if plan.has("patroni"):
        names.append("etcd")
        names += [f"patroni-{r}" for r in plan.regions]
    elif plan.has("postgres"):
        names += [f"postgres-{r}" for r in plan.regions]
    if plan.has("exporters"):
        if plan.has("redis"):
            names += [f"redis-exporter-{r}" for r in plan.regions]
        if plan.has("postgres") or plan.has("patroni"):
            names += [f"postgres-exporter-{r}" for r in plan.regions]
        names += ["node-exporter", "process-exporter"]  # CPU of the system under test
    if plan.has("api"):
        names += [f"api-{r}" for r in plan.regions]
    if plan.has("balancer"):
        names.append("balancer")  # after the APIs: it checks them (harness.sandbox.balancer)
    if plan.has("prometheus"):
        names.append("prometheus")
    return names


def default_kinds(scenario: Scenario) -> frozenset[str]:
    """What a full sandbox of the scenario runs: Patroni only where it asks for it."""
    kinds = set(KINDS)
    kinds.discard("patroni" if scenario.postgres.failover != "patroni" else "postgres")
    if scenario.traffic is None:
        kinds.discard("balancer")  # a global load balancer only where the scenario describes one
    return frozenset(kinds)


def port_names(plan: Plan) -> list[str]:
    """Names that need a port: every component, the PostgreSQL servers Patroni runs, the proxy routes."""
    names = component_names(plan)
    if plan.has("patroni"):
        names += ["etcd-peer", *[f"postgres-{r}" for r in plan.regions]]
    if plan.active_active:
        names.append(KEEPER)  # harness.sandbox.pglogical's keeper
    if plan.has("proxy"):
        names += [f"{r}-{s}" for r in plan.secondaries for s in proxied_services(plan)]
        if plan.has("redis"):
            names += list(redis_mesh(plan))
        if plan.active_active:
            names += list(postgres_mesh(plan))
    if plan.has("balancer"):
        # The balancer's metrics frontend, and the proxy routes user traffic takes to each region
        # (harness.sandbox.balancer.routes).
        names.append("balancer-metrics")
        if plan.has("proxy") and plan.has("api"):
            names += [f"traffic-{r}" for r in plan.regions]
    return names


def postgres_mesh(plan: Plan) -> dict[str, tuple[str, str]]:
    """Active-active replication routes: ``<from>-postgres-<to>`` → (from, to) for every ordered pair.

    The subscriber in `from` connects through it to the provider in `to`, so the changes written
    in `to` cross it (on the proxy's downstream stream) on their way to `from`.
    """
    return {
        f"{source}-postgres-{target}": (source, target)
        for source in plan.regions
        for target in plan.regions
        if source != target
    }


def redis_mesh(plan: Plan) -> dict[str, tuple[str, str]]:
    """Redis routes between regions beyond those to the primary: name → (from, to).

    After a Sentinel failover any server may be the primary, so every region gets a route to
    every other region's Redis, named ``<from>-redis-<to>`` (``<from>-redis`` is to the primary).
    """
    return {
        f"{source}-redis-{target}": (source, target)
        for source in plan.regions
        for target in plan.secondaries
        if source != target
    }


def proxied_services(plan: Plan) -> list[str]:
    """Services whose cross-region connections go through the fault proxy."""
    services = ["redis"] if plan.has("redis") else []
    if (plan.has("postgres") or plan.has("patroni")) and not plan.active_active:
        services.append("postgres")  # active-active: every region writes locally (postgres_mesh)
    return services


def plan(scenario: Scenario, components: Collection[str] | None = None) -> Plan:
    """Check the scenario's topology and fix every component and port; ConfigError on bad input."""
    where = scenario.path or scenario.name
    regions = _check_regions(scenario)
    pair_latency = _check_links(scenario)
    to_primary = {r: frozenset((regions[0], r)) for r in regions[1:]}
    latency = {r: pair_latency[pair] for r, pair in to_primary.items() if pair in pair_latency}
    _check_settings(scenario)
    if components is None:
        kinds = default_kinds(scenario)
    else:
        unknown = sorted(set(components) - set(KINDS))
        if unknown:
            raise ConfigError(where, "components", f"unknown kind {unknown[0]!r} (kinds: {', '.join(KINDS)})")
        kinds = frozenset(components)
    sentinel_regions = tuple(regions[i % len(regions)] for i in range(scenario.redis.sentinels))
    topology = scenario.postgres.topology
    draft = Plan(
        scenario.name, regions[0], regions, latency, sentinel_regions, kinds, postgres_topology=topology
    )
    names = port_names(draft)
    pinned = pinned_ports(scenario)
    for name in pinned:
        if name not in names:
            raise ConfigError(
                where, f"settings.sandbox.ports.{name}", f"no such component (components: {', '.join(names)})"
            )
    drawn = iter(free.free_ports(len(names) - len(pinned), avoid=set(pinned.values())))
    assigned = {name: pinned[name] if name in pinned else next(drawn) for name in names}
    return Plan(
        scenario.name, regions[0], regions, latency, sentinel_regions, kinds, assigned, pair_latency, topology
    )
