"""`harness recover` (ledger.recover) undoes an open Kubernetes scale-down and an open EC2 stop."""

from __future__ import annotations

from pathlib import Path

import boto3

from harness import ledger
from harness.actions import aws as aws_actions
from harness.actions import kubernetes as k8s_actions
from harness.probes.aws import instance_states

from .conftest import AWS_SECRET, K8S_TOKEN, FakeCluster


def test_recover_undoes_open_scale_down_and_ec2_stop(
    fake_k8s: FakeCluster, moto_server: str, moto_aws: str, ledger_dir: Path
):
    fake_k8s.add_node("n1")
    fake_k8s.add_deployment("web", replicas=3)
    [instance] = [
        i["InstanceId"]
        for i in boto3.client("ec2").run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)[
            "Instances"
        ]
    ]
    configuration = {"harness_state_dir": str(ledger_dir), "run_id": "crashed-run"}
    k8s_actions.scale_down_deployment("web", replicas=0, configuration=configuration)
    aws_actions.stop_instances([instance], configuration=configuration)
    # the run dies here: no rollback ran
    assert len(ledger.open_faults(ledger_dir)) == 2
    text = (ledger_dir / ledger.LEDGER_FILE).read_text()
    assert K8S_TOKEN not in text and AWS_SECRET not in text and moto_server not in text

    results = ledger.recover(ledger_dir)

    assert [r.error for r in results] == ["", ""]
    assert {r.fault.action for r in results} == {"kubernetes.scale_down_deployment", "aws.stop_instances"}
    assert fake_k8s.deployments[("default", "web")]["spec"]["replicas"] == 3
    assert instance_states([instance]) == {instance: "running"}
    assert ledger.open_faults(ledger_dir) == []
    assert ledger.recover(ledger_dir) == []
