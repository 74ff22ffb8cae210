"""Prometheus and the exporters: every service scraped at 1 s, configuration generated.

Jobs: ``api`` (each regional API's /metrics), ``redis`` (redis_exporter per Redis server),
``postgres`` (postgres_exporter per PostgreSQL server), ``node`` (node_exporter: the host's CPU),
``process`` (process-exporter: CPU of each server process of the system under test, grouped by
component name), ``faultproxy`` (the proxy's /metrics), ``balancer`` (HAProxy's Prometheus exporter,
``haproxy_*``) and ``prometheus`` itself. Every target
carries ``region`` and ``component`` labels.

The node and process exporters are optional: without their Debian packages the sandbox runs
without them, and CPU saturation of the system under test is then unknown.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from harness.errors import EnvironmentProblem
from harness.sandbox import postgres
from harness.sandbox.components import HOST, Component, spawn
from harness.sandbox.ports import ensure_free
from harness.sandbox.topology import Plan

PROMETHEUS_BINARY = "prometheus"
REDIS_EXPORTER_BINARY = "prometheus-redis-exporter"
POSTGRES_EXPORTER_BINARY = "prometheus-postgres-exporter"
NODE_EXPORTER_BINARY = "prometheus-node-exporter"
PROCESS_EXPORTER_BINARY = "prometheus-process-exporter"
SCRAPE_INTERVAL = "1s"
# postgres_exporter's built-in pg_stat_replication has lag in bytes only; this adds seconds per
# standby (replay_lag is NULL when the standby has nothing to replay: 0).
POSTGRES_QUERIES = """\
pg_replication_replay:
  query: >-
    SELECT application_name, COALESCE(EXTRACT(EPOCH FROM replay_lag), 0)::float8 AS lag_seconds
    FROM pg_stat_replication
  metrics:
    - application_name:
        usage: "LABEL"
        description: "Standby name"
    - lag_seconds:
        usage: "GAUGE"
        description: "Seconds between flushing WAL on the primary and the standby replaying it"
