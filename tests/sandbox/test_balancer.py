"""The global load balancer in a real sandbox: HAProxy in front of three regional APIs, each reached
through the fault proxy, with 0.2 s health checks. One sandbox for the module; the tests that
kill a region run last and bring it back."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness import ledger
from harness.actions import network, traffic
from harness.errors import ConfigError
from harness.model import HealthCheck, TrafficSettings
from harness.sandbox import Sandbox, down, haproxy_admin, start_component, stop_component, up
from harness.sandbox.examples import example_scenario

US, EU, AP = "us-east-1", "eu-west-1", "ap-southeast-1"
INTERVAL_SECONDS, FALL = 0.2, 2
SETTINGS = TrafficSettings(
    health=HealthCheck(interval_seconds=INTERVAL_SECONDS, timeout_seconds=0.2, fall=FALL, rise=1),
    residency={EU: (EU,)},  # EU clients never leave the EU; no other rule
)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    scenario = dataclasses.replace(example_scenario(3), traffic=SETTINGS)
    directory = tmp_path_factory.mktemp("balancer")
    try:
        yield up(scenario, directory, components={"redis", "proxy", "api", "balancer"})
    finally:
        down(directory)


@pytest.fixture
def configuration(sandbox: Sandbox, tmp_path: Path) -> dict[str, Any]:
    return {**sandbox.endpoints, "harness_state_dir": str(tmp_path / "state")}


def served_by(sandbox: Sandbox, client: str | None) -> tuple[int, str | None]:
    """(status, X-Served-By) of one request through the balancer as a user of `client`."""
    endpoint = sandbox.endpoints["traffic"]
    headers = {endpoint["client_region_header"]: client} if client else {}
    request = urllib.request.Request(endpoint["url"] + "/api/v1/items/probe", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status, response.headers.get(endpoint["served_by_header"])
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get(endpoint["served_by_header"])


def wait_for(check: Callable[[], bool], timeout_seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_each_client_region_is_served_at_home(sandbox: Sandbox) -> None:
    for client in (US, EU, AP):
        assert served_by(sandbox, client) == (404, client)  # the key is absent: the API answered
    assert served_by(sandbox, None)[0] == 421  # no client region: refused, never guessed
    assert served_by(sandbox, "mars-1")[0] == 421


def test_endpoints_name_the_traffic_layer(sandbox: Sandbox) -> None:
    endpoint = sandbox.endpoints["traffic"]
    assert endpoint["client_regions"] == [US, EU, AP]
    assert endpoint["residency"] == {EU: [EU]}
    assert endpoint["health"] == {
        "path": "/health",
        "interval_seconds": INTERVAL_SECONDS,
        "timeout_seconds": 0.2,
        "fall": FALL,
        "rise": 1,
    }
    assert endpoint["backends"][EU]["in_backends"] == [
        "client-us-east-1",
        "client-eu-west-1",
        "client-ap-southeast-1",
    ]
    assert endpoint["backends"][US] == {
        "backend": "client-us-east-1",
        "server": US,
        "in_backends": ["client-us-east-1", "client-ap-southeast-1"],
    }
    assert Path(endpoint["admin_socket"]).exists()
    with urllib.request.urlopen(endpoint["metrics_url"], timeout=5) as response:
        assert b'haproxy_server_status{proxy="client-us-east-1",server="us-east-1"' in response.read()
    for region in (US, EU, AP):  # user traffic crosses the fault proxy: network faults apply to it
        link = sandbox.endpoints["links"][f"clients/api/{region}"]
        assert (link["from"], link["to"], link["service"]) == ("clients", region, "api")
    saved = json.loads((sandbox.directory / "endpoints.json").read_text())
    assert saved["traffic"] == endpoint


def test_drain_moves_a_region_s_clients_and_rollback_restores(
    sandbox: Sandbox, configuration: dict[str, Any]
) -> None:
    result = traffic.drain_region(US, configuration=configuration)
    assert result["effect_proven"], result["evidence"]
    assert sorted(result["servers"]) == ["client-ap-southeast-1/us-east-1", "client-us-east-1/us-east-1"]
    # Drained: new requests of us-east-1 clients go to the first backup, at once.
    assert served_by(sandbox, US) == (404, EU)
    assert [f.target for f in ledger.open_faults(ledger.state_dir(configuration))] == [US]
    restored = traffic.restore_region(US, configuration=configuration)
    assert restored["restored"], restored
    assert served_by(sandbox, US) == (404, US)
    assert ledger.open_faults(ledger.state_dir(configuration)) == []


def test_recover_undoes_a_drain_and_a_weight_without_configuration(
    sandbox: Sandbox, configuration: dict[str, Any]
) -> None:
    admin = sandbox.endpoints["traffic"]["admin_socket"]
    assert traffic.drain_region(AP, configuration=configuration)["effect_proven"]
    weighed = traffic.set_region_weight(US, 0, configuration=configuration)
    assert weighed["effect_proven"], weighed["evidence"]
    assert served_by(sandbox, AP) == (404, EU)  # AP drained, its first backup (US) weighs 0
    assert served_by(sandbox, US) == (404, EU)  # weight 0: no new requests for us-east-1
    results = ledger.recover(ledger.state_dir(configuration))
    assert [r.fault.action.rsplit(".", 1)[1] for r in results] == ["set_region_weight", "drain_region"]
    assert all(r.is_undone for r in results), [r.error for r in results]
    states = {s.name: s for s in haproxy_admin.servers_state(admin)}
    assert states["client-ap-southeast-1/ap-southeast-1"].state == "up"
    assert states["client-us-east-1/us-east-1"].weight == 100
    assert served_by(sandbox, US) == (404, US) and served_by(sandbox, AP) == (404, AP)


def test_actions_name_bad_input(sandbox: Sandbox, configuration: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="no balancer server named 'mars-1'"):
        traffic.drain_region("mars-1", configuration=configuration)
    with pytest.raises(ConfigError, match="weight: expected a whole number from 0 to 256"):
        traffic.set_region_weight(US, 300, configuration=configuration)
    with pytest.raises(ConfigError, match=r"traffic\.admin_socket"):
        traffic.drain_region(US, configuration={})
    assert ledger.open_faults(ledger.state_dir(configuration)) == []


def test_a_dead_region_fails_over_after_its_checks_and_residency_holds(sandbox: Sandbox) -> None:
    stop_component(sandbox.directory, f"api-{US}")
    try:
        # Only after `fall` failed checks does the balancer move us-east-1's clients to eu-west-1.
        assert wait_for(lambda: served_by(sandbox, US) == (404, EU)), served_by(sandbox, US)
        stop_component(sandbox.directory, f"api-{EU}")
        # EU clients may only be served in the EU: errors, never another region, for several checks.
        seen = set()
        deadline = time.monotonic() + 4 * FALL * INTERVAL_SECONDS
        while time.monotonic() < deadline:
            seen.add(served_by(sandbox, EU))
        assert {by for _, by in seen} <= {EU, None}, seen
        assert (503, None) in seen  # the checks marked its only server down
        # us-east-1's clients moved on to the next region of their failover order.
        assert wait_for(lambda: served_by(sandbox, US) == (404, AP)), served_by(sandbox, US)
    finally:
        start_component(sandbox.directory, f"api-{US}")
        start_component(sandbox.directory, f"api-{EU}")
    # Failback: once the checks pass again, each region's clients are served at home.
    assert wait_for(lambda: served_by(sandbox, US) == (404, US), 10), served_by(sandbox, US)
    assert wait_for(lambda: served_by(sandbox, EU) == (404, EU), 10), served_by(sandbox, EU)
    log = Path(sandbox.directory / "logs" / "balancer.log").read_text()
    assert "Server client-us-east-1/us-east-1 is DOWN" in log  # check state changes are logged
    assert "Server client-us-east-1/us-east-1 is UP" in log


def test_a_partition_of_the_clients_link_moves_a_region_s_users(
    sandbox: Sandbox, configuration: dict[str, Any]
) -> None:
    cut = network.partition_regions("clients", AP, configuration=configuration)
    try:
        assert cut["effect_proven"], cut["evidence"]
        # User traffic and health checks cross the same link: the checks fail, users move on.
        assert wait_for(lambda: served_by(sandbox, AP) == (404, US)), served_by(sandbox, AP)
    finally:
        network.heal_regions("clients", AP, configuration=configuration)
    assert wait_for(lambda: served_by(sandbox, AP) == (404, AP)), served_by(sandbox, AP)


def test_down_leaves_no_balancer_behind(sandbox: Sandbox, configuration: dict[str, Any]) -> None:
    admin = Path(sandbox.endpoints["traffic"]["admin_socket"])
    assert traffic.drain_region(EU, configuration=configuration)["effect_proven"]
    pid = next(c.pid for c in sandbox.status() if c.name == "balancer")
    stopped = sandbox.down()
    assert "balancer" in stopped
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not admin.exists()
    assert not (sandbox.directory / "haproxy.cfg").exists()
    assert all("haproxy" not in _command_line(p) for p in psutil.Process(os.getpid()).children(True))
    # The drain went with the balancer: recover finds nothing left to undo and closes the fault.
    results = ledger.recover(ledger.state_dir(configuration))
    assert [r.is_undone for r in results] == [True]
    assert ledger.open_faults(ledger.state_dir(configuration)) == []


def _command_line(process: psutil.Process) -> str:
    """A child's command line; "" for one that is a zombie or gone (nothing is running there)."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""
