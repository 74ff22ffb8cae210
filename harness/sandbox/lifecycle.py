"""Bring a sandbox up, report on it, and tear it down.

`up` plans the topology, starts the components in parallel stages and writes
``endpoints.json``; if anything fails it tears down what it started and re-raises. `down`
and `status` read only ``components.json``, so they work after the harness process that ran
`up` has crashed. `down` keeps ``logs/`` and removes everything else the sandbox made.
"""

from __future__ import annotations

import json
import shutil
import signal as signals
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from harness import interrupts
from harness.errors import EnvironmentProblem
from harness.model import Scenario
from harness.sandbox import api, monitoring, patroni, pglogical, proxy, redirect
from harness.sandbox import balancer as traffic
from harness.sandbox import components as procs
from harness.sandbox import postgres as pg
from harness.sandbox import redis as redis_servers
from harness.sandbox.topology import Plan, plan
from harness.varfile import write_var_file

ENDPOINTS_FILE = "endpoints.json"
LOGS = "logs"


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """How one recorded component is doing now."""

    name: str
    kind: str
    region: str
    pid: int
    port: int
    state: str  # running | dead | stale
    detail: str


@dataclass(frozen=True, slots=True)
class Sandbox:
    """A running sandbox: its directory and endpoints. Used as a context manager, it always goes down."""

    directory: Path
    endpoints: Mapping[str, Any]

    def down(self) -> list[str]:
        """Stop every component and remove the sandbox's files (logs stay); names of what was stopped."""
        return down(self.directory)

    def status(self) -> list[ComponentStatus]:
        return status(self.directory)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        with interrupts.deferred():  # a first signal must not leave half a sandbox running
            self.down()


# ---------------------------------------------------------------- up


def _check_binaries(wanted: Plan) -> None:
    binaries = []
    if wanted.has("redis"):
        binaries += [redis_servers.SERVER_BINARY, redis_servers.SENTINEL_BINARY]
    if wanted.has("prometheus"):
        binaries.append(monitoring.PROMETHEUS_BINARY)
    if wanted.has("exporters"):
        binaries.append(monitoring.REDIS_EXPORTER_BINARY)
        if wanted.has("postgres") or wanted.has("patroni"):
            binaries.append(monitoring.POSTGRES_EXPORTER_BINARY)
    for binary in binaries:
        if shutil.which(binary) is None:
            raise EnvironmentProblem(
                f"{binary} not found on PATH: `make demo` or scripts/install-system-packages installs it"
            )
    if wanted.has("patroni"):
        binaries.append(patroni.ETCD_BINARY)
    if wanted.has("postgres") or wanted.has("patroni"):
        pg.bin_dir()
    if wanted.has("balancer"):
        traffic.binary()  # EnvironmentProblem naming the package when HAProxy is missing
        if not wanted.has("api"):
            raise EnvironmentProblem("the balancer routes to the regional APIs: add the api component")
    if wanted.has("api") and not wanted.has("redis"):
        raise EnvironmentProblem("the regional API needs Redis: add the redis component")


def _refuse_running(directory: Path) -> None:
    alive = [c.name for c in procs.load_components(directory).values() if procs.is_alive(c)]
    if alive:
        raise EnvironmentProblem(
            f"a sandbox is already running in {directory} ({', '.join(alive[:3])}, ...): "
            f"run `harness sandbox down --dir {directory}` first"
        )
    _remove_state(directory)


