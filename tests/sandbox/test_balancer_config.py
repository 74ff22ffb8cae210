"""The scenario's `traffic:` section: bad input is named (file, field, exit 2), and every profile's
generated HAProxy configuration passes `haproxy -c` (no balancer is started here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.errors import ConfigError
from harness.loading import load_scenario, parse_scenario
from harness.model import TrafficSettings
from harness.sandbox import balancer, monitoring
from harness.sandbox.topology import plan

REPO = Path(__file__).resolve().parents[2]
PROFILES = sorted(p.stem for p in (REPO / "scenarios").glob("*.yaml"))
BASE = {
    "name": "traffic-test",
    "regions": [{"name": "us-east-1", "primary": True}, {"name": "eu-west-1"}, {"name": "ap-southeast-1"}],
    "targets": {"failover": {"measure": "failover_seconds", "at_most": "60s"}},
}


def _scenario(traffic: dict[str, Any]) -> Any:
    return parse_scenario(Path("traffic.yaml"), {**BASE, "traffic": traffic})


def _problem(traffic: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        _scenario(traffic)
    return str(caught.value)


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_generates_a_configuration_haproxy_accepts(name: str, tmp_path: Path) -> None:
    scenario = load_scenario(REPO / "scenarios" / f"{name}.yaml")
    assert scenario.traffic is not None, f"{name} has no traffic: section"
    wanted = plan(scenario)
    assert wanted.has("balancer")
    config = tmp_path / "haproxy.cfg"
    config.write_text(balancer.render(scenario.traffic, wanted, tmp_path / "haproxy.sock"))
    balancer.check_config(config)  # raises naming HAProxy's complaint
    text = config.read_text()
    health = scenario.traffic.health
    assert f"option httpchk GET {health.path}" in text
    assert f"fall {health.fall} rise {health.rise}" in text
    # Residency: a forbidden region is never a server of that client region's backend.
    for client, allowed in scenario.traffic.residency.items():
        section = text.split(f"backend client-{client}\n", 1)[1].split("\nbackend ", 1)[0]
        servers = [line.split()[1] for line in section.splitlines() if line.strip().startswith("server ")]
        assert servers and set(servers) <= set(allowed), (client, servers, allowed)


def test_email_triage_keeps_eu_clients_in_the_eu() -> None:
    scenario = load_scenario(REPO / "scenarios" / "email-triage.yaml")
    traffic = scenario.traffic
    regions = [r.name for r in scenario.sandbox_regions]
    assert traffic is not None and traffic.health.interval_seconds == 30
    assert traffic.serving_order("eu-west-1", regions) == ("eu-west-1",)
    assert "eu-west-1" not in traffic.serving_order("us-east-1", regions)
    assert traffic.serving_order("us-east-1", regions) == ("us-east-1", "ap-southeast-1")


def test_defaults_route_each_region_home_then_the_others_in_order() -> None:
    scenario = _scenario({})
    traffic = scenario.traffic
    assert traffic is not None and traffic.health.fall == 3 and traffic.health.interval_seconds == 30
    regions = ["us-east-1", "eu-west-1", "ap-southeast-1"]
    assert traffic.clients(regions) == tuple(regions)
    assert traffic.serving_order("eu-west-1", regions) == ("eu-west-1", "us-east-1", "ap-southeast-1")
    assert TrafficSettings().serving_order("x", regions) == ("us-east-1", "eu-west-1", "ap-southeast-1")


@pytest.mark.parametrize(
    ("traffic", "field", "expected"),
    [
        (
            {"routing": {"failover": {"us-east-1": ["mars-1"]}}},
            "traffic.routing.failover.us-east-1.0",
            "unknown region",
        ),
        ({"residency": {"eu-west-1": ["moon-1"]}}, "traffic.residency.eu-west-1.0", "unknown region"),
        ({"routing": {"home": {"eu-west-1": "nowhere"}}}, "traffic.routing.home.eu-west-1", "unknown region"),
        ({"routing": {"weights": {"pluto": 5}}}, "traffic.routing.weights.pluto", "unknown region"),
        ({"residency": {"zz-1": ["us-east-1"]}}, "traffic.residency.zz-1", "unknown client region"),
        ({"health_check": {"interval": "-5s"}}, "traffic.health_check.interval", "positive duration"),
        ({"health_check": {"interval": "0s"}}, "traffic.health_check.interval", "positive duration"),
        ({"health_check": {"timeout": "0ms"}}, "traffic.health_check.timeout", "positive duration"),
        ({"health_check": {"interval": "fast"}}, "traffic.health_check.interval", "duration with a unit"),
        ({"health_check": {"fall": 0}}, "traffic.health_check.fall", "at least 1"),
        ({"health_check": {"rise": -1}}, "traffic.health_check.rise", "at least 1"),
        ({"health_check": {"path": "/health now"}}, "traffic.health_check.path", "URL path"),
        ({"residency": {"eu-west-1": []}}, "traffic.residency.eu-west-1", "no allowed region"),
        (
            {
                "residency": {"eu-west-1": ["eu-west-1"]},
                "routing": {"failover": {"eu-west-1": ["us-east-1"]}},
            },
            "traffic.routing.failover.eu-west-1.0",
            "forbidden by traffic.residency.eu-west-1",
        ),
        (
            {"residency": {"eu-west-1": ["eu-west-1"]}, "routing": {"home": {"eu-west-1": "us-east-1"}}},
            "traffic.routing.home.eu-west-1",
            "forbidden",
        ),
        ({"routing": {"weights": {"us-east-1": 0}}}, "traffic.routing.weights.us-east-1", "1 to 256"),
        ({"client_regions": ["EU West"]}, "traffic.client_regions.0", "lowercase"),
        ({"routing": {"policy": "random"}}, "traffic.routing.policy", "expected one of failover, weighted"),
        ({"unknown": 1}, "traffic.unknown", "unknown field"),
    ],
)
def test_bad_traffic_input_names_file_and_field(traffic: dict[str, Any], field: str, expected: str) -> None:
    problem = _problem(traffic)
    assert problem.startswith(f"traffic.yaml:{field}: "), problem
    assert expected in problem, problem


def test_residency_on_regions_outside_the_sandbox_leaves_no_region(tmp_path: Path) -> None:
    data = {**BASE, "regions": [*BASE["regions"], {"name": "sa-east-1", "sandbox": False}]}
    data["traffic"] = {"residency": {"eu-west-1": ["sa-east-1"]}}
    with pytest.raises(ConfigError, match=r"traffic.residency.eu-west-1: leaves client region 'eu-west-1'"):
        parse_scenario(Path("traffic.yaml"), data)


def test_cli_refuses_a_bad_traffic_section_with_exit_2(tmp_path: Path, run_cli: Any) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**BASE, "traffic": {"health_check": {"interval": "-30s"}}}))
    done = run_cli("validate", str(path))
    assert done.exit_code == 2, done.stderr
    assert f"{path}:traffic.health_check.interval: expected a positive duration" in done.stderr
    assert "Traceback" not in done.stderr


def test_prometheus_scrapes_the_balancer_s_exporter() -> None:
    scenario = load_scenario(REPO / "scenarios" / "email-triage.yaml")
    wanted = plan(scenario)
    jobs = {
        job["job_name"]: job for job in json.loads(monitoring.prometheus_config(wanted))["scrape_configs"]
    }
    assert jobs["balancer"]["static_configs"][0]["targets"] == [
        f"127.0.0.1:{wanted.ports['balancer-metrics']}"
    ]
