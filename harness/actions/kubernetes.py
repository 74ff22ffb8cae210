"""Kubernetes faults as inverse pairs, applied through chaostoolkit-kubernetes (chaosk8s).

Every fault is written to the fault ledger before it is applied, with an undo whose arguments
are self-contained (names, namespaces, previous replica counts). The connection comes from the
environment or ``secrets`` at call time, as chaosk8s reads it (``KUBECONFIG``, in-pod settings,
or ``KUBERNETES_HOST`` with ``KUBERNETES_API_KEY``), so no credential is ever written down.

| fault                   | inverse                    | fault id target                        |
|-------------------------|----------------------------|----------------------------------------|
| partition_namespace     | heal_namespace             | kubernetes/NS/networkpolicy/NAME       |
| scale_down_deployment   | restore_deployment_scale   | kubernetes/NS/deployment/NAME          |
| terminate_pods          | await_deployment_ready     | kubernetes/NS/deployment/NAME          |
| cordon_node, drain_node | uncordon_node              | kubernetes/node/NAME                   |

Pods killed by ``terminate_pods`` come back through their controller; the recorded undo waits
until the deployment is ready again, so an open terminate fault means "not yet seen recovered".

Proof of effect is what a client would see, not the API object: a NetworkPolicy is proven only
when connections to the `probe_addresses` behind it (pods' or a Service's ``host:port`` that
answered just before) fail; a scale-down only when the pod listing shows no more running pods
than asked. Otherwise the effect is unproven and the run's verdict unknown.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

from chaosk8s import create_k8s_api_client
from chaosk8s.deployment.actions import scale_deployment
from chaosk8s.networking.actions import create_network_policy, remove_network_policy
from chaosk8s.node.actions import cordon_node as _chaosk8s_cordon
from chaosk8s.node.actions import drain_nodes
from chaosk8s.node.actions import uncordon_node as _chaosk8s_uncordon
from chaosk8s.pod.actions import terminate_pods as _chaosk8s_terminate_pods
from chaoslib.exceptions import ActivityFailed
from kubernetes import client
from kubernetes.client.rest import ApiException

from harness import ledger
from harness.actions._faults import close_faults, open_fault, record_effect, recorded_effect
from harness.probes.kubernetes import network_policy_exists, node_is_schedulable

__all__ = [
    "await_deployment_ready",
    "cordon_node",
    "drain_node",
    "heal_namespace",
    "partition_namespace",
    "restore_deployment_scale",
    "scale_down_deployment",
    "terminate_pods",
    "uncordon_node",
]

_MODULE = "harness.actions.kubernetes"
DEFAULT_POLICY_NAME = "harness-partition"
_POLL_INTERVAL_SECONDS = 1.0
_CONNECT_TIMEOUT_SECONDS = 1.0
_EFFECT_POLL_SECONDS = 0.2


def partition_namespace(
    ns: str = "default",
    pod_labels: Mapping[str, str] | None = None,
    peer_labels: Mapping[str, str] | None = None,
    name: str = DEFAULT_POLICY_NAME,
    probe_addresses: Sequence[str] = (),
    effect_timeout_seconds: float = 10.0,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Cut traffic with a NetworkPolicy. Undo with heal_namespace.

    Without labels every pod of `ns` loses all ingress and egress. With `pod_labels` only those
    pods are isolated; adding `peer_labels` isolates them from the peers alone (traffic to and
    from every other pod, in any namespace, is still allowed; addresses outside the cluster's
    pods are dropped for the selected pods). Takes effect only where the cluster's network
    plugin enforces NetworkPolicies, so the proof is an effect probe: every `probe_addresses`
    ``host:port`` (isolated pods or their Service, as the harness reaches them) must accept a
    connection before the policy and refuse or drop one within `effect_timeout_seconds` after.
    Without probe addresses the effect is unproven.
    """
    if peer_labels and not pod_labels:
        raise ActivityFailed("partition_namespace: peer_labels needs pod_labels (the other side)")
    addresses = [_address(a) for a in probe_addresses if str(a).strip()]  # "": an unset variable
    before = {a: _connects(a) for a in addresses}
    target = f"kubernetes/{ns}/networkpolicy/{name}"
    undo = ledger.Undo(_MODULE, "heal_namespace", {"ns": ns, "name": name})
    open_already = ledger.open_fault_for(
        ledger.state_dir(configuration), "kubernetes.partition_namespace", target
    )
    fault_id = _record(configuration, "kubernetes.partition_namespace", target, undo)
    if open_already is not None and (proof := recorded_effect(configuration, fault_id)) is not None:
        # Applied again: the probes were cut by this very policy, so only the first look can tell.
        return {
            "policy": name,
            "ns": ns,
            "fault_id": fault_id,
            "effect_proven": proof[0],
            "evidence": proof[1],
        }
    spec = _partition_policy(name, pod_labels or {}, peer_labels or {})
    try:
        create_network_policy(spec=spec, ns=ns, secrets=secrets)
    except ApiException as exc:
        if exc.status != 409:  # 409: already there from an earlier call, which is the goal
            raise ActivityFailed(f"creating NetworkPolicy {ns}/{name} failed: {_reason(exc)}") from exc
    is_present = network_policy_exists(name, ns, secrets)
    proofs = [
        (is_present, f"NetworkPolicy {ns}/{name} {'present' if is_present else 'missing'} after create")
    ]
    proofs += _cut_proofs(before, effect_timeout_seconds)
    return _effect(configuration, fault_id, proofs, {"policy": name, "ns": ns})


