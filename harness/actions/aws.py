"""AWS faults as inverse pairs, applied through chaostoolkit-aws (chaosaws).

Every fault is written to the fault ledger before it is applied, with an undo whose arguments
are self-contained: resource ids and the region. Endpoint and credentials are never written
down: at undo time they come from the environment (``AWS_ENDPOINT_URL``, ``AWS_PROFILE``,
the usual credential chain) or from ``secrets``, as chaosaws's ``aws_client`` reads them.

| fault                    | inverse                     | fault id target                      |
|--------------------------|-----------------------------|--------------------------------------|
| stop_instances           | start_instances             | aws/REGION/ec2/ID,ID                 |
| terminate_asg_instances  | await_asg_healthy           | aws/REGION/asg/NAME                  |
| failover_rds_cluster     | fail_back_rds_cluster       | aws/REGION/rds-cluster/ID            |
| failover_elasticache     | restore_elasticache_primary | aws/REGION/elasticache/GROUP/SHARD   |
| fail_availability_zone   | restore_availability_zone   | aws/REGION/az/AZ                     |

Terminated instances do not come back: the auto scaling group replaces them, so the undo of
a termination waits until the group is at its desired capacity again. chaostoolkit-aws 0.35
has no availability-zone action; ``fail_availability_zone`` stops every running EC2 instance
of the zone (optionally narrowed by describe filters), the part of an AZ loss that is
undoable. moto 5 implements everything used here except ElastiCache TestFailover.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chaosaws import aws_client
from chaosaws.asg.actions import terminate_random_instances
from chaosaws.ec2.actions import start_instances as _chaosaws_start_instances
from chaosaws.ec2.actions import stop_instances as _chaosaws_stop_instances
from chaosaws.elasticache.actions import test_failover
from chaosaws.rds.actions import failover_db_cluster
from chaoslib.exceptions import ActivityFailed, FailedActivity

from harness import ledger
from harness.actions._faults import close_faults, open_fault, record_effect
from harness.probes.aws import (
    asg_is_at_desired_capacity,
    elasticache_primary,
    instance_states,
    rds_cluster_writer,
    running_instance_ids,
)

__all__ = [
    "await_asg_healthy",
    "fail_availability_zone",
    "fail_back_rds_cluster",
    "failover_elasticache",
    "failover_rds_cluster",
    "restore_availability_zone",
    "restore_elasticache_primary",
    "start_instances",
    "stop_instances",
    "terminate_asg_instances",
]

_MODULE = "harness.actions.aws"
_POLL_INTERVAL_SECONDS = 1.0
_STOPPED = ("stopping", "stopped")
_TERMINATED = ("shutting-down", "terminated")


def stop_instances(
    instance_ids: Sequence[str],
    force: bool = False,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Stop EC2 instances. Undo with start_instances."""
    region, config = _region(configuration)
    ids = sorted(instance_ids)
    before = instance_states(ids, config, secrets)
    undo = ledger.Undo(_MODULE, "start_instances", {"instance_ids": ids, "region": region})
    fault_id = _record(configuration, "aws.stop_instances", _ec2_target(region, ids), undo)
    _chaosaws_stop_instances(instance_ids=ids, force=force, configuration=config, secrets=secrets)
    after = instance_states(ids, config, secrets)
    is_proven = all(after.get(i) in _STOPPED for i in ids)
    evidence = f"instance states {before} -> {after}"
    return _effect(configuration, fault_id, is_proven, evidence, {"instance_states": after})


