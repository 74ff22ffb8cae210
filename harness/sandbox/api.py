"""Start the regional API services (harness.sandbox.api_service), one per region."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from harness.canary import writable_dsn
from harness.errors import EnvironmentProblem
from harness.sandbox import postgres, proxy
from harness.sandbox.components import HOST, Component, spawn
from harness.sandbox.ports import ensure_free
from harness.sandbox.redis import MASTER_NAME
from harness.sandbox.topology import Plan


def _arguments(plan: Plan, region: str) -> list[str]:
    ports = plan.ports
    through_proxy = plan.has("proxy") and region != plan.primary
    arguments = ["--redis-url", f"redis://{HOST}:{ports[f'redis-{region}']}/0", "--master-name", MASTER_NAME]
    sentinels = [f"{HOST}:{ports[name]}" for name in ports if name.startswith("sentinel-")]
    arguments += ["--sentinels", ",".join(sentinels)]
    if plan.has("proxy"):
        # Whichever server Sentinel names primary, a write from another region crosses the proxy.
        for server_port, route_port in proxy.redis_routes(plan, region).items():
            arguments += ["--redis-route", f"{HOST}:{server_port}={HOST}:{route_port}"]
    if f"postgres-{region}" in ports and plan.active_active:
        # Active-active: every region writes to its own server; pglogical carries it to the others.
        own = postgres.dsn(ports[f"postgres-{region}"])
        arguments += ["--postgres-dsn", own, "--postgres-primary-dsn", own]
        # ... and serves the convergence probe's HTTP contract over that server.
        arguments.append("--convergence")
    elif f"postgres-{region}" in ports:
        primary_port = ports[f"{region}-postgres"] if through_proxy else ports[f"postgres-{plan.primary}"]
        # After a failover the primary is another region's server: libpq tries each in turn for the
        # one that takes writes. The original primary is reached only through this region's route,
        # so a partition of that route is not bypassed.
        others = [ports[f"postgres-{r}"] for r in plan.regions if r != plan.primary]
        arguments += ["--postgres-dsn", postgres.dsn(ports[f"postgres-{region}"])]
        arguments += [
            "--postgres-primary-dsn",
            writable_dsn([postgres.dsn(p) for p in [primary_port, *others]]),
        ]
    return arguments


def start_apis(directory: Path, plan: Plan) -> list[Component]:
    started = []
    for region in plan.regions:
        name = f"api-{region}"
        port = plan.ports[name]
        ensure_free(port, name)
        command = (
            sys.executable,
            "-m",
            "harness.sandbox.api_service",
            "--region",
            region,
            "--port",
            str(port),
            *_arguments(plan, region),
        )
        role = "primary" if region == plan.primary else "secondary"
        started.append(
            spawn(directory, name=name, kind="api", region=region, role=role, port=port, command=command)
        )
    return started


def health(port: int) -> tuple[int, dict]:
    """(HTTP status, JSON body) of an API's /api/v1/health; (0, {}) when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/api/v1/health", timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError):
        return 0, {}


def wait_until_healthy(api: Component, timeout_seconds: float = 20.0) -> None:
    """Return once the API's health endpoint answers 200."""
    deadline = time.monotonic() + timeout_seconds
    code, body = 0, {}
    while time.monotonic() < deadline:
        code, body = health(api.port)
        if code == 200:
            return
        time.sleep(0.05)
    raise EnvironmentProblem(
        f"{api.name} not healthy within {timeout_seconds:g} s (HTTP {code} {body}); see {api.log}"
    )
