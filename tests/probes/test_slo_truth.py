"""harness.probes.slo against known truth: a real Prometheus scraping real regional API services.

`ok-region`'s API has a Redis, killed inside the window (its first 5xx ever is inside it);
`down-region`'s reaches Redis on a closed port, so it answers only health checks (503), which
are not user requests. Within a fault window journalled in a private ledger, N user requests of
which K answer 5xx must read K/N exactly, whatever the scrapes and health checks.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import ledger
from harness.probes.slo import saturation_ratio, slo_error_ratio
from harness.sandbox.ports import free_ports

SCRAPE_WAIT_SECONDS = 2.5  # a little over two 1 s scrapes


def _wait_http(url: str, timeout_seconds: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout_seconds} s")


def _await_scraped(prometheus_url: str, region: str, requests: int, timeout_seconds: float = 30.0) -> None:
    """Wait until Prometheus holds a scrape of `region`'s API counting `requests` user requests, so
    the window's edges fall between known scrapes whatever the machine's load."""
    query = f'sum(harness_api_requests_total{{region="{region}",route!~"metrics|health"}})'
    url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    deadline = time.monotonic() + timeout_seconds
    seen = None
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=5) as response:
            result = json.load(response)["data"]["result"]
        seen = float(result[0]["value"][1]) if result else None
        if seen == requests:
            return
        time.sleep(0.2)
    raise AssertionError(f"Prometheus saw {seen} user requests of {region}, expected {requests}")


def _status(url: str, body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("slo-truth")
    redis_port, ok_port, down_port, prometheus_port, closed_port, slow_port = free_ports(6)
    processes: list[subprocess.Popen[bytes]] = []
    # A "Redis" that accepts connections and never answers: slow-region's requests hang, then 503.
    silent = socket.create_server(("127.0.0.1", 0))
    silent_port = silent.getsockname()[1]
    redis_server: list[subprocess.Popen[bytes]] = []

    def start(*command: str) -> None:
        log = open(directory / f"{len(processes)}.log", "wb")  # noqa: SIM115 - closed with the process
        processes.append(
            subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=directory
            )
        )

    try:
        start(
            "redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        )
        redis_server.append(processes[-1])
        for region, port, redis_target in (
            ("ok-region", ok_port, redis_port),
            ("down-region", down_port, closed_port),
            ("slow-region", slow_port, silent_port),
        ):
            start(
                sys.executable, "-m", "harness.sandbox.api_service", "--region", region, "--port", str(port),
                "--redis-url", f"redis://127.0.0.1:{redis_target}/0",
            )  # fmt: skip
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "api",
                    "scrape_interval": "1s",
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{ok_port}"], "labels": {"region": "ok-region"}},
                        {"targets": [f"127.0.0.1:{down_port}"], "labels": {"region": "down-region"}},
                        {"targets": [f"127.0.0.1:{slow_port}"], "labels": {"region": "slow-region"}},
                    ],
                }
            ],
        }
        (directory / "prometheus.yml").write_text(json.dumps(config))
        start(
            "prometheus", f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--log.level=warn",
        )  # fmt: skip
        for port in (ok_port, down_port, slow_port, prometheus_port):
            _wait_http(f"http://127.0.0.1:{port}/metrics")
        time.sleep(SCRAPE_WAIT_SECONDS)  # both APIs scraped before anything is counted
        yield {
            "prometheus_url": f"http://127.0.0.1:{prometheus_port}",
            "ok": f"http://127.0.0.1:{ok_port}",
            "down": f"http://127.0.0.1:{down_port}",
            "slow": f"http://127.0.0.1:{slow_port}",
            "redis": redis_server[0],
        }
    finally:
        silent.close()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_error_ratio_counts_exactly_the_user_requests_of_the_fault_window(
    estate: dict[str, Any], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    configuration = {
        "prometheus_url": estate["prometheus_url"],
        "harness_state_dir": str(state),
        "run_id": "truth",
    }
    for index in range(7):  # before the window: never counted
        assert _status(f"{estate['ok']}/api/v1/items/before-{index}", b"x") == 201
    _await_scraped(estate["prometheus_url"], "ok-region", 7)
    fault = ledger.record_applied(
        state, "harness.actions.test.window", "apis", ledger.Undo("x", "y", {}), run_id="truth"
    )
    time.sleep(SCRAPE_WAIT_SECONDS)  # counts run from the first scrape inside the window
    written, failed = 0, 0
    for index in range(20):
        written += _status(f"{estate['ok']}/api/v1/items/in-{index}", b"x") == 201
        _status(f"{estate['ok']}/api/v1/health")  # health checks and scrapes are not user requests
        _status(f"{estate['ok']}/metrics")
        assert _status(f"{estate['down']}/api/v1/health") == 503  # a 5xx, but not a user request
    estate["redis"].terminate()
    estate["redis"].wait(timeout=10)
    for index in range(5):  # the first 5xx this service ever answers falls inside the window
        failed += _status(f"{estate['ok']}/api/v1/items/cut-{index}", b"x") == 503
    assert (written, failed) == (20, 5)
    _await_scraped(estate["prometheus_url"], "ok-region", 32)  # ... to the last one inside it
    ledger.record_undone(state, fault)
    output = slo_error_ratio(configuration=configuration)
    (measurement,) = output["measurements"]
    assert output["value"] == pytest.approx(5 / 25), measurement["evidence"]
    assert "5 of 25 user requests" in measurement["evidence"]
    assert {s["region"]: s["value"] for s in output["samples"]} == {"ok-region": pytest.approx(0.2)}


def test_no_user_request_in_the_window_is_unknown(estate: dict[str, Any], tmp_path: Path) -> None:
    state = tmp_path / "state"
    configuration = {
        "prometheus_url": estate["prometheus_url"],
        "harness_state_dir": str(state),
        "run_id": "quiet",
    }
    fault = ledger.record_applied(
        state, "harness.actions.test.window", "apis", ledger.Undo("x", "y", {}), run_id="quiet"
    )
    for _ in range(5):
        _status(f"{estate['down']}/api/v1/health")  # 5xx health checks only
        _status(f"{estate['down']}/metrics")
    time.sleep(SCRAPE_WAIT_SECONDS)  # a window Prometheus scraped: it saw no user request in it
    ledger.record_undone(state, fault)
    output = slo_error_ratio(configuration=configuration)
    assert output["value"] is None
    assert "no user request" in output["measurements"][0]["evidence"]


def test_cpu_saturation_without_the_host_exporters_is_unknown(estate: dict[str, Any]) -> None:
    """This Prometheus scrapes only itself... and the APIs: no figure may come from another process."""
    output = saturation_ratio(
        limit_ratio=0.85, window_seconds=10, configuration={"prometheus_url": estate["prometheus_url"]}
    )
    assert output["value"] is None and output["within_limit"] is None
    assert "node_exporter" in output["measurements"][0]["evidence"]


def test_a_request_the_client_gave_up_on_is_still_counted(estate: dict[str, Any], tmp_path: Path) -> None:
    """The server answered 503 after the client's timeout: the server's count must include it (a
    request counted only once its answer was delivered would vanish from the server's witness)."""
    state = tmp_path / "state"
    configuration = {
        "prometheus_url": estate["prometheus_url"],
        "harness_state_dir": str(state),
        "run_id": "slow",
    }
    fault = ledger.record_applied(
        state, "harness.actions.test.window", "apis", ledger.Undo("x", "y", {}), run_id="slow"
    )
    for index in range(3):
        request = urllib.request.Request(
            f"{estate['slow']}/api/v1/items/slow-{index}", data=b"x", method="POST"
        )
        with pytest.raises(OSError):  # the client gives up long before the API's 2 s backend timeout
            urllib.request.urlopen(request, timeout=0.3)
    time.sleep(2.0 + SCRAPE_WAIT_SECONDS)  # one backend timeout, no retries; then a scrape
    ledger.record_undone(state, fault)
    output = slo_error_ratio(configuration=configuration)
    assert output["value"] == 1.0, output["measurements"][0]["evidence"]
    assert "3 of 3 user requests" in output["measurements"][0]["evidence"]
