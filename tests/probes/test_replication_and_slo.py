"""The replication and SLO probes against a full sandbox: proxied replication, exporters, Prometheus."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.actions.network import add_latency, heal_regions, partition_regions, remove_latency
from harness.probes import _cancel
from harness.probes.replication import replication_lag, replication_lag_prometheus, replication_lag_seconds
from harness.probes.slo import burn_rates, saturation_ratio, slo_error_ratio, slo_p99_latency_seconds
from harness.sandbox import Sandbox, down, up
from harness.sandbox.examples import example_scenario


@pytest.fixture(scope="module")
def full_estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Every component: Redis, PostgreSQL, APIs, fault proxy, exporters, Prometheus (scraping at 1 s)."""
    directory = tmp_path_factory.mktemp("full-sandbox")
    try:
        yield up(example_scenario(3), directory)
    finally:
        down(directory)


@pytest.fixture
def full(full_estate: Sandbox, tmp_path: Path) -> dict[str, Any]:
    return {**full_estate.endpoints, "harness_state_dir": str(tmp_path / "state"), "run_id": tmp_path.name}


def _eventually(check: Callable[[], bool], timeout_seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return False


def test_redis_marker_lag_follows_the_link_latency(full: dict[str, Any]) -> None:
    baseline = replication_lag_seconds("redis", configuration=full)
    by_region = {s["region"]: s["value"] for s in baseline["samples"]}
    assert set(by_region) == {"eu-west-1", "ap-southeast-1"}
    assert by_region["ap-southeast-1"] >= 0.045  # the sandbox's 50 ms link
    assert by_region["eu-west-1"] < by_region["ap-southeast-1"]  # its 5 ms link

    add_latency("us-east-1", "eu-west-1", latency_ms=200, configuration=full)
    try:
        delayed = replication_lag_seconds("redis", configuration=full)
    finally:
        remove_latency("us-east-1", "eu-west-1", configuration=full)
    eu_lag = next(s["value"] for s in delayed["samples"] if s["region"] == "eu-west-1")
    assert 0.19 <= eu_lag <= 0.6


def test_postgres_marker_lag_is_measured(full: dict[str, Any]) -> None:
    output = replication_lag_seconds("postgres", timeout_seconds=10, configuration=full)
    lag = output["replication_lag_seconds"]
    assert lag is not None and 0 < lag < 5, output["evidence"]
    assert {s["region"] for s in output["samples"]} == {"eu-west-1", "ap-southeast-1"}


def test_lag_under_partition_is_a_failed_reading_then_recovers(full: dict[str, Any]) -> None:
    partition_regions("us-east-1", "ap-southeast-1", configuration=full)
    try:
        cut = replication_lag_seconds("redis", timeout_seconds=0.5, configuration=full)
    finally:
        heal_regions("us-east-1", "ap-southeast-1", configuration=full)
    assert cut["replication_lag_seconds"] is None
    assert cut["replicas"] and None in cut["replicas"].values()
    late = next(s for s in cut["samples"] if s["region"] == "ap-southeast-1")
    assert not late["ok"] and late["value"] >= 0.5 and late["error"].startswith("not seen within")
    assert _eventually(
        lambda: replication_lag_seconds("redis", configuration=full)["replication_lag_seconds"]
    )


def test_background_lag_gives_p99_and_max(full: dict[str, Any]) -> None:
    output = replication_lag(2.0, 0.25, "redis", configuration=full)
    markers = [s for s in output["samples"] if s["probe"] == "replication_lag"]
    assert 12 <= len(markers) <= 18  # 8 markers, 2 replicas each
    measures = {m["name"]: m["value"] for m in output["measurements"]}
    assert 0 < measures["replication_lag_p99_seconds"] <= measures["replication_lag_max_seconds"] < 1


@pytest.mark.parametrize("service", ["redis", "postgres"])
def test_background_lag_is_sampled_through_a_cut_and_times_the_catch_up(
    full: dict[str, Any], service: str
) -> None:
    """Markers written while a replica is cut off are timed when it catches up (a lag of about
    the cut), every marker has a reading for every replica, and the exporter witness is kept."""
    output: dict[str, Any] = {}
    probe = threading.Thread(
        target=lambda: output.update(replication_lag(7.0, 0.25, service, 20.0, configuration=full))
    )
    probe.start()
    try:
        time.sleep(1.0)
        partition_regions("us-east-1", "ap-southeast-1", configuration=full)
        time.sleep(3.0)
    finally:
        heal_regions("us-east-1", "ap-southeast-1", configuration=full)
        probe.join(timeout=60)
    assert not probe.is_alive()
    lag = [s for s in output["samples"] if s["probe"] == "replication_lag"]
    by_replica = {r: [s for s in lag if s["region"] == r] for r in ("eu-west-1", "ap-southeast-1")}
    assert {s["region"] for s in lag} == set(by_replica)
    assert len(by_replica["eu-west-1"]) == len(by_replica["ap-southeast-1"]) >= 20  # one per marker each
    assert all(s["ok"] for s in lag), [s for s in lag if not s["ok"]][:2]
    assert max(s["value"] for s in by_replica["ap-southeast-1"]) >= 2.5  # written early in the 3 s cut
    assert max(s["value"] for s in by_replica["eu-west-1"]) < 1.0
    (replicas,) = [e for e in output["events"] if e["kind"] == "replication.replicas"]
    assert replicas["detail"] == {"service": service, "replicas": ["eu-west-1", "ap-southeast-1"]}
    witness = [s for s in output["samples"] if s["probe"] == "replication_lag_exporter"]
    assert {s["region"] for s in witness if s["ok"]} == {"eu-west-1", "ap-southeast-1"}
    assert max(s["value"] for s in witness if s["region"] == "ap-southeast-1") >= 1.0  # link down ≥ a scrape
    worst = {m["name"]: m for m in output["measurements"]}["replication_lag_max_seconds"]
    assert worst["value"] >= 2.5 and not worst["lower_bound"]


@pytest.mark.parametrize(("service", "key", "url"), [
    ("redis", "redis_url", "redis://127.0.0.1:9/0"),
    ("postgres", "postgres_dsn", "postgresql://harness@127.0.0.1:9/harness"),
])  # fmt: skip
def test_an_unreachable_replica_is_recorded_never_left_out(
    full: dict[str, Any], service: str, key: str, url: str
) -> None:
    configuration = {**full, "regions": {**full["regions"], "sa-east-1": {key: url, "primary": False}}}
    single = replication_lag_seconds(service, timeout_seconds=1.0, configuration=configuration)
    assert single["replication_lag_seconds"] is None  # one replica unread: no figure
    assert single["replicas"]["sa-east-1"] is None and single["replicas"]["eu-west-1"] is not None
    output = replication_lag(1.0, 0.5, service, 1.0, configuration=configuration)
    unreachable = [
        s for s in output["samples"] if s["probe"] == "replication_lag" and s["region"] == "sa-east-1"
    ]
    assert len(unreachable) == 2
    assert all(
        s["value"] is None and not s["ok"] and s["error"].startswith("unreachable: ") for s in unreachable
    )
    (replicas,) = [e for e in output["events"] if e["kind"] == "replication.replicas"]
    assert "sa-east-1" in replicas["detail"]["replicas"]
    worst = {m["name"]: m for m in output["measurements"]}["replication_lag_max_seconds"]
    assert worst["value"] is None and "sa-east-1" in worst["evidence"]


def test_a_background_lag_probe_stops_within_two_seconds_when_asked(
    full: dict[str, Any], tmp_path: Path
) -> None:
    configuration = {**full, "run_dir": str(tmp_path)}
    output: dict[str, Any] = {}
    probe = threading.Thread(
        target=lambda: output.update(replication_lag(60.0, 0.25, "redis", 30.0, configuration=configuration))
    )
    probe.start()
    time.sleep(1.0)
    partition_regions("us-east-1", "ap-southeast-1", configuration=full)  # markers outstanding
    try:
        time.sleep(0.5)
        asked = time.monotonic()
        (tmp_path / _cancel.STOP_FILE).touch()
        probe.join(timeout=10)
        stopped_after = time.monotonic() - asked
    finally:
        heal_regions("us-east-1", "ap-southeast-1", configuration=full)
    assert not probe.is_alive() and stopped_after < 2.0
    cut = [s for s in output["samples"] if s["region"] == "ap-southeast-1" and not s["ok"]]
    assert cut and all(s["value"] is not None and s["error"].startswith("not seen within") for s in cut)


def test_prometheus_lag_series_cross_check(full: dict[str, Any]) -> None:
    def value(service: str) -> float | None:
        return replication_lag_prometheus(60, service, configuration=full)["measurements"][0]["value"]

    assert _eventually(lambda: value("redis") is not None)
    assert 0 <= value("redis") <= 10  # seconds since the last ack (1 s resolution), or since a link went down
    assert _eventually(lambda: value("postgres") is not None)
    unreachable = {**full, "prometheus_url": "http://127.0.0.1:9"}
    (missing,) = replication_lag_prometheus(60, "redis", configuration=unreachable)["measurements"]
    assert missing["value"] is None and "prometheus at http://127.0.0.1:9" in missing["evidence"]


def _write(api_url: str, key: str) -> int:
    """POST an item through a region's API: the write goes to the primary, through the fault proxy."""
    request = urllib.request.Request(f"{api_url}/api/v1/items/{key}", data=b'{"value": "x"}', method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_slo_error_ratio_over_the_fault_window(full: dict[str, Any]) -> None:
    api = full["regions"]["eu-west-1"]["api_url"]
    for index in range(10):
        assert _write(api, f"slo-{index}") == 201
    partition_regions("eu-west-1", "us-east-1", configuration=full)
    try:
        codes = []
        for index in range(3):  # over several scrapes
            time.sleep(1.0)
            codes.append(_write(api, f"slo-cut-{index}"))
        time.sleep(1.5)
    finally:
        heal_regions("eu-west-1", "us-east-1", configuration=full)
    assert codes == [503, 503, 503]
    output = slo_error_ratio(configuration=full)
    assert output["value"] == 1.0, output["measurements"][0]["evidence"]  # eu-west-1, the worst region
    assert "fault window of run" in output["measurements"][0]["evidence"]
    assert _eventually(lambda: slo_p99_latency_seconds(configuration=full)["value"] is not None)


def test_saturation_and_burn_rates(full: dict[str, Any]) -> None:
    cpu = "max(rate(process_cpu_seconds_total[{window}]))"
    assert _eventually(lambda: saturation_ratio(cpu, 0.85, 60, configuration=full)["value"] is not None)
    output = saturation_ratio(cpu, 0.85, 60, configuration=full)
    assert 0 <= output["value"] < 2 and output["within_limit"] in (True, False)
    rates = burn_rates(0.999, ["1m", "5m"], configuration=full)
    assert [m["name"] for m in rates["measurements"]] == ["burn_rate_60s_ratio", "burn_rate_300s_ratio"]


def test_prometheus_down_is_unknown_never_pass(full: dict[str, Any]) -> None:
    unreachable = {**full, "prometheus_url": "http://127.0.0.1:9"}
    for output in (
        slo_error_ratio(configuration=unreachable),
        slo_p99_latency_seconds(configuration=unreachable),
        saturation_ratio(limit_ratio=0.85, configuration=unreachable),
    ):
        assert output["value"] is None
        assert output["measurements"][0]["value"] is None
    assert saturation_ratio(limit_ratio=0.85, configuration=unreachable)["within_limit"] is None
    assert burn_rates(configuration=unreachable)["burning"] is None


def test_cpu_saturation_is_the_system_under_tests(full: dict[str, Any]) -> None:
    """Host CPU from node_exporter and each server process group from process-exporter; never
    Prometheus's or an exporter's own CPU."""

    def measured() -> dict[str, Any]:
        return saturation_ratio(limit_ratio=0.99, window_seconds=20, configuration=full)

    assert _eventually(lambda: measured()["value"] is not None and len(measured()["process_groups"]) >= 10)
    output = measured()
    assert 0 < output["value"] <= 1 and output["within_limit"] in (True, False)
    (measurement,) = output["measurements"]
    assert "system under test" in measurement["source"] and "system under test" in measurement["evidence"]
    groups = output["process_groups"]
    expected = {f"{kind}-{r}" for kind in ("redis", "postgres", "api") for r in full["regions"]}
    assert expected | {"sentinel-1", "sentinel-2", "sentinel-3"} <= set(groups)
    assert not any("prometheus" in g or "exporter" in g or "faultproxy" in g for g in groups)
    assert all(0 <= share <= 1 for share in groups.values())
    assert {s["region"] for s in output["samples"]} == set(groups) | set(output["hosts"])
    # The graded figure is the system under test's processes alone, not the whole machine's.
    ((host, share),) = output["hosts"].items()
    assert share == pytest.approx(sum(groups.values()), rel=0.01)
    assert output["hosts_busy"][host] >= share


def test_a_fault_shorter_than_two_scrapes_is_unknown(full: dict[str, Any]) -> None:
    api = full["regions"]["eu-west-1"]["api_url"]
    partition_regions("eu-west-1", "us-east-1", configuration=full)
    try:
        code = _write(api, "slo-blink")
    finally:
        heal_regions("eu-west-1", "us-east-1", configuration=full)
    assert code == 503
    (measurement,) = slo_error_ratio(configuration=full)["measurements"]
    assert measurement["value"] is None and "fewer than two scrapes" in measurement["evidence"]
