"""AWS actions against moto's server: the resulting state, the ledger, and clear errors."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from chaoslib.exceptions import ActivityFailed

from harness import ledger
from harness.actions import aws
from harness.probes.aws import (
    asg_is_at_desired_capacity,
    instance_states,
    rds_cluster_writer,
    running_instance_count,
)

AMI = "ami-12c6146b"  # one of moto's built-in images


def _config(directory: Path) -> dict:
    return {"harness_state_dir": str(directory)}


def _run_instances(count: int, az: str, tags: dict[str, str] | None = None) -> list[str]:
    tag_specs = [
        {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()]}
    ]
    response = boto3.client("ec2").run_instances(
        ImageId=AMI,
        MinCount=count,
        MaxCount=count,
        InstanceType="t3.micro",
        Placement={"AvailabilityZone": az},
        TagSpecifications=tag_specs if tags else [],
    )
    return sorted(i["InstanceId"] for i in response["Instances"])


def test_stop_then_start_instances(moto_aws: str, ledger_dir: Path):
    ids = _run_instances(2, "us-east-1a")

    result = aws.stop_instances(ids, configuration=_config(ledger_dir))

    assert instance_states(ids) == {i: "stopped" for i in ids}
    assert result["effect_proven"] is True
    [fault] = ledger.open_faults(ledger_dir)
    assert fault.target == f"aws/us-east-1/ec2/{ids[0]},{ids[1]}"
    assert fault.undo == ledger.Undo(
        "harness.actions.aws", "start_instances", {"instance_ids": ids, "region": "us-east-1"}
    )

    started = aws.start_instances(ids, region="us-east-1", configuration=_config(ledger_dir))

    assert started["instance_states"] == {i: "running" for i in ids}
    assert started["closed_fault_ids"] == [result["fault_id"]]
    assert ledger.open_faults(ledger_dir) == []


def test_stop_unknown_instance_fails_before_the_ledger(moto_aws: str, ledger_dir: Path):
    with pytest.raises(ClientError, match="InvalidInstanceID"):
        aws.stop_instances(["i-0123456789abcdef0"], configuration=_config(ledger_dir))
    assert ledger.read_entries(ledger_dir) == []


def test_missing_region_is_a_clear_error(moto_aws: str, ledger_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ActivityFailed, match="no AWS region: set the configuration key aws_region"):
        aws.stop_instances(["i-0123456789abcdef0"], configuration=_config(ledger_dir))


def test_terminate_asg_instance_is_replaced(moto_aws: str, ledger_dir: Path):
    autoscaling = boto3.client("autoscaling")
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="web", ImageId=AMI, InstanceType="t3.micro"
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="web",
        LaunchConfigurationName="web",
        MinSize=2,
        MaxSize=4,
        DesiredCapacity=2,
        AvailabilityZones=["us-east-1a", "us-east-1b"],
    )

    result = aws.terminate_asg_instances("web", configuration=_config(ledger_dir))

    [terminated] = result["terminated"]
    assert instance_states([terminated]) == {terminated: "terminated"}
    assert result["effect_proven"] is True
    [fault] = ledger.open_faults(ledger_dir)
    assert fault.undo == ledger.Undo(
        "harness.actions.aws",
        "await_asg_healthy",
        {"asg_name": "web", "region": "us-east-1", "timeout_seconds": 600},
    )

    awaited = aws.await_asg_healthy("web", timeout_seconds=30, configuration=_config(ledger_dir))

    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]
    assert terminated not in {i["InstanceId"] for i in group["Instances"]}
    assert asg_is_at_desired_capacity("web")
    assert awaited["closed_fault_ids"] == [result["fault_id"]]


def test_rds_failover_and_fail_back_to_the_original_writer(moto_aws: str, ledger_dir: Path):
    rds = boto3.client("rds")
    rds.create_db_cluster(
        DBClusterIdentifier="orders",
        Engine="aurora-postgresql",
        MasterUsername="harness",
        MasterUserPassword="not-a-secret-1",
    )
    for name in ("orders-1", "orders-2"):
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            DBInstanceClass="db.r5.large",
            Engine="aurora-postgresql",
            DBClusterIdentifier="orders",
        )
    original = rds_cluster_writer("orders")

    result = aws.failover_rds_cluster("orders", timeout_seconds=10, configuration=_config(ledger_dir))

    assert result["previous_writer"] == original
    assert rds_cluster_writer("orders") == result["writer"] != original
    assert result["effect_proven"] is True
    [fault] = ledger.open_faults(ledger_dir)
    assert fault.undo.arguments == {
        "db_cluster_identifier": "orders",
        "writer_instance_identifier": original,
        "region": "us-east-1",
    }

    back = aws.fail_back_rds_cluster("orders", timeout_seconds=10, configuration=_config(ledger_dir))

    assert rds_cluster_writer("orders") == original == back["writer"]
    assert ledger.open_faults(ledger_dir) == []
    assert (
        aws.fail_back_rds_cluster("orders", original, configuration=_config(ledger_dir))["writer"] == original
    )


def test_elasticache_failover_is_a_clear_error_where_the_api_is_missing(moto_aws: str, ledger_dir: Path):
    boto3.client("elasticache").create_replication_group(
        ReplicationGroupId="sessions",
        ReplicationGroupDescription="sessions",
        CacheNodeType="cache.t3.micro",
        Engine="redis",
        NumCacheClusters=2,
        AutomaticFailoverEnabled=True,
    )

    with pytest.raises(
        ActivityFailed, match=r"ElastiCache TestFailover on sessions/0001 was refused by http://127"
    ):
        aws.failover_elasticache("sessions", configuration=_config(ledger_dir))

    assert ledger.open_faults(ledger_dir) == []
    assert [e.get("how") for e in ledger.read_entries(ledger_dir) if e["event"] == "undone"] == [
        "not applied"
    ]
    unchanged = aws.restore_elasticache_primary("sessions", "sessions-001", configuration=_config(ledger_dir))
    assert unchanged["is_changed"] is False


def test_availability_zone_failure_and_restore(moto_aws: str, ledger_dir: Path):
    in_a = _run_instances(2, "us-east-1a", {"tier": "web"})
    other_in_a = _run_instances(1, "us-east-1a", {"tier": "batch"})
    in_b = _run_instances(1, "us-east-1b", {"tier": "web"})
    web = [{"Name": "tag:tier", "Values": ["web"]}]

    result = aws.fail_availability_zone("us-east-1a", filters=web, configuration=_config(ledger_dir))

    assert instance_states(in_a) == {i: "stopped" for i in in_a}
    assert instance_states(other_in_a + in_b) == {i: "running" for i in other_in_a + in_b}
    assert running_instance_count("us-east-1a", web) == 0
    assert result["effect_proven"] is True
    [fault] = ledger.open_faults(ledger_dir)
    assert fault.undo == ledger.Undo(
        "harness.actions.aws",
        "restore_availability_zone",
        {"az": "us-east-1a", "instance_ids": in_a, "region": "us-east-1"},
    )

    boto3.client("ec2").terminate_instances(InstanceIds=in_a[:1])  # as its auto scaling group would
    restored = aws.restore_availability_zone("us-east-1a", configuration=_config(ledger_dir))

    assert restored["instance_states"] == {in_a[0]: "terminated", in_a[1]: "running"}
    assert restored["replaced"] == in_a[:1]
    assert ledger.open_faults(ledger_dir) == []


def test_availability_zone_without_running_instances_is_refused(moto_aws: str, ledger_dir: Path):
    _run_instances(1, "us-east-1b")
    with pytest.raises(ActivityFailed, match="no running EC2 instance in us-east-1a"):
        aws.fail_availability_zone("us-east-1a", configuration=_config(ledger_dir))
    assert ledger.read_entries(ledger_dir) == []
