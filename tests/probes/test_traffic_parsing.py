"""The traffic probe's readers, without a balancer: HAProxy's counters per client region, the
watcher's events from successive `show servers state` answers, and bad configuration."""

from __future__ import annotations

import threading
import time

import pytest

from harness.errors import ConfigError
from harness.probes import traffic

TRAFFIC = {
    "url": "http://127.0.0.1:1",
    "client_regions": ["us-east-1", "eu-west-1"],
    "backends": {
        "us-east-1": {"backend": "client-us-east-1", "server": "us-east-1",
                      "in_backends": ["client-us-east-1", "client-eu-west-1"]},
        "eu-west-1": {"backend": "client-eu-west-1", "server": "eu-west-1",
                      "in_backends": ["client-eu-west-1"]},
    },
}  # fmt: skip
METRICS = """\
# TYPE haproxy_frontend_http_requests_total counter
haproxy_frontend_http_requests_total{proxy="global"} 120
haproxy_frontend_http_requests_total{proxy="metrics"} 55
haproxy_frontend_http_responses_total{proxy="global",code="5xx"} 7
haproxy_frontend_http_responses_total{proxy="global",code="2xx"} 113
haproxy_backend_http_requests_total{proxy="client-us-east-1"} 70
haproxy_backend_http_requests_total{proxy="client-eu-west-1"} 50
haproxy_backend_http_responses_total{proxy="client-us-east-1",code="5xx"} 7
haproxy_backend_http_responses_total{proxy="client-us-east-1",code="2xx"} 63
haproxy_backend_http_responses_total{proxy="other",code="5xx"} 99
"""
HEADER = (
    "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
    "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state\n"
)


def _state(op: int, admin: int, weight: int, result: int, health: int) -> str:
    return (
        HEADER
        + f"4 client-us-east-1 1 us-east-1 127.0.0.1 {op} {admin} {weight} 100 0 15 {result} {health} 6\n"
    )


def test_counts_per_client_region_backend_and_the_frontend_total() -> None:
    backends = traffic._client_backends(TRAFFIC)
    assert backends == {"client-us-east-1": "us-east-1", "client-eu-west-1": "eu-west-1"}
    counts = traffic.parse_counts(METRICS, backends)
    assert counts[(traffic.METRIC_REQUESTS, "us-east-1")] == 70
    assert counts[(traffic.METRIC_ERRORS, "us-east-1")] == 7
    assert counts[(traffic.METRIC_ERRORS, "eu-west-1")] == 0  # no 5xx series yet: 0, not missing
    assert counts[(traffic.METRIC_REQUESTS, "*")] == 120  # the metrics frontend is not traffic
    assert ("traffic_metrics.errors", "other") not in counts


def test_the_watcher_turns_state_changes_into_polled_events() -> None:
    watcher = traffic._Watcher(TRAFFIC, 0.05, threading.Event(), time.monotonic() + 1)
    answers = [
        _state(2, 0, 100, 3, 4),  # up, healthy: the baseline
        _state(2, 0, 100, 2, 3),  # a check failed, still up
        _state(0, 0, 100, 2, 0),  # marked down
        _state(2, 0, 100, 3, 2),  # up again
        _state(2, 8, 100, 3, 4),  # drained
        _state(2, 0, 100, 3, 4),  # ready
    ]
    from harness.sandbox import haproxy_admin

    for at, text in enumerate(answers):
        watcher._compare(float(at), haproxy_admin.parse_servers_state(text), traffic._health_bits(text))
    kinds = [(e["at_monotonic"], e["kind"]) for e in watcher.events]
    assert kinds == [
        (1.0, "traffic.check_failed"),
        (2.0, "traffic.server_down"),
        (3.0, "traffic.server_up"),
        (4.0, "traffic.drain"),
        (5.0, "traffic.ready"),
    ]
    detail = watcher.events[0]["detail"]
    assert detail["region"] == "us-east-1" and detail["polled"] and detail["poll_interval_seconds"] == 0.05


@pytest.mark.parametrize(
    ("configuration", "field"),
    [
        ({}, "traffic.url"),
        ({"traffic": {"url": "ftp://x", "client_regions": ["a"]}}, "traffic.url"),
        ({"traffic": {"url": "http://127.0.0.1:1", "client_regions": []}}, "traffic.client_regions"),
    ],
)
def test_bad_configuration_names_the_field(configuration: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        traffic.traffic_canary(1.0, configuration=configuration)


def test_bad_arguments_are_refused_before_anything_starts() -> None:
    configuration = {"traffic": TRAFFIC}
    for arguments in (
        {"duration_seconds": 0},
        {"duration_seconds": 1, "rate_hz": 5},
        {"duration_seconds": 1, "rate_hz": 60},
    ):
        with pytest.raises(ConfigError):
            traffic.traffic_canary(configuration=configuration, **arguments)
    with pytest.raises(ConfigError, match="state"):
        traffic.wait_for_balancer("us-east-1", "sideways", configuration=configuration)