def _endpoints(directory: Path, scenario: Scenario, wanted: Plan) -> dict[str, Any]:
    ports = wanted.ports
    regions: dict[str, dict[str, Any]] = {}
    for region in wanted.regions:
        entry: dict[str, Any] = {"primary": region == wanted.primary}
        if f"api-{region}" in ports:
            entry["api_url"] = f"http://{procs.HOST}:{ports[f'api-{region}']}"
        if f"redis-{region}" in ports:
            entry["redis_url"] = f"redis://{procs.HOST}:{ports[f'redis-{region}']}/0"
        if f"postgres-{region}" in ports:
            entry["postgres_dsn"] = pg.dsn(ports[f"postgres-{region}"])
        regions[region] = entry
    endpoints: dict[str, Any] = {
        "sandbox_dir": str(directory),
        "scenario": scenario.name,
        "primary_region": wanted.primary,
        "regions": regions,
    }
    if wanted.has("redis"):
        endpoints["redis_master_name"] = redis_servers.MASTER_NAME
        endpoints["redis_sentinels"] = [
            f"{procs.HOST}:{ports[f'sentinel-{i}']}" for i in range(1, len(wanted.sentinel_regions) + 1)
        ]
    if wanted.has("proxy"):
        endpoints["faultproxy_url"] = f"http://{procs.HOST}:{ports['faultproxy']}"
        endpoints["links"] = {
            _link_key(route, wanted.primary): {
                "proxy": name,
                "from": route["region"],
                "to": route["to"],
                "service": route["service"],
                "listen": f"{procs.HOST}:{ports[name]}",
                "latency_seconds": wanted.latency_between(route["region"], route["to"]),
            }
            for name, route in proxy.routes(wanted).items()
        }
    if wanted.has("patroni"):
        # The DCS Patroni keeps its leader key in: watched for exact detection and promotion times.
        endpoints["etcd_urls"] = [f"http://{procs.HOST}:{ports['etcd']}"]
        endpoints["patroni_scope"] = patroni.SCOPE
    if wanted.has("prometheus"):
        endpoints["prometheus_url"] = f"http://{procs.HOST}:{ports['prometheus']}"
    if wanted.active_active:
        endpoints.update(pglogical.endpoints(wanted, endpoints.get("links", {})))
    if wanted.has("balancer"):
        endpoints["traffic"] = traffic.endpoints(directory, wanted, scenario)
    endpoints["components"] = list(procs.load_components(directory))
    return endpoints


def _link_key(route: Mapping[str, str], primary: str) -> str:
    """``<from>/<service>`` for a route to the primary, ``<from>/<service>/<to>`` for the others."""
    if route["region"] == traffic.CLIENTS:  # user traffic to one region: clients/api/<region>
        return f"{route['region']}/{route['service']}/{route['to']}"
    key = f"{route['region']}/{route['service']}"
    return key if route["to"] == primary else f"{key}/{route['to']}"