"""


def host_exporters() -> bool:
    """True when the node and process exporters are installed (CPU of the system under test)."""
    return all(shutil.which(b) for b in (NODE_EXPORTER_BINARY, PROCESS_EXPORTER_BINARY))


def process_groups(plan: Plan) -> dict[str, str]:
    """Server process group name (the component's) → regex its command line matches.

    Only the system under test: Redis, Sentinel, PostgreSQL (its backends follow the postmaster),
    Patroni and the regional APIs; never Prometheus, the exporters or the fault proxy.
    """
    ports = plan.ports
    groups: dict[str, str] = {}
    for region in plan.regions:
        if f"redis-{region}" in ports:
            groups[f"redis-{region}"] = rf"^redis-server \S*:{ports[f'redis-{region}']}(\s|$)"
        if f"postgres-{region}" in ports:
            groups[f"postgres-{region}"] = (
                rf"/postgres -D .*(port=|--port=){ports[f'postgres-{region}']}(\s|$)"
            )
        if f"patroni-{region}" in ports:
            groups[f"patroni-{region}"] = rf"-m patroni \S*/patroni-{re.escape(region)}\.yml"
        if f"api-{region}" in ports:
            groups[f"api-{region}"] = (
                rf"-m harness\.sandbox\.api_service .*--port {ports[f'api-{region}']}(\s|$)"
            )
    for index in range(1, len(plan.sentinel_regions) + 1):
        if f"sentinel-{index}" in ports:
            groups[f"sentinel-{index}"] = rf"^redis-sentinel \S*:{ports[f'sentinel-{index}']}(\s|$)"
    return groups


def process_exporter_config(plan: Plan) -> str:
    """process-exporter's configuration (JSON, which is YAML): one named group per server."""
    names = [{"name": name, "cmdline": [pattern]} for name, pattern in process_groups(plan).items()]
    return json.dumps({"process_names": names}, indent=2) + "\n"


def start_exporters(directory: Path, plan: Plan) -> list[Component]:
    """A redis_exporter and a postgres_exporter per region, for the servers the plan runs."""
    started = []
    queries = directory / "postgres-exporter-queries.yml"
    queries.write_text(POSTGRES_QUERIES)
    for region in plan.regions:
        name = f"redis-exporter-{region}"
        if name in plan.ports:
            ensure_free(plan.ports[name], name)
            started.append(
                spawn(
                    directory,
                    name=name,
                    kind="redis-exporter",
                    region=region,
                    role="",
                    port=plan.ports[name],
                    command=(
                        REDIS_EXPORTER_BINARY,
                        "-redis.addr",
                        f"redis://{HOST}:{plan.ports[f'redis-{region}']}",
                        "-web.listen-address",
                        f"{HOST}:{plan.ports[name]}",
                    ),
                )
            )
        name = f"postgres-exporter-{region}"
        if name in plan.ports:
            ensure_free(plan.ports[name], name)
            started.append(
                spawn(
                    directory,
                    name=name,
                    kind="postgres-exporter",
                    region=region,
                    role="",
                    port=plan.ports[name],
                    command=(
                        POSTGRES_EXPORTER_BINARY,
                        f"--web.listen-address={HOST}:{plan.ports[name]}",
                        "--disable-settings-metrics",
                        f"--extend.query-path={queries}",
                    ),
                    env={
                        "DATA_SOURCE_NAME": postgres.dsn(plan.ports[f"postgres-{region}"])
                        + "?sslmode=disable"
                    },
                )
            )
    if host_exporters():
        started += _start_host_exporters(directory, plan)
    return started


def _start_host_exporters(directory: Path, plan: Plan) -> list[Component]:
    """node_exporter (CPU collector only) and process-exporter (the plan's server processes)."""
    started = []
    if "node-exporter" in plan.ports:
        port = plan.ports["node-exporter"]
        ensure_free(port, "node-exporter")
        started.append(
            spawn(
                directory,
                name="node-exporter",
                kind="node-exporter",
                region="",
                role="",
                port=port,
                command=(
                    NODE_EXPORTER_BINARY,
                    f"--web.listen-address={HOST}:{port}",
                    "--collector.disable-defaults",
                    "--collector.cpu",
                    "--collector.loadavg",
                ),
            )
        )
    if "process-exporter" in plan.ports:
        port = plan.ports["process-exporter"]
        ensure_free(port, "process-exporter")
        config = directory / "process-exporter.yml"
        config.write_text(process_exporter_config(plan))
        started.append(
            spawn(
                directory,
                name="process-exporter",
                kind="process-exporter",
                region="",
                role="",
                port=port,
                command=(
                    PROCESS_EXPORTER_BINARY,
                    "-web.listen-address",
                    f"{HOST}:{port}",
                    "-config.path",
                    str(config),
                    "-threads=false",
                    "-gather-smaps=false",
                ),
            )
        )
    return started


def _targets(plan: Plan) -> dict[str, list[tuple[str, str, int]]]:
    """job → [(component, region, port)] of everything Prometheus scrapes."""
    jobs: dict[str, list[tuple[str, str, int]]] = {
        "prometheus": [("prometheus", "", plan.ports["prometheus"])]
    }
    for job, prefix in (("api", "api"), ("redis", "redis-exporter"), ("postgres", "postgres-exporter")):
        found = [
            (f"{prefix}-{r}", r, plan.ports[f"{prefix}-{r}"])
            for r in plan.regions
            if f"{prefix}-{r}" in plan.ports
        ]
        if found:
            jobs[job] = found
    if host_exporters():
        for job in ("node", "process"):
            if f"{job}-exporter" in plan.ports:
                jobs[job] = [(f"{job}-exporter", "", plan.ports[f"{job}-exporter"])]
    if "faultproxy" in plan.ports:
        jobs["faultproxy"] = [("faultproxy", "", plan.ports["faultproxy"])]
    if "balancer-metrics" in plan.ports:  # HAProxy's exporter: the balancer's witness of user traffic
        jobs["balancer"] = [("balancer", "", plan.ports["balancer-metrics"])]
    return jobs


def prometheus_config(plan: Plan) -> str:
    """prometheus.yml scraping every target of the plan at 1 s (JSON, which is YAML)."""
    scrape_configs = [
        {
            "job_name": job,
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": "900ms",
            "static_configs": [
                {"targets": [f"{HOST}:{port}"], "labels": {"component": component, "region": region}}
                for component, region, port in targets
            ],
        }
        for job, targets in _targets(plan).items()
    ]
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": scrape_configs,
    }
    return json.dumps(config, indent=2) + "\n"


def start_prometheus(directory: Path, plan: Plan) -> Component:
    workdir = directory / "prometheus"
    workdir.mkdir(exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(prometheus_config(plan))
    port = plan.ports["prometheus"]
    ensure_free(port, "prometheus")
    return spawn(
        directory,
        name="prometheus",
        kind="prometheus",
        region="",
        role="",
        port=port,
        command=(
            PROMETHEUS_BINARY,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={HOST}:{port}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ),
        cwd=workdir,
    )


def wait_until_ready(prometheus: Component, timeout_seconds: float = 20.0) -> None:
    """Return once Prometheus answers /-/ready."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{prometheus.port}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise EnvironmentProblem(f"prometheus not ready within {timeout_seconds:g} s; see {prometheus.log}")
