"""Kubernetes actions against a fake API server: the exact calls, the ledger, and the state."""

from __future__ import annotations

from pathlib import Path

import pytest
from chaoslib.exceptions import ActivityFailed

from harness import ledger
from harness.actions import kubernetes as k8s
from harness.probes.kubernetes import deployment_ready_replicas, network_policy_exists, node_is_schedulable

from .conftest import K8S_TOKEN, FakeCluster

DEPLOYMENT = "/apis/apps/v1/namespaces/default/deployments/web"
POLICIES = "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies"


def _config(directory: Path) -> dict:
    return {"harness_state_dir": str(directory)}


def test_scale_down_records_previous_replicas_and_restore_closes_it(fake_k8s: FakeCluster, ledger_dir: Path):
    fake_k8s.add_node("n1")
    fake_k8s.add_deployment("web", replicas=3)

    result = k8s.scale_down_deployment("web", replicas=0, configuration=_config(ledger_dir))

    assert fake_k8s.calls == [
        f"GET {DEPLOYMENT}",
        f"PATCH {DEPLOYMENT}",
        "GET /api/v1/namespaces/default/pods?labelSelector=app=web",  # the pods are gone
    ]
    assert fake_k8s.bodies[1] == {"spec": {"replicas": 0}}
    assert result["effect_proven"] is True, result["evidence"]
    assert "pods running (app=web): none" in result["evidence"]
    assert (result["previous_replicas"], result["replicas"]) == (3, 0)
    [fault] = ledger.open_faults(ledger_dir)
    assert fault.fault_id == result["fault_id"]
    assert fault.target == "kubernetes/default/deployment/web"
    assert fault.undo == ledger.Undo(
        "harness.actions.kubernetes",
        "restore_deployment_scale",
        {"name": "web", "ns": "default", "replicas": 3},
    )
    assert f"Bearer {K8S_TOKEN}" in fake_k8s.auth_headers
    assert K8S_TOKEN not in (ledger_dir / ledger.LEDGER_FILE).read_text()

    fake_k8s.clear_calls()
    restored = k8s.restore_deployment_scale("web", configuration=_config(ledger_dir))

    assert fake_k8s.calls == [f"PATCH {DEPLOYMENT}"]
    assert fake_k8s.bodies == [{"spec": {"replicas": 3}}]
    assert restored["closed_fault_ids"] == [result["fault_id"]]
    assert ledger.open_faults(ledger_dir) == []
    assert fake_k8s.deployments[("default", "web")]["spec"]["replicas"] == 3


def test_scale_down_twice_keeps_the_first_undo(fake_k8s: FakeCluster, ledger_dir: Path):
    fake_k8s.add_node("n1")
    fake_k8s.add_deployment("web", replicas=4)

    first = k8s.scale_down_deployment("web", replicas=2, configuration=_config(ledger_dir))
    second = k8s.scale_down_deployment("web", replicas=0, configuration=_config(ledger_dir))

    assert second["fault_id"] == first["fault_id"]
    [fault] = ledger.open_faults(ledger_dir)
    assert fault.undo.arguments["replicas"] == 4
    k8s.restore_deployment_scale("web", configuration=_config(ledger_dir))
    assert fake_k8s.deployments[("default", "web")]["spec"]["replicas"] == 4


def test_scale_down_of_a_missing_deployment_fails_before_the_ledger(fake_k8s: FakeCluster, ledger_dir: Path):
    with pytest.raises(ActivityFailed, match=r"reading deployment default/nope failed: HTTP 404"):
        k8s.scale_down_deployment("nope", configuration=_config(ledger_dir))
    assert ledger.read_entries(ledger_dir) == []


def test_deny_all_partition_and_heal(fake_k8s: FakeCluster, ledger_dir: Path):
    shop = fake_k8s.serve("shop", {"app": "api"})
    result = k8s.partition_namespace(ns="shop", probe_addresses=[shop], configuration=_config(ledger_dir))

    assert fake_k8s.calls == [f"POST {POLICIES}", f"GET {POLICIES}/harness-partition"]
    assert f"{shop}: connections fail across the policy" in result["evidence"]
    assert fake_k8s.bodies[0]["metadata"]["name"] == "harness-partition"
    assert fake_k8s.bodies[0]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [],
    }
    assert result["effect_proven"] is True
    [fault] = ledger.open_faults(ledger_dir)
    assert fault.undo == ledger.Undo(
        "harness.actions.kubernetes", "heal_namespace", {"ns": "shop", "name": "harness-partition"}
    )

    fake_k8s.clear_calls()
    healed = k8s.heal_namespace(ns="shop", configuration=_config(ledger_dir))
    again = k8s.heal_namespace(ns="shop", configuration=_config(ledger_dir))

    assert fake_k8s.calls == [f"DELETE {POLICIES}/harness-partition"] * 2
    assert (healed["removed"], again["removed"]) == (True, False)
    assert not network_policy_exists("harness-partition", "shop")
    assert ledger.open_faults(ledger_dir) == []