class _Starter:
    """Starts one plan's components in parallel stages; `say` reports each ready component."""

    def __init__(self, directory: Path, scenario: Scenario, wanted: Plan, say: Callable[[str], None]) -> None:
        self.directory, self.scenario, self.plan, self.say = directory, scenario, wanted, say
        self.pool = ThreadPoolExecutor(max_workers=8)
        routed = wanted.has("proxy") and wanted.has("redis")
        self.redirect_library = redirect.build(directory / "redirect") if routed else None

    def ready(self, component: procs.Component, what: str = "") -> None:
        if interrupts.cancelled():  # interrupted: start nothing more, `up` tears down
            raise EnvironmentProblem("sandbox start interrupted")
        self.say(f"{component.name}: {what or component.kind} on {procs.HOST}:{component.port}")

    def upstream(self, region: str, service: str) -> int:
        """The port a secondary region reaches the primary's `service` on: its proxy route, or direct.

        Redis servers dial the primary's own port when the redirect library routes them.
        """
        redirected = service == "redis" and self.redirect_library is not None
        if self.plan.has("proxy") and not redirected:
            return self.plan.ports[f"{region}-{service}"]
        return self.plan.ports[f"{service}-{self.plan.primary}"]

    def redis_environment(self, region: str) -> dict[str, str]:
        if self.redirect_library is None:
            return {}
        return redirect.environment(self.redirect_library, proxy.redis_routes(self.plan, region))

    def proxy(self) -> None:
        component = proxy.start(self.directory, self.plan)
        procs.wait_until_listening(component)
        proxy.add_latency(component, self.plan)
        self.ready(component, f"fault proxy ({len(proxy.routes(self.plan))} routes)")

    def redis(self, primary: procs.Component, proxy_ready: Future[None] | None) -> None:
        if proxy_ready is not None:
            proxy_ready.result()
        upstream = {region: self.upstream(region, "redis") for region in self.plan.secondaries}
        environments = {region: self.redis_environment(region) for region in self.plan.secondaries}
        replicas = redis_servers.start_servers(
            self.directory, self.plan, self.plan.secondaries, upstream, environments
        )
        servers = [primary, *replicas]
        redis_servers.wait_until_replicating(servers)
        for server in servers:
            self.ready(server, f"redis {server.role}")
        sentinels = redis_servers.start_sentinels(self.directory, self.plan, self.scenario.redis)
        redis_servers.wait_until_watching(sentinels, replicas=len(self.plan.secondaries))
        for sentinel in sentinels:
            self.ready(sentinel, f"sentinel ({sentinel.region})")

    def postgres(self, proxy_ready: Future[None] | None) -> None:
        if self.plan.active_active:  # one writable server per region, pglogical both ways
            pglogical.start(self.directory, self.plan, proxy_ready, self.ready)
            return
        user = pg.run_as()
        root = pg.data_root(self.directory, user)
        synchronous = pg.wants_synchronous_commit(self.scenario)
        primary = pg.start_primary(self.directory, self.plan, root, user, synchronous)
        pg.wait_until_ready(primary)
        pg.create_slots(primary, self.plan.secondaries)
        self.ready(primary, "postgres primary")
        if proxy_ready is not None:
            proxy_ready.result()

        def standby(region: str) -> None:
            component = pg.start_standby(
                self.directory,
                self.plan,
                root,
                user,
                region,
                primary,
                self.upstream(region, "postgres"),
                synchronous,
            )
            pg.wait_until_ready(component, standby=True)
            self.ready(component, "postgres standby, streaming")

        for future in [self.pool.submit(standby, region) for region in self.plan.secondaries]:
            future.result()

    def patroni(self) -> None:
        user = pg.run_as()
        root = pg.data_root(self.directory, user)
        etcd = patroni.start_etcd(self.directory, self.plan)
        procs.wait_until_listening(etcd)
        self.ready(etcd, "etcd")
        synchronous = pg.wants_synchronous_commit(self.scenario)
        patroni.allow_template_clones(root, user, True)
        leader = patroni.start(self.directory, self.plan, self.plan.primary, root, user, synchronous)
        # The replicas start while the leader bootstraps (it holds the initialize key, so they
        # cannot race it): they load and wait, and clone as soon as its leader key appears.
        patroni.wait_until_initializing(etcd, leader)
        replicas = [
            patroni.start(self.directory, self.plan, r, root, user, synchronous)
            for r in self.plan.secondaries
        ]
        patroni.wait_until_role(leader, "primary")
        self.ready(leader, f"patroni (postgres primary :{self.plan.ports[f'postgres-{self.plan.primary}']})")
        for replica in replicas:
            patroni.wait_until_role(replica, "replica")
            server = replace(
                replica, name=f"postgres-{replica.region}", port=self.plan.ports[f"postgres-{replica.region}"]
            )
            pg.wait_until_ready(server, standby=True)
            self.ready(replica, f"patroni (postgres standby :{server.port}, streaming)")
        patroni.allow_template_clones(root, user, False)  # a later clone is a base backup

    def start(self) -> None:
        try:
            self._start()
        finally:
            # Interrupted: do not wait for workers still starting components; `up` stops what runs
            # first (so their waits fail fast), then waits for them (`finish`).
            self.pool.shutdown(wait=not interrupts.cancelled(), cancel_futures=True)

    def finish(self, timeout_seconds: float = 5.0) -> None:
        """Wait (bounded) for workers still starting components after an interrupt."""
        deadline = time.monotonic() + timeout_seconds
        for thread in list(getattr(self.pool, "_threads", ())):
            thread.join(max(0.0, deadline - time.monotonic()))

    def _start(self) -> None:
        proxy_ready = self.pool.submit(self.proxy) if self.plan.has("proxy") else None
        prometheus = (
            monitoring.start_prometheus(self.directory, self.plan) if self.plan.has("prometheus") else None
        )
        work = [proxy_ready] if proxy_ready is not None else []
        if self.plan.has("redis"):
            environment = {self.plan.primary: self.redis_environment(self.plan.primary)}
            primary = redis_servers.start_servers(
                self.directory, self.plan, (self.plan.primary,), {}, environment
            )[0]
            work.append(self.pool.submit(self.redis, primary, proxy_ready))
        if self.plan.has("patroni"):
            work.append(self.pool.submit(self.patroni))
        elif self.plan.has("postgres"):
            work.append(self.pool.submit(self.postgres, proxy_ready))
        # Exporters and APIs connect lazily: started now, they are ready when their backends are.
        exporters = (
            monitoring.start_exporters(self.directory, self.plan) if self.plan.has("exporters") else []
        )
        apis = api.start_apis(self.directory, self.plan) if self.plan.has("api") else []
        for future in work:
            future.result()
        for exporter in exporters:
            procs.wait_until_listening(exporter)
            self.ready(exporter)
        for service in apis:
            api.wait_until_healthy(service)
            self.ready(service, "regional API, healthy")
        if self.plan.has("balancer"):  # after the APIs: its first checks find them up
            front = traffic.start(self.directory, self.plan, self.scenario)
            traffic.wait_until_ready(front, traffic.admin_socket(self.directory))
            self.ready(front, "global load balancer (HAProxy)")
        if prometheus is not None:
            monitoring.wait_until_ready(prometheus)
            self.ready(prometheus, "prometheus, scraping every 1 s")


