"""The convergence probe against a real active-active estate (two PostgreSQL 15 nodes, pglogical
both ways through the fault proxy): propagation follows an injected latency, and a region whose
replication was stopped is caught as a violation and as non-convergence.

One estate serves the module (about 18 s in all); the latency sweep repeated, with the error
distribution, is benchmarks/propagation.py.
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from harness import measures
from harness.actions import replication
from harness.model import FaultRecord, PostgresSettings
from harness.probes.convergence import convergence
from harness.sandbox.examples import example_scenario
from harness.sandbox.lifecycle import down, up
from tests.probes.records import as_record

A, B = "us-east-1", "eu-west-1"
RATE_HZ = 20.0
LATENCIES_MS = (0, 100, 500)  # added each way on the link, one phase each
PHASE_SECONDS = 2.5


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("convergence")
    scenario = dataclasses.replace(example_scenario(2), postgres=PostgresSettings(topology="active-active"))
    try:
        box = up(scenario, directory, components={"proxy", "postgres"})
        # The probe's writes commit synchronously: with the sandbox's synchronous_commit=off a change
        # leaves only at the WAL writer's next flush (every 200 ms), noise of the estate, not the probe.
        regions = {
            region: {**info, "postgres_dsn": info["postgres_dsn"] + "?options=-c%20synchronous_commit%3Don"}
            for region, info in box.endpoints["regions"].items()
        }
        yield {
            **box.endpoints,
            "regions": regions,
            "harness_state_dir": str(tmp_path_factory.mktemp("state")),
        }
    finally:
        down(directory)


def median(values: list[float]) -> float:
    return measures.percentile(values, 0.5)


def _set_link_latency(estate: Mapping[str, Any], added_ms: int) -> None:
    """Latency toxics on every proxy between A and B, set straight through the fault proxy's
    Toxiproxy API: the instant is known to a few ms (add_latency's proof of a 500 ms delay takes
    seconds of round trips, during which the phase would be unknown)."""
    url = estate["faultproxy_url"]
    proxies = {link["proxy"] for link in estate["links"].values() if {link["from"], link["to"]} == {A, B}}
    assert proxies, estate["links"]
    for proxy in proxies:
        for stream in ("upstream", "downstream"):
            name = f"test-latency-{stream}"
            try:
                urllib.request.urlopen(
                    urllib.request.Request(f"{url}/proxies/{proxy}/toxics/{name}", method="DELETE"), timeout=5
                ).close()
            except urllib.error.HTTPError as error:
                assert error.code == 404, error
            if added_ms:
                body = {
                    "name": name,
                    "type": "latency",
                    "stream": stream,
                    "attributes": {"latency": added_ms},
                }
                urllib.request.urlopen(
                    urllib.request.Request(
                        f"{url}/proxies/{proxy}/toxics",
                        data=json.dumps(body).encode(),
                        headers={"Content-Type": "application/json"},
                        method="POST",
                    ),
                    timeout=5,
                ).close()


def test_propagation_follows_an_injected_latency(estate: dict[str, Any]) -> None:
    """A third of the run at the estate's own distance (0 ms added), a third with 100 ms more each
    way on the link, a third with 500 ms: each median visibility is the baseline plus the injected
    delay, within one write interval + 20 ms (issue 19)."""
    import threading

    origin = time.monotonic()
    marks: dict[int, tuple[float, float]] = {}  # added ms -> (asked, applied)

    def raise_latency() -> None:
        for added in LATENCIES_MS[1:]:
            time.sleep(PHASE_SECONDS - (time.monotonic() - origin) % PHASE_SECONDS)
            asked = time.monotonic()
            _set_link_latency(estate, added)
            marks[added] = (asked, time.monotonic())

    thread = threading.Thread(target=raise_latency)
    thread.start()
    try:
        duration = PHASE_SECONDS * len(LATENCIES_MS)
        output = convergence(duration, rate_hz=RATE_HZ, settle_seconds=5.0, configuration=estate)
    finally:
        thread.join()
        _set_link_latency(estate, 0)
    record = as_record(output, origin)
    ok = [s for s in output["samples"] if s["ok"]]
    # Writes made while the latency was being changed (and proven) belong to no phase.
    bounds = [(origin, marks[LATENCIES_MS[1]][0])]
    for added, following in zip(LATENCIES_MS[1:], [*LATENCIES_MS[2:], None], strict=True):
        end = marks[following][0] if following is not None else float("inf")
        bounds.append((marks[added][1] + 0.05, end))
    tolerance = 1.0 / RATE_HZ + 0.020
    for pair in (f"{A}->{B}", f"{B}->{A}"):
        medians = [
            median([s["value"] for s in ok if s["region"] == pair and low < s["at_monotonic"] < high])
            for low, high in bounds
        ]
        base = medians[0]
        for added, measured in zip(LATENCIES_MS, medians, strict=True):
            assert abs(measured - (base + added / 1000)) <= tolerance, (pair, added, base, measured)
    # Nothing was cut: every write arrived, every region agrees, nothing lost.
    assert not [s for s in output["samples"] if not s["ok"]]
    for name in ("lww_violations_count", "lost_writes_count"):
        found = measures.measure(record, name)
        assert found is not None and found.value == 0, found
    p99 = measures.measure(record, "propagation_p99_seconds")
    assert p99 is not None and p99.value is not None and p99.value >= LATENCIES_MS[-1] / 1000


def test_a_region_whose_replication_stopped_is_a_violation_and_never_converges(
    estate: dict[str, Any],
) -> None:
    origin = time.monotonic()
    stopped = replication.stop_replication(B, configuration=estate)
    applied = time.monotonic() - origin
    try:
        output = convergence(
            2.0, rate_hz=RATE_HZ, settle_seconds=1.0, timeout_seconds=2.0, configuration=estate
        )
    finally:
        replication.start_replication(B, configuration=estate)
    fault = FaultRecord("stop", "harness.actions.replication.stop_replication", B, applied, None, True)
    record = as_record(output, origin, [fault])
    unseen = [s for s in output["samples"] if s["region"] == f"{A}->{B}" and not s["ok"]]
    assert unseen and all(s["error"].startswith("not seen within") for s in unseen), stopped
    violations = measures.measure(record, "lww_violations_count")
    assert violations is not None and violations.value is not None and violations.value >= len(unseen)
    assert f"absent in {B}" in violations.evidence
    converged = measures.measure(record, "convergence_seconds")
    assert converged is not None and converged.lower_bound and "still differed" in converged.evidence
    lost = measures.measure(record, "lost_writes_count")
    assert lost is not None and lost.value == 0  # A still holds them: late, not lost


def test_a_stop_request_ends_the_probe_within_a_second(estate: dict[str, Any], tmp_path) -> None:
    import threading

    configuration = {**estate, "run_dir": str(tmp_path)}
    threading.Timer(0.5, lambda: (tmp_path / "stop").touch()).start()
    started = time.monotonic()
    output = convergence(60.0, settle_seconds=60.0, configuration=configuration)
    assert time.monotonic() - started < 1.5
    finals = [e for e in output["events"] if e["kind"] == "convergence.final"]
    assert len(finals) == 2 and all("registers" in e["detail"] for e in finals)  # still read at the end


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"duration_seconds": -1}, "duration_seconds"),
        ({"duration_seconds": 1, "rate_hz": 500}, "rate_hz"),
        ({"duration_seconds": 1, "keys_per_epoch": True}, "keys_per_epoch"),
    ],
)
def test_bad_arguments_name_the_field(arguments: dict[str, Any], field: str) -> None:
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match=field):
        convergence(
            **arguments, configuration={"regions": {"a": {"postgres_dsn": "x"}, "b": {"postgres_dsn": "y"}}}
        )


def test_one_region_is_not_active_active() -> None:
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="at least two regions"):
        convergence(1.0, configuration={"regions": {"a": {"postgres_dsn": "x"}}})
