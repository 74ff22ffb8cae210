"""Promotion evidence from exact sources: the etcd leader-key watch behind Patroni, Sentinel's
+switch-master; the REST poller is the inexact fallback and says so."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.sandbox.components import port_accepts
from harness.sandbox.ports import free_ports
from harness.watchers import PatroniWatcher, SentinelWatcher, leader_key
from tests.sandbox.helpers import eventually

KEY = "/service/harness/leader"


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[str]:
    """A single etcd member on 127.0.0.1 free ports; yields its client URL."""
    if shutil.which("etcd") is None:
        pytest.skip("etcd not installed")
    port, peer = free_ports(2)
    client, peer_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer}"
    process = subprocess.Popen(
        ["etcd", "--name", "t", "--data-dir", str(tmp_path / "etcd"), "--listen-client-urls", client,
         "--advertise-client-urls", client, "--listen-peer-urls", peer_url,
         "--initial-advertise-peer-urls", peer_url, "--initial-cluster", f"t={peer_url}",
         "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        eventually(lambda: port_accepts(port), 15)
        eventually(lambda: _call(client, "/v3/kv/range", {"key": _b64("x")}) is not None, 15)
        yield client
    finally:
        process.terminate()
        process.wait(10)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _call(url: str, path: str, body: dict) -> dict | None:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


def _put(url: str, value: str, lease: str | None = None) -> None:
    body = {"key": _b64(KEY), "value": _b64(value), **({"lease": lease} if lease else {})}
    assert _call(url, "/v3/kv/put", body) is not None


def test_leader_key_path() -> None:
    assert leader_key("service", "harness") == KEY
    assert leader_key("/service/", "harness") == KEY


def test_etcd_watch_times_leader_loss_and_promotion_exactly(etcd: str) -> None:
    grant = _call(etcd, "/v3/lease/grant", {"TTL": 60})
    assert grant is not None
    _put(etcd, "us-east-1", lease=grant["ID"])
    watcher = PatroniWatcher([], etcd_urls=[etcd]).start()
    try:
        assert watcher.is_exact
        _put(etcd, "us-east-1", lease=grant["ID"])  # the leader refreshing its key is no event
        revoked_at = time.monotonic()
        assert _call(etcd, "/v3/lease/revoke", {"ID": grant["ID"]}) is not None  # the key expires
        eventually(lambda: len(watcher.events()) >= 1, 5)
        promoted_at = time.monotonic()
        _put(etcd, "eu-west-1")
        eventually(lambda: len(watcher.events()) >= 2, 5)
    finally:
        events = watcher.stop()
    lost, promoted = events
    assert lost["kind"] == "patroni.leader-lost"
    assert lost["detail"] == {"old_primary": "us-east-1", "exact": True}
    assert promoted["kind"] == "patroni.promoted"
    assert promoted["detail"] == {"old_primary": "us-east-1", "new_primary": "eu-west-1", "exact": True}
    # Pushed, not polled: each seen within a fraction of a second of the change.
    assert revoked_at <= lost["at_monotonic"] < revoked_at + 1.0
    assert promoted_at <= promoted["at_monotonic"] < promoted_at + 1.0


def test_without_etcd_the_rest_poller_is_marked_inexact(etcd: str) -> None:
    dead = "http://127.0.0.1:1"
    watcher = PatroniWatcher(["http://127.0.0.1:1"], poll_seconds=0.1, etcd_urls=[dead]).start()
    assert not watcher.is_exact
    watcher.stop()


def test_sentinel_switch_master_names_old_and_new_primary() -> None:
    watcher = SentinelWatcher([])
    watcher._record("127.0.0.1:26379", "+switch-master", "harness 127.0.0.1 6379 127.0.0.1 6380")
    (event,) = watcher.events()
    assert event["kind"] == "sentinel.+switch-master"
    assert event["detail"]["old_primary"] == "127.0.0.1:6379"
    assert event["detail"]["new_primary"] == "127.0.0.1:6380"
    assert event["detail"]["exact"] is True
