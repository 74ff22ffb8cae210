"""The Kubernetes and AWS experiments are valid Chaos Toolkit experiments, and two run end to end."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from chaoslib.experiment import ensure_experiment_is_valid, run_experiment
from chaoslib.loader import load_experiment

from harness import ledger

from .conftest import FakeCluster

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
CLOUD_EXPERIMENTS = [
    "k8s-pod-kill.yaml",
    "k8s-network-partition.yaml",
    "aws-ec2-instance-failure.yaml",
    "aws-rds-failover.yaml",
    "aws-az-failure.yaml",
]


def _activities(experiment: dict) -> list[dict]:
    hypothesis = experiment.get("steady-state-hypothesis", {}).get("probes", [])
    return [*hypothesis, *experiment["method"], *experiment.get("rollbacks", [])]


@pytest.mark.parametrize("name", CLOUD_EXPERIMENTS)
def test_experiment_is_valid_and_uses_our_activities(name: str):
    experiment = load_experiment(str(EXPERIMENTS / name))

    ensure_experiment_is_valid(experiment)

    assert experiment["tags"] and experiment["rollbacks"]
    modules = {a["provider"]["module"] for a in _activities(experiment)}
    assert all(m.startswith(("harness.actions.", "harness.probes.")) for m in modules), modules
    rolled_back = {a["provider"]["module"] for a in experiment["rollbacks"]}
    assert rolled_back <= {"harness.actions.kubernetes", "harness.actions.aws"}


def test_pod_kill_experiment_runs_against_the_fake_cluster(fake_k8s: FakeCluster, ledger_dir: Path):
    fake_k8s.add_node("n1")
    fake_k8s.add_deployment("web", replicas=3)

    journal = run_experiment(load_experiment(str(EXPERIMENTS / "k8s-pod-kill.yaml")))

    assert journal["status"] == "completed" and journal["deviated"] is False
    kill = journal["run"][0]["output"]
    assert kill["effect_proven"] is True and len(kill["deleted_pods"]) == 1
    assert kill["deleted_pods"][0] not in {name for _, name in fake_k8s.pods}
    assert ledger.open_faults(ledger_dir) == []


def test_ec2_instance_failure_experiment_runs_against_moto(moto_aws: str, ledger_dir: Path):
    autoscaling = boto3.client("autoscaling")
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="web", ImageId="ami-12c6146b", InstanceType="t3.micro"
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="web",
        LaunchConfigurationName="web",
        MinSize=2,
        MaxSize=2,
        DesiredCapacity=2,
        AvailabilityZones=["us-east-1a"],
    )

    journal = run_experiment(load_experiment(str(EXPERIMENTS / "aws-ec2-instance-failure.yaml")))

    assert journal["status"] == "completed" and journal["deviated"] is False
    assert journal["run"][0]["output"]["effect_proven"] is True
    assert ledger.open_faults(ledger_dir) == []
