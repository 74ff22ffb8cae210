"""The cross-region links: fault-proxy routes from each region to the servers of the others.

A route named ``<region>-<service>`` (``eu-west-1-redis``) listens on its own port and
forwards to the primary region's server; the secondary region's replica, standby and API
connect to the primary through it. Redis also gets ``<from>-redis-<to>`` routes to every
other region's server (topology.redis_mesh), which carry replication and writes once a
Sentinel failover has moved the primary (see harness.sandbox.redirect).

The scenario's link latency is one-way, so each route gets a latency toxic of that value on
both streams: a request and its answer cross the link once each, adding twice the one-way
latency to a round trip, as between real regions.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

from harness.errors import EnvironmentProblem
from harness.sandbox import balancer
from harness.sandbox.components import HOST, Component, spawn
from harness.sandbox.ports import ensure_free
from harness.sandbox.topology import Plan, postgres_mesh, proxied_services, redis_mesh


def routes(plan: Plan) -> dict[str, dict[str, str]]:
    """Every route the plan needs: name → {region, to, service, upstream (the server's port name)}.

    Routes to the primary come first, in region order.
    """
    found = {
        f"{region}-{service}": {
            "region": region,
            "to": plan.primary,
            "service": service,
            "upstream": f"{service}-{plan.primary}",
        }
        for region in plan.secondaries
        for service in proxied_services(plan)
    }
    if plan.has("redis"):
        for name, (source, target) in redis_mesh(plan).items():
            found[name] = {"region": source, "to": target, "service": "redis", "upstream": f"redis-{target}"}
    if plan.active_active:  # pglogical subscriptions (harness.sandbox.pglogical)
        for name, (source, target) in postgres_mesh(plan).items():
            found[name] = {
                "region": source,
                "to": target,
                "service": "postgres",
                "upstream": f"postgres-{target}",
            }
    found.update(balancer.routes(plan))  # user traffic: the global load balancer to each region's API
    return found


def redis_routes(plan: Plan, region: str) -> dict[int, int]:
    """How `region` reaches every other region's Redis: server port → route port."""
    return {
        plan.ports[route["upstream"]]: plan.ports[name]
        for name, route in routes(plan).items()
        if route["service"] == "redis" and route["region"] == region
    }


def start(directory: Path, plan: Plan) -> Component:
    """Start the fault proxy with every route already created (no toxics yet)."""
    config = directory / "faultproxy.json"
    config.write_text(
        json.dumps(
            [
                {
                    "name": name,
                    "listen": f"{HOST}:{plan.ports[name]}",
                    "upstream": f"{HOST}:{plan.ports[route['upstream']]}",
                }
                for name, route in routes(plan).items()
            ],
            indent=2,
        )
    )
    port = plan.ports["faultproxy"]
    ensure_free(port, "faultproxy")
    for name in routes(plan):
        ensure_free(plan.ports[name], f"fault-proxy route {name}")
    return spawn(
        directory,
        name="faultproxy",
        kind="faultproxy",
        region="",
        role="",
        port=port,
        command=(
            sys.executable,
            "-m",
            "harness.faultproxy",
            "--host",
            HOST,
            "--port",
            str(port),
            "--config",
            str(config),
        ),
    )


def _post(url: str, body: dict) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5):
            pass
    except urllib.error.URLError as error:
        raise EnvironmentProblem(f"fault proxy refused {url}: {error}") from None


def add_latency(proxy: Component, plan: Plan) -> None:
    """Give every route its link's one-way latency on both streams (routes without a link get none)."""
    for name, route in routes(plan).items():
        latency_ms = round(plan.latency_between(route["region"], route["to"]) * 1000)
        if latency_ms == 0:
            continue
        for stream in ("upstream", "downstream"):
            _post(
                f"http://{HOST}:{proxy.port}/proxies/{name}/toxics",
                {
                    "name": f"region-latency-{stream}",
                    "type": "latency",
                    "stream": stream,
                    "attributes": {"latency": latency_ms, "jitter": 0},
                },
            )