def up(
    scenario: Scenario,
    directory: Path,
    *,
    components: Collection[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Sandbox:
    """Start the scenario's sandbox in `directory` and return it once every component serves.

    `components` selects kinds (redis, proxy, postgres, patroni, api, prometheus, exporters);
    None starts everything the scenario needs. Raises ConfigError for a bad topology and
    EnvironmentProblem when a binary is missing, a port is taken or a component fails to start
    (after stopping whatever had started).
    """
    wanted = plan(scenario, components)
    _check_binaries(wanted)
    directory = Path(directory).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    _refuse_running(directory)
    (directory / LOGS).mkdir(exist_ok=True)
    starter: _Starter | None = None
    try:
        starter = _Starter(directory, scenario, wanted, progress or (lambda line: None))
        starter.start()
        endpoints = _endpoints(directory, scenario, wanted)
        temporary = directory / f"{ENDPOINTS_FILE}.tmp"
        temporary.write_text(json.dumps(endpoints, indent=2))
        temporary.replace(directory / ENDPOINTS_FILE)
        # The same endpoints as a Chaos Toolkit var-file, for plain `chaos run` (harness.control).
        write_var_file(directory, endpoints, directory / ENDPOINTS_FILE)
    except BaseException:
        with interrupts.deferred():
            procs.refuse_spawns(directory)  # a worker still starting things starts nothing more
            try:
                down(directory)  # what started; workers waiting on it fail fast
                if starter is not None:
                    starter.finish()
                    down(directory)  # anything a worker recorded meanwhile
            finally:
                procs.allow_spawns(directory)
        raise
    return Sandbox(directory, endpoints)


# ---------------------------------------------------------------- status and down


def status(directory: Path) -> list[ComponentStatus]:
    """The state of every recorded component: running, dead (process gone) or stale (alive, not serving)."""
    report = []
    for component in procs.load_components(Path(directory)).values():
        if not procs.is_alive(component):
            state, detail = "dead", f"process {component.pid} is gone"
        elif procs.is_paused(component):
            state, detail = "stale", f"process {component.pid} is paused (SIGSTOP)"
        elif not procs.port_accepts(component.port):
            state, detail = "stale", f"process {component.pid} runs but {procs.HOST}:{component.port} refuses"
        else:
            state, detail = "running", f"{procs.HOST}:{component.port}"
        report.append(
            ComponentStatus(
                component.name, component.kind, component.region, component.pid, component.port, state, detail
            )
        )
    return report


# PostgreSQL's fast shutdown is SIGINT; SIGTERM waits for clients to leave. Patroni's own clean
# stop spends seconds telling the DCS (stopped alongside it) and its peers that it leaves: a
# sandbox being removed needs none of that, so Patroni is killed and its PostgreSQL, which runs
# in a session of its own, gets a fast shutdown directly (_patroni_servers).
_STOP_SIGNALS = {"postgres": signals.SIGINT, "patroni": signals.SIGKILL}


def _remove_state(directory: Path) -> None:
    for path in procs.cleanup_paths(directory):
        shutil.rmtree(path, ignore_errors=True)
    for entry in directory.iterdir():
        if entry.name == LOGS:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name not in (procs.COMPONENTS_FILE, procs.LOCK_FILE):
            entry.unlink(missing_ok=True)
    procs.forget_components(directory)


def _patroni_servers(running: list[procs.Component]) -> list[tuple[Any, int]]:
    """The PostgreSQL postmasters Patroni nodes run (outside their process groups), with SIGINT."""
    data = [Path(c.cwd) / f"postgres-{c.region}" for c in running if c.kind == "patroni" and c.cwd]
    if not data:
        return []
    return [(process, signals.SIGINT) for process in procs.processes_naming(data)]


def down(directory: Path, grace_seconds: float = 2.0) -> list[str]:
    """Stop every recorded component by process group, remove the sandbox's files; names stopped.

    Sends the stop signal to all components at once, waits up to `grace_seconds`, then
    SIGKILLs what is left. Safe to call twice and on a directory that holds no sandbox.
    """
    directory = Path(directory).absolute()
    if not directory.is_dir():
        return []
    recorded = list(procs.load_components(directory).values())
    running = [c for c in recorded if procs.is_alive(c)]
    stop_signals = {c.name: _STOP_SIGNALS.get(c.kind, signals.SIGTERM) for c in running}
    procs.stop_all(running, stop_signals, grace_seconds, also=_patroni_servers(running))
    procs.kill_strays([*procs.cleanup_paths(directory), directory / "pgdata"])
    _remove_state(directory)
    return [c.name for c in running]
