"""The convergence probe over HTTP (harness.probes._convergence_http): the contract's answers parsed
(pure), the sandbox's regional APIs serving it over real pglogical replication (propagation under a
latency toxic, seeded last-write-wins conflicts), and broken answers turning into unknown measures.

One active-active estate with its APIs serves the module; the DSN path's own tests are
test_convergence_probe.py.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest

from harness import measures
from harness.errors import ConfigError
from harness.model import PostgresSettings
from harness.probes import _convergence_http as http
from harness.probes.convergence import (
    PostgresEndpoint,
    RegisterAck,
    RegisterRow,
    convergence,
    region_endpoints,
)
from harness.sandbox.examples import example_scenario
from harness.sandbox.lifecycle import down, up
from tests.probes.records import as_record

A, B = "us-east-1", "eu-west-1"
RATE_HZ = 20.0
ADDED_MS = 100  # the DSN path sweeps 0/100/500 ms; one value shows the HTTP path agrees
PHASE_SECONDS = 1.5


# ---------------------------------------------------------------- answers (pure)


def test_a_register_answer_with_prev_and_commit_timestamp_is_an_acknowledgement() -> None:
    assert http.parse_register_ack(b'{"prev": "a:1", "commit_us": 1800000000000001}') == RegisterAck(
        "a:1", 1800000000000001
    )
    assert http.parse_register_ack(b'{"prev": null, "commit_us": 5}') == RegisterAck(None, 5)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"<html>ok</html>", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"commit_us": 5}', "prev"),
        (b'{"prev": 3, "commit_us": 5}', "prev"),
        (b'{"prev": null}', "commit_us"),
        (b'{"prev": null, "commit_us": "5"}', "commit_us"),
        (b'{"prev": null, "commit_us": 1.5}', "commit_us"),
        (b'{"prev": null, "commit_us": true}', "commit_us"),
    ],
)
def test_a_2xx_register_answer_without_its_evidence_is_acknowledged_without_a_timestamp(
    body: bytes, named: str
) -> None:
    """The service said it committed (2xx), so the write is acknowledged; without the commit
    timestamp grading cannot judge last-write-wins, and the problem is named."""
    ack = http.parse_register_ack(body)
    assert ack.commit_us is None and named in ack.problem


def test_held_elements_must_be_a_subset_of_what_was_asked() -> None:
    assert http.parse_held(b'{"held": ["x/1"]}', ["x/1", "x/2"]) == {"x/1"}
    assert http.parse_held(b'{"held": []}', ["x/1"]) == set()
    for body, named in [
        (b"nope", "not JSON"),
        (b'{"held": "x/1"}', "expected"),
        (b'{"held": [1]}', "expected"),
        (b'{"ids": ["x/1"]}', "expected"),
        (b'{"held": ["x/9"]}', "not asked"),
    ]:
        with pytest.raises(http.BadAnswer, match=named):
            http.parse_held(body, ["x/1"])


def test_a_range_answer_needs_every_register_stamped_and_inside_the_range() -> None:
    good = {
        "elements": ["t/e000001/a/0"],
        "registers": {"t/e000001/k0": {"value": "a:0", "origin": "a", "commit_us": 7}},
    }
    elements, registers = http.parse_range(json.dumps(good).encode(), "t/", "t0")
    assert elements == {"t/e000001/a/0"}
    assert registers == {"t/e000001/k0": RegisterRow("a:0", "a", 7)}
    broken = [
        ({**good, "elements": "t/e000001/a/0"}, "elements"),
        ({"elements": []}, "registers"),
        ({**good, "registers": {"t/e000001/k0": {"value": "a:0", "origin": "a"}}}, "commit_us"),
        (
            {**good, "registers": {"t/e000001/k0": {"value": "a:0", "origin": "a", "commit_us": None}}},
            "commit_us",
        ),
        ({**good, "registers": {"t/e000001/k0": {"origin": "a", "commit_us": 7}}}, "value"),
        ({**good, "registers": {"t/e000001/k0": {"value": "a:0", "commit_us": 7}}}, "origin"),
        ({**good, "elements": ["u/e000001/a/0"]}, "outside"),
    ]
    for payload, named in broken:
        with pytest.raises(http.BadAnswer, match=named):
            http.parse_range(json.dumps(payload).encode(), "t/", "t0")
    with pytest.raises(http.BadAnswer, match="not JSON"):
        http.parse_range(b"{", "t/", "t0")


def test_digests_group_by_epoch_in_byte_order() -> None:
    rows = {"t/e000001/k0": RegisterRow("b:1", "b", 9)}
    found = http.digests(["t/e000001/a/0", "t/e000002/a/1"], rows)
    assert set(found) == {"e000001", "e000002"} and found["e000001"][1] == 2
    # The same data in another order digests the same; other data does not.
    assert http.digests(["t/e000002/a/1", "t/e000001/a/0"], rows) == found
    assert http.digests(["t/e000001/a/0"], rows)["e000001"] == found["e000001"]
    assert http.digests(["t/e000001/a/0"], {"t/e000001/k0": RegisterRow("a:1", "a", 9)}) != found


@pytest.mark.parametrize(
    "url",
    ["", "127.0.0.1:8080", "ftp://127.0.0.1/x", "http://", "http://127.0.0.1:port/x", "http://h/x?y=1", 7],
)
def test_an_unparsable_convergence_url_names_the_region_and_field(url: Any) -> None:
    configuration = {"regions": {"a": {"convergence_url": url}, "b": {"postgres_dsn": "x"}}}
    with pytest.raises(ConfigError, match=r"regions\.a\.convergence_url"):
        region_endpoints(configuration)


def test_a_convergence_url_wins_over_the_dsn_and_regions_may_mix_transports() -> None:
    configuration = {
        "regions": {
            "a": {"postgres_dsn": "host=x", "convergence_url": "https://a.example.com:8443/cv/"},
            "b": {"postgres_dsn": "host=y"},
            "c": {"api_url": "http://127.0.0.1:1"},  # neither: not a region of the probe
        }
    }
    assert region_endpoints(configuration) == {
        "a": ("http", "https://a.example.com:8443/cv"),
        "b": ("postgres", "host=y"),
    }


# ---------------------------------------------------------------- against the sandbox's APIs


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("convergence-http")
    scenario = dataclasses.replace(example_scenario(2), postgres=PostgresSettings(topology="active-active"))
    try:
        box = up(scenario, directory, components={"proxy", "postgres", "redis", "api"})
        regions = {
            region: {**info, "convergence_url": info["api_url"] + "/api/v1/convergence"}
            for region, info in box.endpoints["regions"].items()
        }
        yield {
            **box.endpoints,
            "regions": regions,
            "harness_state_dir": str(tmp_path_factory.mktemp("state")),
        }
    finally:
        down(directory)


def _toxiproxy(estate: Mapping[str, Any], method: str, path: str, body: Any = None) -> None:
    request = urllib.request.Request(
        estate["faultproxy_url"] + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method=method,
    )
    try:
        urllib.request.urlopen(request, timeout=5).close()
    except urllib.error.HTTPError as error:
        assert method == "DELETE" and error.code == 404, error


def _set_link_latency(estate: Mapping[str, Any], added_ms: int) -> None:
    """A latency toxic each way on every proxy between A and B, set straight through the fault proxy."""
    proxies = {link["proxy"] for link in estate["links"].values() if {link["from"], link["to"]} == {A, B}}
    assert proxies, estate["links"]
    for proxy in proxies:
        for stream in ("upstream", "downstream"):
            name = f"test-latency-{stream}"
            _toxiproxy(estate, "DELETE", f"/proxies/{proxy}/toxics/{name}")
            if added_ms:
                toxic = {
                    "name": name,
                    "type": "latency",
                    "stream": stream,
                    "attributes": {"latency": added_ms},
                }
                _toxiproxy(estate, "POST", f"/proxies/{proxy}/toxics", toxic)


def test_the_sandbox_api_digests_as_the_database_does(estate: dict[str, Any]) -> None:
    """Both transports digest identical data identically (so regions may mix them): an element and
    a register written over HTTP, digested over HTTP and over the DSN."""
    token = f"cvt{time.monotonic_ns()}"
    over_http = http.HttpEndpoint(estate["regions"][A]["convergence_url"])
    over_dsn = PostgresEndpoint(estate["regions"][A]["postgres_dsn"])
    try:
        over_http.add_element(f"{token}/e000000/{A}/0", A)
        first = over_http.write_register(f"{token}/e000000/k0", f"{A}:0", A)
        second = over_http.write_register(f"{token}/e000000/k0", f"{A}:1", A)
        assert first.prev is None and second.prev == f"{A}:0" and not first.problem
        assert (
            first.commit_us is not None
            and second.commit_us is not None
            and second.commit_us > first.commit_us
        )
        low, high = f"{token}/", f"{token}0"
        assert over_http.digests(low, high) == over_dsn.digests(low, high) != {}
        assert over_http.registers(low, high) == over_dsn.registers(low, high)
        assert over_http.held_elements([f"{token}/e000000/{A}/0", f"{token}/e000000/{A}/9"]) == {
            f"{token}/e000000/{A}/0"
        }
    finally:
        over_http.close()
        over_dsn.close()
    # The API refuses what is not the contract, and names what it expected.
    url = estate["regions"][A]["convergence_url"]
    for path, body, code in [
        ("/registers", b"{", 400),
        ("/registers", b'{"key": "k"}', 400),
        ("/elements/held", b'{"ids": "x"}', 400),
        ("/nothing", b"{}", 404),
    ]:
        request = urllib.request.Request(url + path, data=body, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == code and b"error" in refused.value.read(), path


def test_propagation_over_http_follows_an_injected_latency(estate: dict[str, Any]) -> None:
    """Half the run at the estate's own distance, half with 100 ms more each way on the link: the
    median visibility moves by the injected delay, within one write interval + 20 ms, as on the DSN
    path (issue 19's known truth)."""
    origin = time.monotonic()
    marks: dict[str, float] = {}

    def raise_latency() -> None:
        time.sleep(PHASE_SECONDS)
        marks["asked"] = time.monotonic()
        _set_link_latency(estate, ADDED_MS)
        marks["applied"] = time.monotonic()

    thread = threading.Thread(target=raise_latency)
    thread.start()
    try:
        output = convergence(
            2 * PHASE_SECONDS, rate_hz=RATE_HZ, settle_seconds=3.0, sustain_seconds=0.3, configuration=estate
        )
    finally:
        thread.join()
        _set_link_latency(estate, 0)
    ok = [s for s in output["samples"] if s["ok"]]
    assert ok and not [s for s in output["samples"] if not s["ok"]]
    tolerance = 1.0 / RATE_HZ + 0.020
    for pair in (f"{A}->{B}", f"{B}->{A}"):
        before = [s["value"] for s in ok if s["region"] == pair and s["at_monotonic"] < marks["asked"]]
        after = [
            s["value"] for s in ok if s["region"] == pair and s["at_monotonic"] > marks["applied"] + 0.05
        ]
        base, raised = measures.percentile(before, 0.5), measures.percentile(after, 0.5)
        print(f"{pair}: median {base * 1000:.1f} ms, with {ADDED_MS} ms added {raised * 1000:.1f} ms")
        assert abs(raised - (base + ADDED_MS / 1000)) <= tolerance, (pair, base, raised)
    record = as_record(output, origin)
    for name in ("lww_violations_count", "lost_writes_count"):
        found = measures.measure(record, name)
        assert found is not None and found.value == 0, found
    p99 = measures.measure(record, "propagation_p99_seconds")
    assert p99 is not None and p99.value is not None and p99.value >= ADDED_MS / 1000 and not p99.lower_bound


def _subscriptions(estate: Mapping[str, Any], enable: bool) -> None:
    """Every pglogical subscription off (or on) at once, straight in SQL: both sides then write the
    same keys without seeing each other (replication.stop_replication proves its effect for a
    second per region, longer than this test's whole cut)."""
    call = "alter_subscription_enable" if enable else "alter_subscription_disable"
    for pair, entry in estate["replication"].items():
        subscriber = pair.split("->")[1]
        with psycopg.connect(estate["regions"][subscriber]["postgres_dsn"], autocommit=True) as connection:
            connection.execute(f"SELECT pglogical.{call}(%s, true)", (entry["subscription"],))


def test_seeded_conflicts_over_http_are_each_one_discard_and_no_violation(estate: dict[str, Any]) -> None:
    """Replication off both ways while each region writes every key of each epoch once (register
    rate = keys per epoch / epoch length): every key both regions wrote is one conflict neither
    saw, so last-write-wins discards exactly one write per such key; then replication resumes and
    the regions converge on the later commit (0 violations)."""
    duration = 1.5
    origin = time.monotonic()
    _subscriptions(estate, enable=False)
    resume = threading.Timer(duration + 0.6, _subscriptions, (estate, True))
    resume.start()
    try:
        output = convergence(
            duration,
            rate_hz=5.0,
            register_rate_hz=4.0,
            keys_per_epoch=2,
            epoch_seconds=0.5,
            settle_seconds=6.0,
            sustain_seconds=0.3,
            configuration=estate,
        )
    finally:
        resume.join()
        _subscriptions(estate, enable=True)
    writes = [e["detail"] for e in output["events"] if e["kind"] == "convergence.register_write"]
    assert writes and all(w["acked"] and w["commit_us"] for w in writes), writes
    # The seed held: no write saw another region's value (replication was off while they were made).
    assert all(w["prev"] is None or w["prev"].split(":")[0] == w["origin"] for w in writes), writes
    origins: dict[str, set[str]] = {}
    for w in writes:
        origins.setdefault(w["key"], set()).add(w["origin"])
    conflicts = sum(1 for regions in origins.values() if regions == {A, B})
    assert conflicts >= 4, origins
    record = as_record(output, origin)
    discarded = measures.measure(record, "lww_discarded_writes_count")
    assert discarded is not None and discarded.value == conflicts and not discarded.lower_bound, discarded
    violations = measures.measure(record, "lww_violations_count")
    assert violations is not None and violations.value == 0, violations
    lost = measures.measure(record, "lost_writes_count")
    assert lost is not None and lost.value == 0, lost


# ---------------------------------------------------------------- broken answers


class _Store:
    """One in-memory store both stand-in regions share (replication is instant): what the broken
    region answers is the only thing under test."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.elements: set[str] = set()
        self.registers: dict[str, tuple[str, str, int]] = {}
        self.clock = int(time.time() * 1_000_000)


class _StandIn(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, store: _Store, broken: str) -> None:
        super().__init__(("127.0.0.1", 0), _StandInHandler)
        self.store, self.broken = store, broken


class _StandInHandler(BaseHTTPRequestHandler):
    server: _StandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        asked = urllib.parse.parse_qs(parts.query)
        low, high = asked["low"][0].encode(), asked["high"][0].encode()
        store = self.server.store
        with store.lock:
            answer = {
                "elements": sorted(e for e in store.elements if low <= e.encode() < high),
                "registers": {
                    k: {"value": v, "origin": o, "commit_us": c}
                    for k, (v, o, c) in store.registers.items()
                    if low <= k.encode() < high
                },
            }
        self._reply(200, answer, "range")

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        store = self.server.store
        with store.lock:
            if self.path.endswith("/elements"):
                store.elements.add(payload["id"])
                self._reply(201, {}, "elements")
            elif self.path.endswith("/registers"):
                store.clock += 1
                prev = store.registers.get(payload["key"], (None,))[0]
                store.registers[payload["key"]] = (payload["value"], payload["origin"], store.clock)
                self._reply(200, {"prev": prev, "commit_us": store.clock}, "registers")
            else:
                self._reply(200, {"held": [i for i in payload["ids"] if i in store.elements]}, "held")

    def _reply(self, code: int, answer: Any, route: str) -> None:
        broken = self.server.broken
        data = json.dumps(answer).encode()
        if broken == "not JSON" and route in ("held", "range"):
            data = b"<html>service unavailable</html>"
        elif broken == "HTTP 500" and route in ("held", "range"):
            code = 500
        elif broken == "no commit_us" and route == "registers":
            data = json.dumps({"prev": answer["prev"]}).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.mark.parametrize("broken", ["not JSON", "HTTP 500", "no commit_us"])
def test_a_region_that_answers_out_of_contract_makes_the_measures_unknown(broken: str) -> None:
    """Region b's service breaks the contract; every measure it affects is unknown (or a lower
    bound that cannot pass), naming what is missing, and none is graded as if b were fine."""
    store = _Store()
    servers = {"a": _StandIn(store, ""), "b": _StandIn(store, broken)}
    for server in servers.values():
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    regions = {
        r: {"convergence_url": f"http://127.0.0.1:{s.server_address[1]}/cv"} for r, s in servers.items()
    }
    origin = time.monotonic()
    try:
        output = convergence(
            0.4, rate_hz=10.0, epoch_seconds=0.2, digest_seconds=0.1, settle_seconds=0.2,
            timeout_seconds=0.3, sustain_seconds=0.1, configuration={"regions": regions},
        )  # fmt: skip
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()
    record = as_record(output, origin)
    discarded = measures.measure(record, "lww_discarded_writes_count")
    violations = measures.measure(record, "lww_violations_count")
    for found in (discarded, violations):
        assert found is not None and found.value is None, found
    if broken == "no commit_us":
        assert "without a commit timestamp" in discarded.evidence
        errors = [
            e["detail"].get("error", "")
            for e in output["events"]
            if e["kind"] == "convergence.register_write"
        ]
        assert any("commit_us" in e for e in errors)
        return
    assert "final state not read" in discarded.evidence and "b:" in discarded.evidence
    assert (broken if broken == "not JSON" else "HTTP 500") in discarded.evidence
    propagation = measures.measure(record, "propagation_p99_seconds")
    assert propagation is not None and (propagation.value is None or propagation.lower_bound), propagation
    unseen = [s for s in output["samples"] if s["region"] == "a->b"]
    assert unseen and all(not s["ok"] and s["error"].startswith("unreachable: BadAnswer") for s in unseen)
    converged = measures.measure(record, "convergence_seconds")
    assert converged is None or converged.value is None or converged.lower_bound