def start_instances(
    instance_ids: Sequence[str],
    region: str | None = None,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Start EC2 instances (undoes stop_instances on the same ids). Safe to call twice."""
    region, config = _region(configuration, region)
    ids = sorted(instance_ids)
    _chaosaws_start_instances(instance_ids=ids, configuration=config, secrets=secrets)
    closed = _close(configuration, "aws.stop_instances", _ec2_target(region, ids))
    return {"instance_states": instance_states(ids, config, secrets), "closed_fault_ids": closed}


def terminate_asg_instances(
    asg_name: str,
    instance_count: int = 1,
    replacement_timeout_seconds: float = 600,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Terminate `instance_count` random in-service instances of an auto scaling group.

    Undo: await_asg_healthy, which waits up to `replacement_timeout_seconds` for replacements.
    """
    region, config = _region(configuration)
    asg_is_at_desired_capacity(asg_name, config, secrets)  # fails here, before the ledger, if absent
    undo = ledger.Undo(
        _MODULE,
        "await_asg_healthy",
        {"asg_name": asg_name, "region": region, "timeout_seconds": replacement_timeout_seconds},
    )
    fault_id = _record(configuration, "aws.terminate_asg_instances", f"aws/{region}/asg/{asg_name}", undo)
    results = terminate_random_instances(
        asg_names=[asg_name], instance_count=instance_count, configuration=config, secrets=secrets
    )
    ids = sorted(i["InstanceId"] for r in results for i in r["TerminatingInstances"])
    states = instance_states(ids, config, secrets) if ids else {}
    is_proven = bool(ids) and all(s in _TERMINATED for s in states.values())
    evidence = f"terminated in {asg_name}: {states or 'nothing'}"
    return _effect(
        configuration, fault_id, is_proven, evidence, {"terminated": ids, "instance_states": states}
    )


def await_asg_healthy(
    asg_name: str,
    region: str | None = None,
    timeout_seconds: float = 600,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Wait until the group has its desired count of healthy instances; ActivityFailed on timeout."""
    region, config = _region(configuration, region)
    waited_seconds = _wait_until(
        lambda: asg_is_at_desired_capacity(asg_name, config, secrets),
        timeout_seconds,
        f"auto scaling group {asg_name} below its desired healthy capacity",
    )
    closed = _close(configuration, "aws.terminate_asg_instances", f"aws/{region}/asg/{asg_name}")
    return {"asg_name": asg_name, "waited_seconds": waited_seconds, "closed_fault_ids": closed}


def failover_rds_cluster(
    db_cluster_identifier: str,
    target_db_instance_identifier: str | None = None,
    timeout_seconds: float = 300,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Force an Aurora/RDS cluster failover; waits up to `timeout_seconds` for a new writer.

    Undo with fail_back_rds_cluster, which makes the original writer the writer again.
    """
    region, config = _region(configuration)
    writer = rds_cluster_writer(db_cluster_identifier, config, secrets)
    undo = ledger.Undo(
        _MODULE,
        "fail_back_rds_cluster",
        {
            "db_cluster_identifier": db_cluster_identifier,
            "writer_instance_identifier": writer,
            "region": region,
        },
    )
    target = f"aws/{region}/rds-cluster/{db_cluster_identifier}"
    fault_id = _record(configuration, "aws.failover_rds_cluster", target, undo)
    if target_db_instance_identifier:
        failover_db_cluster(
            db_cluster_identifier, target_db_instance_identifier, configuration=config, secrets=secrets
        )
    else:  # chaosaws 0.35 sends TargetDBInstanceIdentifier=None, which botocore refuses; RDS picks
        aws_client("rds", config, secrets).failover_db_cluster(DBClusterIdentifier=db_cluster_identifier)
    new_writer = _poll_for(
        lambda: rds_cluster_writer(db_cluster_identifier, config, secrets),
        lambda w: w != writer,
        timeout_seconds,
    )
    evidence = f"cluster {db_cluster_identifier} writer {writer} -> {new_writer}"
    return _effect(
        configuration,
        fault_id,
        new_writer != writer,
        evidence,
        {"previous_writer": writer, "writer": new_writer},
    )


def fail_back_rds_cluster(
    db_cluster_identifier: str,
    writer_instance_identifier: str | None = None,
    region: str | None = None,
    timeout_seconds: float = 300,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Fail a cluster over to `writer_instance_identifier` (default: the writer before the open failover).

    Does nothing when that instance is the writer already. Safe to call twice.
    """
    region, config = _region(configuration, region)
    target = f"aws/{region}/rds-cluster/{db_cluster_identifier}"
    wanted = writer_instance_identifier or _recorded(
        configuration, "aws.failover_rds_cluster", target, "writer_instance_identifier"
    )
    writer = rds_cluster_writer(db_cluster_identifier, config, secrets)
    if wanted is not None and writer != wanted:
        failover_db_cluster(db_cluster_identifier, wanted, configuration=config, secrets=secrets)
        writer = _poll_for(
            lambda: rds_cluster_writer(db_cluster_identifier, config, secrets),
            lambda w: w == wanted,
            timeout_seconds,
        )
        if writer != wanted:
            raise ActivityFailed(
                f"cluster {db_cluster_identifier}: writer is {writer}, not {wanted},"
                f" after {timeout_seconds:g}s"
            )
    closed = _close(configuration, "aws.failover_rds_cluster", target)
    return {"writer": writer, "closed_fault_ids": closed}


def failover_elasticache(
    replication_group_id: str,
    node_group_id: str = "0001",
    timeout_seconds: float = 600,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ElastiCache TestFailover on one shard; waits up to `timeout_seconds` for a new primary.

    Undo with restore_elasticache_primary. When the API refuses the call and the primary is
    unchanged, the fault is closed as not applied and ActivityFailed says why (moto 5 does not
    implement TestFailover, so against moto this is what happens).
    """
    region, config = _region(configuration)
    primary = elasticache_primary(replication_group_id, node_group_id, config, secrets)
    undo = ledger.Undo(
        _MODULE,
        "restore_elasticache_primary",
        {
            "replication_group_id": replication_group_id,
            "node_group_id": node_group_id,
            "primary_cluster_id": primary,
            "region": region,
        },
    )
    target = f"aws/{region}/elasticache/{replication_group_id}/{node_group_id}"
    fault_id = _record(configuration, "aws.failover_elasticache", target, undo)
    try:
        test_failover(replication_group_id, node_group_id, configuration=config, secrets=secrets)
    except FailedActivity as exc:
        if elasticache_primary(replication_group_id, node_group_id, config, secrets) == primary:
            ledger.record_undone(ledger.state_dir(configuration), fault_id, how="not applied")
        endpoint = os.environ.get("AWS_ENDPOINT_URL", "the AWS endpoint")
        reason = " ".join(str(exc).split())[:300]
        raise ActivityFailed(
            f"ElastiCache TestFailover on {replication_group_id}/{node_group_id} was refused by {endpoint}"
            f" (primary still {primary}): {reason}"
        ) from exc
    new_primary = _poll_for(
        lambda: elasticache_primary(replication_group_id, node_group_id, config, secrets),
        lambda p: p != primary,
        timeout_seconds,
    )
    evidence = f"{replication_group_id}/{node_group_id} primary {primary} -> {new_primary}"
    return _effect(
        configuration,
        fault_id,
        new_primary != primary,
        evidence,
        {"previous_primary": primary, "primary": new_primary},
    )


def restore_elasticache_primary(
    replication_group_id: str,
    primary_cluster_id: str | None = None,
    node_group_id: str = "0001",
    region: str | None = None,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Make `primary_cluster_id` (default: the primary before the open failover) primary again.

    Uses ModifyReplicationGroup's PrimaryClusterId (chaosaws has no inverse of TestFailover),
    which applies to replication groups with cluster mode disabled. Safe to call twice.
    """
    region, config = _region(configuration, region)
    target = f"aws/{region}/elasticache/{replication_group_id}/{node_group_id}"
    wanted = primary_cluster_id or _recorded(
        configuration, "aws.failover_elasticache", target, "primary_cluster_id"
    )
    primary = elasticache_primary(replication_group_id, node_group_id, config, secrets)
    is_changed = wanted is not None and primary != wanted
    if is_changed:
        aws_client("elasticache", config, secrets).modify_replication_group(
            ReplicationGroupId=replication_group_id, PrimaryClusterId=wanted, ApplyImmediately=True
        )
    closed = _close(configuration, "aws.failover_elasticache", target)
    return {
        "primary": wanted if is_changed else primary,
        "is_changed": is_changed,
        "closed_fault_ids": closed,
    }


def fail_availability_zone(
    az: str,
    filters: Sequence[Mapping[str, Any]] | None = None,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Stop every running EC2 instance in an AZ (narrowed by describe `filters`, e.g. a tag).

    Undo with restore_availability_zone, which starts exactly the instances stopped here.
    """
    region, config = _region(configuration)
    target = f"aws/{region}/az/{az}"
    directory = ledger.state_dir(configuration)
    if (fault := ledger.open_fault_for(directory, "aws.fail_availability_zone", target)) is not None:
        fault_id, ids = fault.fault_id, list(fault.undo.arguments["instance_ids"])
    else:
        ids = running_instance_ids(az, filters, config, secrets)
        if not ids:
            raise ActivityFailed(f"no running EC2 instance in {az} matches {list(filters or [])}")
        undo = ledger.Undo(
            _MODULE, "restore_availability_zone", {"az": az, "instance_ids": ids, "region": region}
        )
        fault_id = _record(configuration, "aws.fail_availability_zone", target, undo)
    _chaosaws_stop_instances(instance_ids=ids, configuration=config, secrets=secrets)
    states = instance_states(ids, config, secrets)
    still_running = running_instance_ids(az, filters, config, secrets)
    is_proven = all(s in _STOPPED for s in states.values()) and not still_running
    evidence = f"{az}: stopped {states}; still running there: {still_running or 'none'}"
    return _effect(configuration, fault_id, is_proven, evidence, {"az": az, "instance_states": states})


def restore_availability_zone(
    az: str,
    instance_ids: Sequence[str] | None = None,
    region: str | None = None,
    stopping_timeout_seconds: float = 300,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Start the instances fail_availability_zone stopped (default: those of the open fault).

    Waits up to `stopping_timeout_seconds` for instances still stopping. Instances their auto
    scaling group terminated meanwhile (a stopped instance fails EC2 health checks) cannot be
    started: they are reported under "replaced" and the fault is still closed.
    """
    region, config = _region(configuration, region)
    target = f"aws/{region}/az/{az}"
    ids = sorted(
        instance_ids or _recorded(configuration, "aws.fail_availability_zone", target, "instance_ids") or []
    )
    states = _poll_for(
        lambda: instance_states(ids, config, secrets) if ids else {},
        lambda found: "stopping" not in found.values(),
        stopping_timeout_seconds,
    )
    stopped = sorted(i for i, state in states.items() if state == "stopped")
    if stopped:
        _chaosaws_start_instances(instance_ids=stopped, configuration=config, secrets=secrets)
    closed = _close(configuration, "aws.fail_availability_zone", target)
    return {
        "az": az,
        "instance_states": instance_states(ids, config, secrets) if ids else {},
        "replaced": sorted(i for i, state in states.items() if state in _TERMINATED),
        "closed_fault_ids": closed,
    }


# ---------------------------------------------------------------- helpers


def _region(configuration: Mapping[str, Any] | None, region: str | None = None) -> tuple[str, dict[str, Any]]:
    """The region to act in and the configuration chaosaws should get for it."""
    configuration = dict(configuration or {})
    found = (
        region
        or configuration.get("aws_region")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
    )
    if not found:
        raise ActivityFailed("no AWS region: set the configuration key aws_region, or AWS_REGION")
    return found, {**configuration, "aws_region": found}


def _ec2_target(region: str, instance_ids: Sequence[str]) -> str:
    return f"aws/{region}/ec2/{','.join(instance_ids)}"


def _record(configuration: Mapping[str, Any] | None, action: str, target: str, undo: ledger.Undo) -> str:
    """The open fault of `action` on `target` if any (its undo restores the first state), else a new one."""
    return open_fault(configuration, action, target, undo, reuse_open=True)


def _recorded(configuration: Mapping[str, Any] | None, action: str, target: str, argument: str) -> Any:
    """An undo argument of the open fault of `action` on `target`, or None when none is open."""
    fault = ledger.open_fault_for(ledger.state_dir(configuration), action, target)
    return None if fault is None else fault.undo.arguments[argument]


def _effect(
    configuration: Mapping[str, Any] | None,
    fault_id: str,
    is_proven: bool,
    evidence: str,
    details: Mapping[str, Any],
) -> dict[str, Any]:
    return record_effect(configuration, fault_id, [(is_proven, evidence)], **details)


def _close(configuration: Mapping[str, Any] | None, action: str, target: str) -> list[str]:
    """Mark every open fault of `action` on `target` undone; returns their ids."""
    return close_faults(configuration, (action,), target)


def _poll_for(read: Callable[[], Any], is_done: Callable[[Any], bool], timeout_seconds: float) -> Any:
    """Read until `is_done` holds or `timeout_seconds` pass; returns the last value read."""
    deadline = time.monotonic() + timeout_seconds
    value = read()
    while not is_done(value) and time.monotonic() < deadline:
        time.sleep(_POLL_INTERVAL_SECONDS)
        value = read()
    return value


def _wait_until(is_done: Callable[[], bool], timeout_seconds: float, failure: str) -> float:
    """Seconds waited until `is_done()`; raises ActivityFailed with `failure` after `timeout_seconds`."""
    started = time.monotonic()
    if _poll_for(is_done, bool, timeout_seconds):
        return time.monotonic() - started
    raise ActivityFailed(f"{failure} after {timeout_seconds:g}s")
