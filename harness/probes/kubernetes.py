"""Read-only Kubernetes nouns for experiments: replica counts, policies, node schedulability.

The connection comes from the environment or ``secrets``, as chaostoolkit-kubernetes reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaosk8s import create_k8s_api_client
from kubernetes import client
from kubernetes.client.rest import ApiException

__all__ = [
    "deployment_is_fully_ready",
    "deployment_ready_replicas",
    "network_policy_exists",
    "node_is_schedulable",
]


def deployment_ready_replicas(
    name: str, ns: str = "default", secrets: Mapping[str, Any] | None = None
) -> int:
    """Replicas of a deployment that are ready now."""
    deployment = client.AppsV1Api(create_k8s_api_client(secrets)).read_namespaced_deployment(name, ns)
    return (deployment.status.ready_replicas if deployment.status else None) or 0


def deployment_is_fully_ready(
    name: str, ns: str = "default", secrets: Mapping[str, Any] | None = None
) -> bool:
    """Whether a deployment wants at least one replica and every wanted replica is ready."""
    deployment = client.AppsV1Api(create_k8s_api_client(secrets)).read_namespaced_deployment(name, ns)
    wanted = deployment.spec.replicas or 0
    ready = (deployment.status.ready_replicas if deployment.status else None) or 0
    return 0 < wanted <= ready


def network_policy_exists(name: str, ns: str = "default", secrets: Mapping[str, Any] | None = None) -> bool:
    """Whether a NetworkPolicy of that name is in the namespace."""
    try:
        client.NetworkingV1Api(create_k8s_api_client(secrets)).read_namespaced_network_policy(name, ns)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def node_is_schedulable(name: str, secrets: Mapping[str, Any] | None = None) -> bool:
    """Whether new pods may be scheduled on the node (it is not cordoned)."""
    node = client.CoreV1Api(create_k8s_api_client(secrets)).read_node(name)
    return not (node.spec and node.spec.unschedulable)