def test_partition_between_labels_allows_everything_but_the_peers(fake_k8s: FakeCluster, ledger_dir: Path):
    api = fake_k8s.serve("shop", {"app": "api"})
    first = k8s.partition_namespace(
        ns="shop",
        pod_labels={"app": "api"},
        peer_labels={"app": "db"},
        name="api-db",
        probe_addresses=[api],
        configuration=_config(ledger_dir),
    )
    again = k8s.partition_namespace(
        ns="shop",
        pod_labels={"app": "api"},
        peer_labels={"app": "db"},
        name="api-db",
        probe_addresses=[api],
        effect_timeout_seconds=1,
        configuration=_config(ledger_dir),
    )

    others = [
        {
            "namespaceSelector": {},
            "podSelector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]},
        }
    ]
    assert fake_k8s.policies[("shop", "api-db")]["spec"] == {
        "podSelector": {"matchLabels": {"app": "api"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": others}],
        "egress": [{"to": others}],
    }
    assert fake_k8s.calls.count(f"POST {POLICIES}") == 1  # the open fault's policy is already there
    assert [e["proven"] for e in ledger.read_entries(ledger_dir) if e["event"] == "effect"] == [True]
    assert first["effect_proven"] is True, first["evidence"]
    # Applied again: the effect the first call observed stands (the probe is cut by this policy).
    assert again["fault_id"] == first["fault_id"] and again["effect_proven"] is True
    assert len(ledger.open_faults(ledger_dir)) == 1


def test_terminate_pods_then_await_ready(fake_k8s: FakeCluster, ledger_dir: Path):
    fake_k8s.add_node("n1")
    fake_k8s.add_deployment("web", replicas=3)
    victim = sorted(name for _, name in fake_k8s.pods)[0]

    result = k8s.terminate_pods("web", rand=False, configuration=_config(ledger_dir))

    assert fake_k8s.calls == [
        f"GET {DEPLOYMENT}",
        "GET /api/v1/namespaces/default/pods?labelSelector=app=web",
        f"DELETE /api/v1/namespaces/default/pods/{victim}",
        f"GET /api/v1/namespaces/default/pods/{victim}",
    ]
    assert result["deleted_pods"] == [victim] and result["effect_proven"] is True
    [fault] = ledger.open_faults(ledger_dir)
    assert fault.undo == ledger.Undo(
        "harness.actions.kubernetes",
        "await_deployment_ready",
        {"name": "web", "ns": "default", "timeout_seconds": 300},
    )

    fake_k8s.clear_calls()
    ready = k8s.await_deployment_ready("web", timeout_seconds=30, configuration=_config(ledger_dir))

    # the replacement pod is unready on the first look and ready on the second
    assert fake_k8s.calls == [f"GET {DEPLOYMENT}", f"GET {DEPLOYMENT}"]
    assert (ready["ready_replicas"], ready["replicas"]) == (3, 3)
    assert ledger.open_faults(ledger_dir) == []


def test_await_ready_times_out_with_a_clear_error(fake_k8s: FakeCluster, ledger_dir: Path):
    fake_k8s.add_node("n1")
    fake_k8s.add_deployment("web", replicas=3)
    fake_k8s.pods_turn_ready = False
    k8s.terminate_pods("web", configuration=_config(ledger_dir))

    with pytest.raises(ActivityFailed, match=r"deployment default/web: 2/3 replicas ready after"):
        k8s.await_deployment_ready("web", timeout_seconds=1, configuration=_config(ledger_dir))
    assert len(ledger.open_faults(ledger_dir)) == 1  # not recovered, so still open


def test_cordon_and_uncordon(fake_k8s: FakeCluster, ledger_dir: Path):
    fake_k8s.add_node("n1")

    result = k8s.cordon_node("n1", configuration=_config(ledger_dir))

    assert fake_k8s.calls == [
        "GET /api/v1/nodes?fieldSelector=metadata.name=n1",
        "PATCH /api/v1/nodes/n1",
        "GET /api/v1/nodes/n1",
    ]
    assert fake_k8s.bodies[1] == {"spec": {"unschedulable": True}}
    assert result["effect_proven"] is True and not node_is_schedulable("n1")
    [fault] = ledger.open_faults(ledger_dir)
    assert fault.undo == ledger.Undo("harness.actions.kubernetes", "uncordon_node", {"name": "n1"})

    fake_k8s.clear_calls()
    k8s.uncordon_node("n1", configuration=_config(ledger_dir))

    assert fake_k8s.calls[:2] == [
        "GET /api/v1/nodes?fieldSelector=metadata.name=n1",
        "PATCH /api/v1/nodes/n1",
    ]
    assert fake_k8s.bodies[1] == {"spec": {"unschedulable": False}}
    assert node_is_schedulable("n1")
    assert ledger.open_faults(ledger_dir) == []


def test_drain_evicts_managed_pods_and_leaves_daemon_pods(fake_k8s: FakeCluster, ledger_dir: Path):
    fake_k8s.add_node("n1")
    fake_k8s.add_node("n2")
    fake_k8s.add_deployment("web", replicas=2)
    fake_k8s.add_daemon_pod("agent-n1", node="n1")
    [on_n1] = [
        p["metadata"]["name"]
        for p in fake_k8s.pods.values()
        if p["spec"]["nodeName"] == "n1" and p["metadata"]["namespace"] == "default"
    ]

    result = k8s.drain_node("n1", timeout_seconds=30, configuration=_config(ledger_dir))

    assert fake_k8s.calls == [
        "GET /api/v1/nodes?fieldSelector=metadata.name=n1",
        "GET /api/v1/nodes?fieldSelector=metadata.name=n1",
        "PATCH /api/v1/nodes/n1",
        "GET /api/v1/pods?fieldSelector=spec.nodeName=n1",
        f"POST /api/v1/namespaces/default/pods/{on_n1}/eviction",
        f"GET /api/v1/namespaces/default/pods/{on_n1}",
        "GET /api/v1/nodes/n1",
        "GET /api/v1/pods?fieldSelector=spec.nodeName=n1",
    ]
    assert result["effect_proven"] is True
    assert ("kube-system", "agent-n1") in fake_k8s.pods
    assert {p["spec"]["nodeName"] for (ns, _), p in fake_k8s.pods.items() if ns == "default"} == {"n2"}
    assert deployment_ready_replicas("web") == 1  # the replacement is not ready yet
    assert k8s.await_deployment_ready("web", timeout_seconds=30)["ready_replicas"] == 2

    k8s.uncordon_node("n1", configuration=_config(ledger_dir))
    assert ledger.open_faults(ledger_dir) == []


# ---------------------------------------------------------------- proof is an effect probe


def test_a_policy_the_network_plugin_ignores_is_not_proven(fake_k8s: FakeCluster, ledger_dir: Path):
    fake_k8s.enforces_policies = False
    shop = fake_k8s.serve("shop", {"app": "api"})

    result = k8s.partition_namespace(
        ns="shop", probe_addresses=[shop], effect_timeout_seconds=0.5, configuration=_config(ledger_dir)
    )

    assert ("shop", "harness-partition") in fake_k8s.policies  # configured...
    assert result["effect_proven"] is False  # ...but a connection across it still works
    assert f"{shop}: connections still accepted" in result["evidence"]
    (effect,) = [e for e in ledger.read_entries(ledger_dir) if e["event"] == "effect"]
    assert effect["proven"] is False
    k8s.heal_namespace(ns="shop", configuration=_config(ledger_dir))


def test_a_policy_without_an_effect_probe_is_not_proven(fake_k8s: FakeCluster, ledger_dir: Path):
    result = k8s.partition_namespace(ns="shop", configuration=_config(ledger_dir))
    assert result["effect_proven"] is False
    assert "no effect probe (probe_addresses)" in result["evidence"]
    k8s.heal_namespace(ns="shop", configuration=_config(ledger_dir))


def test_heal_restores_the_connection_the_policy_cut(fake_k8s: FakeCluster, ledger_dir: Path):
    import socket

    api = fake_k8s.serve("shop", {"app": "api"})
    other = fake_k8s.serve("shop", {"app": "db"})
    result = k8s.partition_namespace(
        ns="shop", pod_labels={"app": "api"}, probe_addresses=[api], configuration=_config(ledger_dir)
    )
    assert result["effect_proven"] is True, result["evidence"]
    host, port = other.rsplit(":", 1)
    socket.create_connection((host, int(port)), timeout=1).close()  # pods the policy does not select
    k8s.heal_namespace(ns="shop", configuration=_config(ledger_dir))
    host, port = api.rsplit(":", 1)
    socket.create_connection((host, int(port)), timeout=1).close()


def test_scale_down_is_proven_only_when_the_pods_are_gone(fake_k8s: FakeCluster, ledger_dir: Path):
    fake_k8s.add_node("n1")
    fake_k8s.add_deployment("web", replicas=3)
    fake_k8s.pods_linger = True  # spec.replicas changes, the pods keep running

    result = k8s.scale_down_deployment(
        "web", replicas=1, effect_timeout_seconds=0.5, configuration=_config(ledger_dir)
    )

    assert fake_k8s.deployments[("default", "web")]["spec"]["replicas"] == 1
    assert result["effect_proven"] is False
    assert "pods running (app=web): web-1, web-2, web-3 after 0.5 s" in result["evidence"]
    fake_k8s.pods_linger = False
    k8s.restore_deployment_scale("web", configuration=_config(ledger_dir))
    assert ledger.open_faults(ledger_dir) == []
