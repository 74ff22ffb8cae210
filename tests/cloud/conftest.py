"""Fixtures for the cloud actions: a fake Kubernetes API server and moto's AWS server.

Both listen on 127.0.0.1 on a free port and are always stopped. The fake Kubernetes server
keeps a little state (deployments, pods, nodes, NetworkPolicies), plays the controllers
(replica sets refill, new pods turn ready on the next deployment read) and records every
call, so tests assert the exact API requests made.

What an effect probe can see is whatever the fake says: `serve` opens a loopback listener
standing for pods with some labels, which a NetworkPolicy selecting them closes (when the fake's
network plugin enforces policies) and its deletion reopens; with `pods_linger` a scale-down
leaves its pods running (a stuck kubelet).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

K8S_TOKEN = "fake-k8s-token-never-in-ledger"
AWS_REGION = "us-east-1"
AWS_SECRET = "dummy-aws-secret-never-in-ledger"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _labels_match(labels: dict[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    wanted = dict(part.split("=", 1) for part in selector.split(","))
    return all(labels.get(k) == v for k, v in wanted.items())


def _status(code: int, reason: str) -> Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code}
    return Response(json.dumps(body), status=code, content_type="application/json")


def _json(obj: Any, status: int = 200) -> Response:
    return Response(json.dumps(obj), status=status, content_type="application/json")


class _Endpoint:
    """A loopback listener that accepts (and closes) connections while open; closed, it refuses."""

    def __init__(self, ns: str, labels: dict[str, str]) -> None:
        self.ns, self.labels = ns, dict(labels)
        self.port = _free_port()
        self._server: socket.socket | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_open(self, is_open: bool) -> None:
        if is_open and self._server is None:
            server = socket.socket()
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", self.port))
            server.listen(16)
            self._server = server
            threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        elif not is_open and self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            self._server.close()
            self._server = None

    @staticmethod
    def _accept(server: socket.socket) -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return  # closed
            connection.close()


@dataclass
class FakeCluster:
    """State of the fake API server and the calls it received, as 'METHOD /path?query'."""

    url: str
    deployments: dict[tuple[str, str], dict] = field(default_factory=dict)
    pods: dict[tuple[str, str], dict] = field(default_factory=dict)
    nodes: dict[str, dict] = field(default_factory=dict)
    policies: dict[tuple[str, str], dict] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
    auth_headers: set[str] = field(default_factory=set)
    pods_turn_ready: bool = True  # False: a stuck kubelet, new pods never become ready
    pods_linger: bool = False  # True: pods beyond spec.replicas keep running (nothing deletes them)
    enforces_policies: bool = True  # False: a network plugin that ignores NetworkPolicies
    endpoints: list[_Endpoint] = field(default_factory=list)
    _serial: itertools.count = field(default_factory=lambda: itertools.count(1))

    # ------------------------------------------------------------ setup

    def add_node(self, name: str) -> None:
        self.nodes[name] = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "uid": f"node-{name}"},
            "spec": {},
        }

    def add_deployment(self, name: str, ns: str = "default", replicas: int = 3) -> None:
        labels = {"app": name}
        self.deployments[(ns, name)] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "uid": f"dep-{name}"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": "app:1"}]},
                },
            },
            "status": {},
        }
        self._reconcile(mark_ready=True)

    def add_daemon_pod(self, name: str, node: str, ns: str = "kube-system") -> None:
        self.pods[(ns, name)] = self._pod(name, ns, {"app": "agent"}, node, "DaemonSet", ready=True)

    def serve(self, ns: str, labels: dict[str, str]) -> str:
        """A loopback ``host:port`` standing for pods of `ns` with `labels`, as a probe reaches them."""
        endpoint = _Endpoint(ns, labels)
        self.endpoints.append(endpoint)
        self._apply_policies()
        return endpoint.address

    def _apply_policies(self) -> None:
        for endpoint in self.endpoints:
            isolated = self.enforces_policies and any(
                pns == endpoint.ns
                and (policy["spec"].get("podSelector") or {}).get("matchLabels", {}).items()
                <= endpoint.labels.items()
                for (pns, _), policy in self.policies.items()
            )
            endpoint.set_open(not isolated)

    def close(self) -> None:
        for endpoint in self.endpoints:
            endpoint.set_open(False)

    def clear_calls(self) -> None:
        self.calls.clear()
        self.bodies.clear()

    # ------------------------------------------------------------ controllers

    def _pod(self, name: str, ns: str, labels: dict, node: str | None, owner: str, ready: bool) -> dict:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": ns,
                "uid": f"uid-{name}",
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": owner,
                        "name": f"{name}-owner",
                        "uid": "o",
                        "controller": True,
                    }
                ],
            },
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app:1"}], "volumes": []},
            "status": {"phase": "Running"},
            "_ready": ready,
        }

    def _pods_of(self, ns: str, name: str) -> list[dict]:
        labels = self.deployments[(ns, name)]["spec"]["selector"]["matchLabels"]
        return sorted(
            (
                p
                for (pns, _), p in self.pods.items()
                if pns == ns
                and _labels_match(p["metadata"]["labels"], ",".join(f"{k}={v}" for k, v in labels.items()))
            ),
            key=lambda p: p["metadata"]["name"],
        )

    def _reconcile(self, mark_ready: bool = False) -> None:
        """The replica set controller: as many pods as spec.replicas; new pods start unready."""
        schedulable = [n for n, node in self.nodes.items() if not node["spec"].get("unschedulable")]
        for (ns, name), deployment in self.deployments.items():
            pods = self._pods_of(ns, name)
            wanted = deployment["spec"]["replicas"]
            for pod in [] if self.pods_linger else pods[wanted:]:
                del self.pods[(ns, pod["metadata"]["name"])]
            for _ in range(wanted - len(pods)):
                pod_name = f"{name}-{next(self._serial)}"
                node = schedulable[len(self.pods) % len(schedulable)] if schedulable else None
                labels = deployment["spec"]["selector"]["matchLabels"]
                self.pods[(ns, pod_name)] = self._pod(
                    pod_name, ns, dict(labels), node, "ReplicaSet", mark_ready
                )
            pods = self._pods_of(ns, name)
            ready = sum(1 for p in pods if p["_ready"])
            deployment["status"] = {"replicas": len(pods), "readyReplicas": ready, "availableReplicas": ready}

    @staticmethod
    def _public(obj: dict) -> dict:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    # ------------------------------------------------------------ HTTP

    def handle(self, request: Request) -> Response:
        query = request.query_string.decode()
        self.calls.append(f"{request.method} {request.path}" + (f"?{unquote_plus(query)}" if query else ""))
        self.bodies.append(json.loads(request.data) if request.data else None)
        self.auth_headers.add(request.headers.get("Authorization", ""))
        params = {k: v[0] for k, v in parse_qs(query).items()}
        for pattern, method, route in self._routes():
            if request.method == method and (match := re.fullmatch(pattern, request.path)):
                return route(*match.groups(), body=self.bodies[-1], params=params)
        return _status(404, "NotFound")

    def _routes(self) -> list[tuple[str, str, Any]]:
        deployment = r"/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)"
        pod = r"/api/v1/namespaces/([^/]+)/pods/([^/]+)"
        policy = r"/apis/networking.k8s.io/v1/namespaces/([^/]+)/networkpolicies"
        return [
            (deployment, "GET", self._get_deployment),
            (deployment, "PATCH", self._patch_deployment),
            (r"/api/v1/namespaces/([^/]+)/pods", "GET", self._list_pods),
            (pod, "GET", self._get_pod),
            (pod, "DELETE", self._delete_pod),
            (pod + "/eviction", "POST", self._evict_pod),
            (r"/api/v1/pods", "GET", self._list_all_pods),
            (r"/api/v1/nodes", "GET", self._list_nodes),
            (r"/api/v1/nodes/([^/]+)", "GET", self._get_node),
            (r"/api/v1/nodes/([^/]+)", "PATCH", self._patch_node),
            (policy, "POST", self._create_policy),
            (policy + "/([^/]+)", "GET", self._get_policy),
            (policy + "/([^/]+)", "DELETE", self._delete_policy),
        ]

    def _get_deployment(self, ns: str, name: str, **_: Any) -> Response:
        if (ns, name) not in self.deployments:
            return _status(404, "NotFound")
        response = _json(self.deployments[(ns, name)])
        for pod in self._pods_of(ns, name):  # the kubelet catches up after each look
            pod["_ready"] = pod["_ready"] or self.pods_turn_ready
        self._reconcile()
        return response

    def _patch_deployment(self, ns: str, name: str, body: dict, **_: Any) -> Response:
        if (ns, name) not in self.deployments:
            return _status(404, "NotFound")
        self.deployments[(ns, name)]["spec"]["replicas"] = body["spec"]["replicas"]
        self._reconcile()
        return _json(self.deployments[(ns, name)])

    def _list_pods(self, ns: str, params: dict, **_: Any) -> Response:
        items = [
            self._public(p)
            for (pns, _), p in sorted(self.pods.items())
            if pns == ns and _labels_match(p["metadata"]["labels"], params.get("labelSelector"))
        ]
        return _json({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})

    def _list_all_pods(self, params: dict, **_: Any) -> Response:
        node = params.get("fieldSelector", "").removeprefix("spec.nodeName=")
        items = [self._public(p) for _, p in sorted(self.pods.items()) if p["spec"]["nodeName"] == node]
        return _json({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})

    def _get_pod(self, ns: str, name: str, **_: Any) -> Response:
        if (ns, name) not in self.pods:
            return _status(404, "NotFound")
        return _json(self._public(self.pods[(ns, name)]))

    def _delete_pod(self, ns: str, name: str, **_: Any) -> Response:
        if (ns, name) not in self.pods:
            return _status(404, "NotFound")
        pod = self.pods.pop((ns, name))
        self._reconcile()
        return _json(self._public(pod))

    def _evict_pod(self, ns: str, name: str, body: dict, **_: Any) -> Response:
        if (ns, name) not in self.pods:
            return _status(404, "NotFound")
        del self.pods[(ns, name)]
        self._reconcile()
        return _json(body, status=201)

    def _list_nodes(self, params: dict, **_: Any) -> Response:
        name = params.get("fieldSelector", "").removeprefix("metadata.name=")
        items = [n for n_name, n in sorted(self.nodes.items()) if not name or n_name == name]
        return _json({"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": items})

    def _get_node(self, name: str, **_: Any) -> Response:
        if name not in self.nodes:
            return _status(404, "NotFound")
        return _json(self.nodes[name])

    def _patch_node(self, name: str, body: dict, **_: Any) -> Response:
        if name not in self.nodes:
            return _status(404, "NotFound")
        self.nodes[name]["spec"].update(body["spec"])
        return _json(self.nodes[name])

    def _create_policy(self, ns: str, body: dict, **_: Any) -> Response:
        name = body["metadata"]["name"]
        if (ns, name) in self.policies:
            return _status(409, "AlreadyExists")
        body["metadata"]["namespace"] = ns
        self.policies[(ns, name)] = body
        self._apply_policies()
        return _json(body, status=201)

    def _get_policy(self, ns: str, name: str, **_: Any) -> Response:
        if (ns, name) not in self.policies:
            return _status(404, "NotFound")
        return _json(self.policies[(ns, name)])

    def _delete_policy(self, ns: str, name: str, **_: Any) -> Response:
        if self.policies.pop((ns, name), None) is None:
            return _status(404, "NotFound")
        self._apply_policies()
        return _json({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200})


@pytest.fixture
def fake_k8s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCluster]:
    """A fake Kubernetes API server on 127.0.0.1, reached by chaosk8s through KUBERNETES_HOST."""
    server = HTTPServer(host="127.0.0.1", port=_free_port())
    server.start()
    try:
        cluster = FakeCluster(url=f"http://127.0.0.1:{server.port}")
        server.expect_request(re.compile(".*")).respond_with_handler(cluster.handle)
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
        monkeypatch.delenv("CHAOSTOOLKIT_IN_POD", raising=False)
        monkeypatch.setenv("KUBERNETES_HOST", cluster.url)
        monkeypatch.setenv("KUBERNETES_API_KEY", K8S_TOKEN)
        yield cluster
    finally:
        cluster.close()
        server.clear()
        server.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's AWS server on 127.0.0.1 and a free port, for the whole session; yields its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_aws(moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A reset moto reached through AWS_ENDPOINT_URL with dummy credentials; yields the region."""
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    for key, value in {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": AWS_REGION,
        "AWS_MAX_ATTEMPTS": "2",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(key, raising=False)
    boto3.DEFAULT_SESSION = None  # chaosaws caches one session; bind it to this endpoint
    try:
        yield AWS_REGION
    finally:
        boto3.DEFAULT_SESSION = None


@pytest.fixture
def ledger_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh fault-ledger directory, also the HARNESS_STATE_DIR undos see at recover time."""
    directory = tmp_path / "state"
    monkeypatch.setenv("HARNESS_STATE_DIR", str(directory))
    return directory
