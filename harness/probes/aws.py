"""Read-only AWS nouns for experiments: instance states, ASG capacity, database writers.

Clients come from chaostoolkit-aws's ``aws_client``: region from the ``aws_region``
configuration key (or ``AWS_REGION`` / ``AWS_DEFAULT_REGION``), endpoint and credentials
from the environment (``AWS_ENDPOINT_URL`` reaches a local emulator such as moto).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chaosaws import aws_client
from chaosaws.asg.probes import desired_equals_healthy
from chaoslib.exceptions import ActivityFailed

__all__ = [
    "asg_is_at_desired_capacity",
    "elasticache_primary",
    "instance_states",
    "rds_cluster_status",
    "rds_cluster_writer",
    "running_instance_count",
    "running_instance_ids",
]


def instance_states(
    instance_ids: Sequence[str],
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """State name ("running", "stopped", ...) of each EC2 instance, by id."""
    ec2 = aws_client("ec2", configuration, secrets)
    reservations = ec2.describe_instances(InstanceIds=list(instance_ids))["Reservations"]
    return {i["InstanceId"]: i["State"]["Name"] for r in reservations for i in r["Instances"]}


def running_instance_count(
    az: str | None = None,
    filters: Sequence[Mapping[str, Any]] | None = None,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> int:
    """Running EC2 instances, optionally in one availability zone and matching describe filters."""
    return len(running_instance_ids(az, filters, configuration, secrets))


def running_instance_ids(
    az: str | None = None,
    filters: Sequence[Mapping[str, Any]] | None = None,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> list[str]:
    """Ids of running EC2 instances, sorted; optionally in one AZ and matching describe filters."""
    query = [dict(f) for f in filters or ()]
    query.append({"Name": "instance-state-name", "Values": ["running"]})
    if az:
        query.append({"Name": "availability-zone", "Values": [az]})
    ec2 = aws_client("ec2", configuration, secrets)
    ids = []
    for page in ec2.get_paginator("describe_instances").paginate(Filters=query):
        ids += [i["InstanceId"] for r in page["Reservations"] for i in r["Instances"]]
    return sorted(ids)


def asg_is_at_desired_capacity(
    asg_name: str,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> bool:
    """Whether the auto scaling group has as many healthy in-service instances as it wants."""
    return bool(desired_equals_healthy([asg_name], configuration=configuration, secrets=secrets))


def rds_cluster_status(
    db_cluster_identifier: str,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> str:
    """The cluster's status now ("available", "failing-over", ...)."""
    return _describe_cluster(db_cluster_identifier, configuration, secrets)["Status"]


def rds_cluster_writer(
    db_cluster_identifier: str,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> str:
    """Identifier of the DB instance that is the cluster's writer now."""
    cluster = _describe_cluster(db_cluster_identifier, configuration, secrets)
    writers = [m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"] if m["IsClusterWriter"]]
    if not writers:
        raise ActivityFailed(f"RDS cluster {db_cluster_identifier!r} has no writer instance")
    return writers[0]


def elasticache_primary(
    replication_group_id: str,
    node_group_id: str = "0001",
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> str:
    """Cache cluster id of the primary node of one node group (shard) of a replication group."""
    elasticache = aws_client("elasticache", configuration, secrets)
    try:
        groups = elasticache.describe_replication_groups(ReplicationGroupId=replication_group_id)
    except elasticache.exceptions.ReplicationGroupNotFoundFault as exc:
        raise ActivityFailed(f"ElastiCache replication group {replication_group_id!r} not found") from exc
    for node_group in groups["ReplicationGroups"][0]["NodeGroups"]:
        if node_group["NodeGroupId"] == node_group_id:
            for member in node_group["NodeGroupMembers"]:
                if member.get("CurrentRole") == "primary":
                    return member["CacheClusterId"]
    raise ActivityFailed(
        f"ElastiCache replication group {replication_group_id!r} node group {node_group_id!r} has no primary"
    )


def _describe_cluster(
    db_cluster_identifier: str, configuration: Mapping[str, Any] | None, secrets: Mapping[str, Any] | None
) -> dict[str, Any]:
    rds = aws_client("rds", configuration, secrets)
    try:
        return rds.describe_db_clusters(DBClusterIdentifier=db_cluster_identifier)["DBClusters"][0]
    except rds.exceptions.DBClusterNotFoundFault as exc:
        raise ActivityFailed(f"RDS cluster {db_cluster_identifier!r} not found") from exc