def heal_namespace(
    ns: str = "default",
    name: str = DEFAULT_POLICY_NAME,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Delete the NetworkPolicy made by partition_namespace. Safe to call twice."""
    try:
        remove_network_policy(name, ns=ns, secrets=secrets)
        removed = True
    except ApiException as exc:
        if exc.status != 404:
            raise ActivityFailed(f"deleting NetworkPolicy {ns}/{name} failed: {_reason(exc)}") from exc
        removed = False
    closed = _close(
        configuration, ("kubernetes.partition_namespace",), f"kubernetes/{ns}/networkpolicy/{name}"
    )
    return {"policy": name, "ns": ns, "removed": removed, "closed_fault_ids": closed}


def scale_down_deployment(
    name: str,
    replicas: int = 0,
    ns: str = "default",
    effect_timeout_seconds: float = 60.0,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Scale a deployment down to `replicas`. Undo with restore_deployment_scale.

    Proof of effect: within `effect_timeout_seconds` the pod listing shows at most `replicas`
    running pods of the deployment (pods terminating or finished do not count).
    """
    target = f"kubernetes/{ns}/deployment/{name}"
    deployment = _read_deployment(name, ns, secrets)
    previous_replicas = deployment.spec.replicas
    undo = ledger.Undo(
        _MODULE, "restore_deployment_scale", {"name": name, "ns": ns, "replicas": previous_replicas}
    )
    fault_id = _record(configuration, "kubernetes.scale_down_deployment", target, undo)
    scale_deployment(name, replicas, ns=ns, secrets=secrets)
    selector = _selector_of(deployment)
    deadline = time.monotonic() + effect_timeout_seconds
    while len(running := _running_pods(selector, ns, secrets)) > replicas and time.monotonic() < deadline:
        time.sleep(_POLL_INTERVAL_SECONDS)
    gone = len(running) <= replicas
    evidence = (
        f"deployment {ns}/{name} scaled {previous_replicas} -> {replicas}; pods running ({selector}): "
        + (", ".join(running) or "none")
        + ("" if gone else f" after {effect_timeout_seconds:g} s")
    )
    return _effect(
        configuration,
        fault_id,
        [(gone, evidence)],
        {"deployment": name, "ns": ns, "previous_replicas": previous_replicas, "replicas": replicas},
    )


def restore_deployment_scale(
    name: str,
    ns: str = "default",
    replicas: int | None = None,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Scale a deployment back up. Without `replicas`, to the count the open scale-down recorded."""
    target = f"kubernetes/{ns}/deployment/{name}"
    if replicas is None:
        fault = ledger.open_fault_for(
            ledger.state_dir(configuration), "kubernetes.scale_down_deployment", target
        )
        if fault is None:
            return {"deployment": name, "ns": ns, "replicas": None, "closed_fault_ids": []}
        replicas = int(fault.undo.arguments["replicas"])
    scale_deployment(name, replicas, ns=ns, secrets=secrets)
    closed = _close(configuration, ("kubernetes.scale_down_deployment",), target)
    return {"deployment": name, "ns": ns, "replicas": replicas, "closed_fault_ids": closed}


def terminate_pods(
    deployment: str,
    ns: str = "default",
    label_selector: str | None = None,
    qty: int = 1,
    rand: bool = True,
    grace_period_seconds: int = -1,
    ready_timeout_seconds: int = 300,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Delete `qty` pods of a deployment (chosen at random). Undo: await_deployment_ready.

    Pods are selected by `label_selector`, or by the deployment's own matchLabels. A negative
    grace period keeps each pod's default. The undo waits up to `ready_timeout_seconds`.
    """
    target = f"kubernetes/{ns}/deployment/{deployment}"
    selector = label_selector or _selector_of(_read_deployment(deployment, ns, secrets))
    undo = ledger.Undo(
        _MODULE,
        "await_deployment_ready",
        {"name": deployment, "ns": ns, "timeout_seconds": ready_timeout_seconds},
    )
    fault_id = _record(configuration, "kubernetes.terminate_pods", target, undo)
    deleted = _chaosk8s_terminate_pods(
        label_selector=selector, qty=qty, rand=rand, grace_period=grace_period_seconds, ns=ns, secrets=secrets
    )
    gone = [pod for pod in deleted if _pod_is_going(pod, ns, secrets)]
    is_proven = bool(deleted) and len(gone) == len(deleted)
    evidence = f"deleted {deleted or 'no pod'} matching {selector!r}; gone or terminating: {gone}"
    return _effect(configuration, fault_id, [(is_proven, evidence)], {"deleted_pods": deleted, "ns": ns})


def await_deployment_ready(
    name: str,
    ns: str = "default",
    timeout_seconds: float = 300,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Wait until every wanted replica of a deployment is ready; raises ActivityFailed on timeout."""
    started = time.monotonic()
    while True:
        deployment = _read_deployment(name, ns, secrets)
        wanted = deployment.spec.replicas or 0
        ready = (deployment.status.ready_replicas if deployment.status else None) or 0
        waited_seconds = time.monotonic() - started
        if ready >= wanted:
            break
        if waited_seconds >= timeout_seconds:
            raise ActivityFailed(
                f"deployment {ns}/{name}: {ready}/{wanted} replicas ready after {waited_seconds:.0f}s"
            )
        time.sleep(_POLL_INTERVAL_SECONDS)
    closed = _close(configuration, ("kubernetes.terminate_pods",), f"kubernetes/{ns}/deployment/{name}")
    return {
        "deployment": name,
        "ns": ns,
        "ready_replicas": ready,
        "replicas": wanted,
        "waited_seconds": waited_seconds,
        "closed_fault_ids": closed,
    }


def cordon_node(
    name: str,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Mark a node unschedulable. Undo with uncordon_node."""
    fault_id = _record(
        configuration,
        "kubernetes.cordon_node",
        f"kubernetes/node/{name}",
        ledger.Undo(_MODULE, "uncordon_node", {"name": name}),
    )
    _chaosk8s_cordon(name=name, secrets=secrets)
    is_unschedulable = not node_is_schedulable(name, secrets)
    evidence = f"node {name} spec.unschedulable={is_unschedulable}"
    return _effect(configuration, fault_id, [(is_unschedulable, evidence)], {"node": name})


def drain_node(
    name: str,
    delete_pods_with_local_storage: bool = False,
    timeout_seconds: int = 120,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Cordon a node and evict its pods (DaemonSet and mirror pods stay). Undo with uncordon_node."""
    fault_id = _record(
        configuration,
        "kubernetes.drain_node",
        f"kubernetes/node/{name}",
        ledger.Undo(_MODULE, "uncordon_node", {"name": name}),
    )
    drain_nodes(
        name=name,
        delete_pods_with_local_storage=delete_pods_with_local_storage,
        timeout=timeout_seconds,
        secrets=secrets,
    )
    is_unschedulable = not node_is_schedulable(name, secrets)
    remaining = _evictable_pods_on(name, secrets)
    evidence = f"node {name} spec.unschedulable={is_unschedulable}; evictable pods left: {remaining}"
    return _effect(configuration, fault_id, [(is_unschedulable and not remaining, evidence)], {"node": name})


def uncordon_node(
    name: str,
    configuration: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Make a node schedulable again (undoes cordon_node and drain_node). Safe to call twice."""
    _chaosk8s_uncordon(name=name, secrets=secrets)
    closed = _close(
        configuration, ("kubernetes.cordon_node", "kubernetes.drain_node"), f"kubernetes/node/{name}"
    )
    return {
        "node": name,
        "is_unschedulable": not node_is_schedulable(name, secrets),
        "closed_fault_ids": closed,
    }


# ---------------------------------------------------------------- ledger


def _record(configuration: Mapping[str, Any] | None, action: str, target: str, undo: ledger.Undo) -> str:
    """The open fault of `action` on `target` if any (its undo restores the first state), else a new one."""
    return open_fault(configuration, action, target, undo, reuse_open=True)


def _effect(
    configuration: Mapping[str, Any] | None,
    fault_id: str,
    proofs: list[tuple[bool, str]],
    details: Mapping[str, Any],
) -> dict[str, Any]:
    return record_effect(configuration, fault_id, proofs, **details)


def _close(configuration: Mapping[str, Any] | None, actions: tuple[str, ...], target: str) -> list[str]:
    """Mark every open fault of `actions` on `target` undone; returns their ids."""
    return close_faults(configuration, actions, target)


# ---------------------------------------------------------------- effect probes


def _address(text: str) -> tuple[str, int]:
    host, _, port = str(text).rpartition(":")
    if not host or not port.isdigit():
        raise ActivityFailed(f"probe_addresses: expected host:port, got {text!r}")
    return host.strip("[]"), int(port)


def _connects(address: tuple[str, int]) -> bool:
    """Whether a TCP connection to `address` is accepted within a second."""
    try:
        with socket.create_connection(address, timeout=_CONNECT_TIMEOUT_SECONDS):
            return True
    except OSError:
        return False


def _cut_proofs(before: Mapping[tuple[str, int], bool], timeout_seconds: float) -> list[tuple[bool, str]]:
    """One proof per probe address: it connected before, and stops connecting within `timeout_seconds`."""
    if not before:
        return [(False, "no effect probe (probe_addresses): no connection across the policy was tried")]
    proofs = []
    deadline = time.monotonic() + timeout_seconds
    for (host, port), connected in before.items():
        where = f"{host}:{port}"
        if not connected:
            proofs.append(
                (False, f"{where} refused connections before the policy too: the cut is unobserved")
            )
            continue
        while (still := _connects((host, port))) and time.monotonic() < deadline:
            time.sleep(_EFFECT_POLL_SECONDS)
        proofs.append(
            (
                not still,
                f"{where}: "
                + ("connections still accepted" if still else "connections fail across the policy"),
            )
        )
    return proofs


# ---------------------------------------------------------------- reads


def _partition_policy(
    name: str, pod_labels: Mapping[str, str], peer_labels: Mapping[str, str]
) -> dict[str, Any]:
    """A NetworkPolicy isolating `pod_labels` pods (all pods when empty), from `peer_labels` pods only."""
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": dict(pod_labels)} if pod_labels else {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [],
    }
    if peer_labels:
        # Policies only allow; "everything but the peers" is one peer entry per label, ORed.
        others = [
            {
                "namespaceSelector": {},
                "podSelector": {"matchExpressions": [{"key": key, "operator": "NotIn", "values": [value]}]},
            }
            for key, value in sorted(peer_labels.items())
        ]
        spec["ingress"] = [{"from": others}]
        spec["egress"] = [{"to": others}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "resilience-harness"}},
        "spec": spec,
    }


def _read_deployment(name: str, ns: str, secrets: Mapping[str, Any] | None) -> client.V1Deployment:
    try:
        return client.AppsV1Api(create_k8s_api_client(secrets)).read_namespaced_deployment(name, ns)
    except ApiException as exc:
        raise ActivityFailed(f"reading deployment {ns}/{name} failed: {_reason(exc)}") from exc


def _selector_of(deployment: client.V1Deployment) -> str:
    labels = deployment.spec.selector.match_labels or {}
    if not labels:
        raise ActivityFailed(
            f"deployment {deployment.metadata.name} selects pods by expressions only: pass label_selector"
        )
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _running_pods(selector: str, ns: str, secrets: Mapping[str, Any] | None) -> list[str]:
    """Names of the pods matching `selector` that are neither terminating nor finished."""
    pods = client.CoreV1Api(create_k8s_api_client(secrets)).list_namespaced_pod(ns, label_selector=selector)
    return sorted(
        pod.metadata.name
        for pod in pods.items
        if pod.metadata.deletion_timestamp is None
        and not (pod.status is not None and pod.status.phase in ("Succeeded", "Failed"))
    )


def _pod_is_going(name: str, ns: str, secrets: Mapping[str, Any] | None) -> bool:
    """True when the pod is gone or has a deletion timestamp."""
    try:
        pod = client.CoreV1Api(create_k8s_api_client(secrets)).read_namespaced_pod(name, ns)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return pod.metadata.deletion_timestamp is not None


def _evictable_pods_on(node: str, secrets: Mapping[str, Any] | None) -> list[str]:
    """Pods still on `node` that a drain would evict (not DaemonSet-owned, not mirror pods, not finished)."""
    pods = client.CoreV1Api(create_k8s_api_client(secrets)).list_pod_for_all_namespaces(
        field_selector=f"spec.nodeName={node}"
    )
    left = []
    for pod in pods.items:
        owners = pod.metadata.owner_references or []
        is_daemon = any(o.kind == "DaemonSet" for o in owners)
        is_mirror = "kubernetes.io/config.mirror" in (pod.metadata.annotations or {})
        is_finished = pod.status is not None and pod.status.phase in ("Succeeded", "Failed")
        if not (is_daemon or is_mirror or is_finished):
            left.append(f"{pod.metadata.namespace}/{pod.metadata.name}")
    return left


def _reason(exc: ApiException) -> str:
    return f"HTTP {exc.status} {exc.reason}"
