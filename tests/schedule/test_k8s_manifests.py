"""Exported Kubernetes manifests as a cluster would read them: the kubernetes client's own
deserializer (the one it reads API server answers with, given the manifest as the body), the
Secrets and volumes the jobs rely on, schedules spread within a cadence, and the Locust master
and workers next to the CronJobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes.client
import yaml

from harness.actions.load import LOCUSTFILE
from harness.model import ExperimentRef, Region, Scenario
from harness.schedule import (
    CADENCES,
    export_cronjobs,
    locust_service_name,
    parse_cron,
    spread_schedules,
    target_secret_name,
)

_MODELS = {
    ("batch/v1", "CronJob"): "V1CronJob",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("v1", "ConfigMap"): "V1ConfigMap",
}


def _deserialize(document: dict[str, Any]) -> Any:
    model = _MODELS[document["apiVersion"], document["kind"]]
    parsed = kubernetes.client.ApiClient().deserialize(json.dumps(document), model, "application/json")
    # Nothing dropped on the way: every field the export wrote has a place in the model.
    assert kubernetes.client.ApiClient().sanitize_for_serialization(parsed) == document
    return parsed


def _scenario(name: str, *cadences: str, rpm: float | None = None) -> Scenario:
    return Scenario(
        name=name,
        path=f"scenarios/{name}.yaml",
        regions=(Region("us-east-1", primary=True, requests_per_minute=rpm), Region("eu-west-1")),
        experiments=tuple(ExperimentRef(f"experiments/{name}-{c}.yaml", cadence=c) for c in cadences),
    )


ESTATE = [
    _scenario("aeon-nova", "daily", "weekly", rpm=1200),
    _scenario("anfl-ops", "weekly"),
    _scenario("finnexus", "daily", "weekly"),
    _scenario("novacron", "weekly", "biweekly"),
    _scenario("email-triage", "weekly", "monthly", rpm=1000),
]


def test_cronjobs_deserialize_as_batch_v1_and_mount_the_secrets_and_volumes() -> None:
    documents = list(yaml.safe_load_all(export_cronjobs(ESTATE, store_secret="team-history")))
    jobs = [_deserialize(d) for d in documents]
    assert all(isinstance(job, kubernetes.client.V1CronJob) for job in jobs)
    assert len(jobs) == 9  # one suite per job: every scenario x cadence
    for job in jobs:
        assert job.spec.concurrency_policy == "Forbid"
        scenario = job.metadata.labels["resilience-harness/scenario"]
        pod = job.spec.job_template.spec.template.spec
        (container,) = pod.containers
        volumes = {v.name: v for v in pod.volumes}
        mounts = {m.name: m for m in container.volume_mounts}
        # The endpoints file comes from the scenario's Secret, mounted read-only where --endpoints points.
        assert volumes["target"].secret.secret_name == target_secret_name(scenario)
        assert mounts["target"].read_only is True
        command = " ".join(container.command)
        assert f"--endpoints {mounts['target'].mount_path}/endpoints.json" in command
        # Reports go to the shared volume, history to PostgreSQL from the Secret through --store.
        assert volumes["reports"].persistent_volume_claim.claim_name == "harness-reports"
        assert f"--out {mounts['reports'].mount_path}" in command
        store = next(e for e in container.env if e.name == "HARNESS_STORE")
        assert (store.value_from.secret_key_ref.name, store.value_from.secret_key_ref.key) == (
            "team-history",
            "url",
        )
        assert "--store $(HARNESS_STORE)" in command or '--store "$HARNESS_STORE"' in command
        assert pod.security_context.run_as_non_root is True
        assert "--locust-master" not in command  # no Locust exported: load runs in the job's pod


def test_suites_of_one_cadence_never_start_in_the_same_minute() -> None:
    # Many scenarios on one cadence, some names hashing alike: still one minute each.
    many = [_scenario(f"system-{i:03d}", "weekly", "daily") for i in range(150)]
    schedules = spread_schedules(many)
    for cadence in ("weekly", "daily"):
        minutes = Counter(schedules[s.name, cadence] for s in many)
        assert max(minutes.values()) == 1
        for expression in minutes:
            parsed, base = parse_cron(expression), parse_cron(CADENCES[cadence].cron)
            assert parsed.weekdays == base.weekdays and parsed.days == base.days
    # Deterministic: the same estate exports the same schedules, whatever the order.
    assert spread_schedules(list(reversed(ESTATE))) == spread_schedules(ESTATE)
    jobs = list(yaml.safe_load_all(export_cronjobs(ESTATE)))
    weekly = [
        j["spec"]["schedule"]
        for j in jobs
        if j["metadata"]["labels"]["resilience-harness/cadence"] == "weekly"
    ]
    assert len(weekly) == 5 and len(set(weekly)) == 5  # the four-at-Monday-03:00, and one more
    assert all(s.split()[4] == "1" and 3 <= int(s.split()[1]) <= 4 for s in weekly)


def test_locust_master_and_workers_export_next_to_the_cronjobs() -> None:
    documents = list(yaml.safe_load_all(export_cronjobs(ESTATE, locust_workers=4, namespace="chaos")))
    parsed = [_deserialize(d) for d in documents]
    kinds = Counter(d["kind"] for d in documents)
    # Only the two scenarios with load get a Locust cluster.
    assert kinds == {"CronJob": 9, "Deployment": 4, "Service": 2, "ConfigMap": 2}
    service = locust_service_name("aeon-nova")
    deployments = {p.metadata.name: p for p in parsed if isinstance(p, kubernetes.client.V1Deployment)}
    master = deployments["harness-aeon-nova-locust-master"]
    workers = deployments["harness-aeon-nova-locust-worker"]
    assert master.spec.replicas == 1 and workers.spec.replicas == 4
    worker_command = workers.spec.template.spec.containers[0].command
    assert worker_command[worker_command.index("--master-host") + 1] == service
    (svc,) = [p for p in parsed if isinstance(p, kubernetes.client.V1Service) and p.metadata.name == service]
    assert svc.spec.selector == master.spec.template.metadata.labels
    assert {p.port for p in svc.spec.ports} == {8089, 5557}
    (targets,) = [
        p for p in parsed if isinstance(p, kubernetes.client.V1ConfigMap) and "aeon-nova" in p.metadata.name
    ]
    assert json.loads(targets.data["targets.json"]) == [
        {"region": "us-east-1", "requests_per_second": 20.0, "users": 2}
    ]
    # The pods read each region's URL from the same target Secret the jobs mount.
    assert master.spec.template.spec.volumes[0].secret.secret_name == target_secret_name("aeon-nova")
    for job in (p for p in parsed if isinstance(p, kubernetes.client.V1CronJob)):
        command = job.spec.job_template.spec.template.spec.containers[0].command
        scenario = job.metadata.labels["resilience-harness/scenario"]
        if scenario in ("aeon-nova", "email-triage"):
            assert f"--locust-master {locust_service_name(scenario)}:8089" in " ".join(command)
        else:
            assert "--locust-master" not in command


def test_the_exported_locust_targets_and_target_secret_make_the_locustfile_users(tmp_path: Path) -> None:
    """What a Locust pod does at start: read the ConfigMap's targets, take each region's URL from
    the mounted endpoints file (a fresh interpreter: locust is never imported next to requests)."""
    documents = list(yaml.safe_load_all(export_cronjobs(ESTATE, locust_workers=2)))
    (config,) = [d for d in documents if d["kind"] == "ConfigMap" and "aeon-nova" in d["metadata"]["name"]]
    endpoints = tmp_path / "endpoints.json"
    endpoints.write_text(json.dumps({"regions": {"us-east-1": {"api_url": "http://127.0.0.1:18080"}}}))
    show = (
        "import importlib.util, json, sys; spec = importlib.util.spec_from_file_location('lf', sys.argv[1]); "
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
        "print(json.dumps({n: [c.host, c.fixed_count, c.requests_per_second] "
        "for n, c in vars(module).items() if n.startswith('Region_')}))"
    )
    environment = {
        **os.environ,
        "HARNESS_LOAD_TARGETS": config["data"]["targets.json"],
        "HARNESS_ENDPOINTS": str(endpoints),
    }
    shown = subprocess.run(
        [sys.executable, "-c", show, str(LOCUSTFILE)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout.splitlines()[-1]) == {
        "Region_us_east_1": ["http://127.0.0.1:18080", 2, 20.0]
    }
