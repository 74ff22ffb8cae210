"""Prometheus and the exporters: every service scraped at 1 s, configuration generated.

Jobs: ``api`` (each regional API's /metrics), ``redis`` (redis_exporter per Redis server),
``postgres`` (postgres_exporter per PostgreSQL server), ``faultproxy`` (the proxy's /metrics)
and ``prometheus`` itself. Every target carries ``region`` and ``component`` labels.
"""

from __future__ import annotations

import json
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
SCRAPE_INTERVAL = "1s"


def start_exporters(directory: Path, plan: Plan) -> list[Component]:
    """A redis_exporter and a postgres_exporter per region, for the servers the plan runs."""
    started = []
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
                    ),
                    env={
                        "DATA_SOURCE_NAME": postgres.dsn(plan.ports[f"postgres-{region}"])
                        + "?sslmode=disable"
                    },
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
    if "faultproxy" in plan.ports:
        jobs["faultproxy"] = [("faultproxy", "", plan.ports["faultproxy"])]
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
