"""Spec §5 item 37 and §4: inputs that crash or hang real Toxiproxy get a 400 and the server keeps serving."""

from __future__ import annotations

import socket

import pytest

from .support import Api, rtt_seconds

# (what, path, body): every §4 row, plus each wrong-type attribute value.
TOXIC_ROWS = [
    ("bandwidth rate < 0", {"type": "bandwidth", "attributes": {"rate": -1}}),
    ("bandwidth rate = 0", {"type": "bandwidth", "attributes": {"rate": 0}}),
    ("bandwidth rate omitted", {"type": "bandwidth"}),
    ("slicer average_size = 0", {"type": "slicer", "attributes": {"average_size": 0}}),
    ("slicer average_size < 0", {"type": "slicer", "attributes": {"average_size": -5}}),
    (
        "slicer variation > average",
        {"type": "slicer", "attributes": {"average_size": 10, "size_variation": 11}},
    ),
    ("slicer variation < 0", {"type": "slicer", "attributes": {"average_size": 10, "size_variation": -1}}),
    ("negative latency", {"type": "latency", "attributes": {"latency": -1}}),
    ("negative jitter", {"type": "latency", "attributes": {"jitter": -1}}),
    ("negative slow_close delay", {"type": "slow_close", "attributes": {"delay": -1}}),
    ("negative slicer delay", {"type": "slicer", "attributes": {"average_size": 1, "delay": -1}}),
    ("negative timeout", {"type": "timeout", "attributes": {"timeout": -1}}),
    ("negative reset_peer timeout", {"type": "reset_peer", "attributes": {"timeout": -1}}),
    ("negative bytes", {"type": "limit_data", "attributes": {"bytes": -1}}),
    ("latency > 2^31-1", {"type": "latency", "attributes": {"latency": 2**31}}),
    ("jitter > 2^62", {"type": "latency", "attributes": {"jitter": 2**62 + 1}}),
    ("rate > 2^31-1", {"type": "bandwidth", "attributes": {"rate": 2**31}}),
    ("bytes > 2^53-1", {"type": "limit_data", "attributes": {"bytes": 2**53}}),
    ("toxicity < 0", {"type": "noop", "toxicity": -0.1}),
    ("toxicity > 1", {"type": "noop", "toxicity": 1.5}),
    ("toxic name with /", {"type": "noop", "name": "a/b"}),
    ("float attribute 1.5", {"type": "latency", "attributes": {"latency": 1.5}}),
    ("float attribute 10.0", {"type": "latency", "attributes": {"latency": 10.0}}),
    ("exponent attribute 1e3", {"type": "latency", "attributes": {"latency": 1e3}}),
    ("string attribute", {"type": "latency", "attributes": {"latency": "100"}}),
    ("boolean attribute", {"type": "latency", "attributes": {"latency": True}}),
    ("attributes not an object", {"type": "latency", "attributes": [1]}),
    ("toxicity a string", {"type": "noop", "toxicity": "1"}),
    ("toxicity a boolean", {"type": "noop", "toxicity": True}),
    ("type a number", {"type": 5}),
    ("body an array", [{"type": "noop"}]),
    ("body a string", "noop"),
]

PROXY_ROWS = [
    ("listen without port", {"name": "p", "upstream": "127.0.0.1:1", "listen": "127.0.0.1"}),
    ("listen port not numeric", {"name": "p", "upstream": "127.0.0.1:1", "listen": "127.0.0.1:http"}),
    ("listen port > 65535", {"name": "p", "upstream": "127.0.0.1:1", "listen": "127.0.0.1:65536"}),
    ("listen port negative", {"name": "p", "upstream": "127.0.0.1:1", "listen": "127.0.0.1:-1"}),
    ("disabled listen unchecked", {"name": "p", "upstream": "127.0.0.1:1", "listen": "x", "enabled": False}),
    ("upstream without port", {"name": "p", "upstream": "127.0.0.1"}),
    ("upstream port 0", {"name": "p", "upstream": "127.0.0.1:0"}),
    ("upstream port > 65535", {"name": "p", "upstream": "127.0.0.1:70000"}),
    ("upstream without host", {"name": "p", "upstream": ":80"}),
    ("upstream unbracketed IPv6", {"name": "p", "upstream": "::1:80"}),
    ("proxy name with /", {"name": "a/b", "upstream": "127.0.0.1:1"}),
    ("name a number", {"name": 5, "upstream": "127.0.0.1:1"}),
    ("enabled a string", {"name": "p", "upstream": "127.0.0.1:1", "enabled": "yes"}),
    ("body an array", [{"name": "p", "upstream": "127.0.0.1:1"}]),
]


def _assert_rejected(api: Api, response, what: str) -> None:
    assert response.status_code == 400, f"{what}: {response.status_code} {response.text}"
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == 400
    assert body["error"]
    assert api.get("/version").status_code == 200


@pytest.fixture
def link(api: Api, echo, connect) -> socket.socket:
    created = api.create_proxy("a", echo.port)
    client = connect(created["listen"])
    rtt_seconds(client)
    return client


def test_37_each_section4_toxic_row_is_rejected(api, link):
    for what, body in TOXIC_ROWS:
        _assert_rejected(api, api.post("/proxies/a/toxics", body), what)
    assert api.get("/proxies/a/toxics").json() == []
    assert rtt_seconds(link) < 1


def test_37_each_section4_proxy_row_is_rejected(api, link):
    for what, body in PROXY_ROWS:
        _assert_rejected(api, api.post("/proxies", body), what)
        _assert_rejected(api, api.post("/populate", [body]), f"populate: {what}")
    assert set(api.get("/proxies").json()) == {"a"}
    assert rtt_seconds(link) < 1


def test_bad_toxic_updates_are_rejected_and_change_nothing(api, link):
    api.add_toxic("a", "bandwidth", attributes={"rate": 100000})
    api.add_toxic("a", "slicer", attributes={"average_size": 10, "size_variation": 5})
    for what, path, body in [
        ("rate to 0", "bandwidth_downstream", {"attributes": {"rate": 0}}),
        ("rate negative", "bandwidth_downstream", {"attributes": {"rate": -3}}),
        ("variation above average", "slicer_downstream", {"attributes": {"size_variation": 11}}),
        ("average below variation", "slicer_downstream", {"attributes": {"average_size": 4}}),
        ("toxicity 2", "slicer_downstream", {"toxicity": 2}),
        ("attributes a list", "slicer_downstream", {"attributes": [1, 2]}),
        ("body a list", "slicer_downstream", [1]),
    ]:
        _assert_rejected(api, api.post(f"/proxies/a/toxics/{path}", body), what)
    toxics = {t["name"]: t for t in api.get("/proxies/a/toxics").json()}
    assert toxics["bandwidth_downstream"]["attributes"] == {"rate": 100000}
    assert toxics["slicer_downstream"]["attributes"] == {"average_size": 10, "size_variation": 5, "delay": 0}
    assert toxics["slicer_downstream"]["toxicity"] == 1


def test_bad_proxy_updates_are_rejected(api, link):
    for what, body in [
        ("listen without port", {"listen": "127.0.0.1"}),
        ("upstream without port", {"upstream": "localhost"}),
        ("enabled a number", {"enabled": 1}),
        ("listen a number", {"listen": 80}),
    ]:
        _assert_rejected(api, api.post("/proxies/a", body), what)
    assert rtt_seconds(link) < 1


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"nul",
        b"NaN",
        b'{"name": NaN}',
        b"[" * 100_000 + b"]" * 100_000,
        b"\xff\xfe",
        b'{"a": Infinity}',
    ],
)
def test_unparsable_bodies(api, body):
    for path in ("/proxies", "/populate"):
        _assert_rejected(api, api.post(path, data=body), f"{path} {body[:10]!r}")
        assert api.post(path, data=body).json()["error"].startswith("bad request body")


def test_bad_toxic_body_on_unknown_proxy_is_404(api):
    assert api.post("/proxies/nope/toxics", data=b"{").status_code == 404


def test_malformed_http_keeps_server_serving(server, api):
    for raw in [
        b"garbage\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /proxies HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"POST /proxies HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n",
        b"POST /proxies HTTP/1.1\r\nContent-Length: 10\r\n\r\n{",
        b"GET /proxies HTTP/1.1\r\n" + b"X: " + b"y" * 100_000 + b"\r\n\r\n",
    ]:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
            reply = b""
            while part := sock.recv(65536):
                reply += part
            assert reply == b"" or reply.startswith(b"HTTP/1.1 4") or reply.startswith(b"HTTP/1.1 5"), reply[
                :80
            ]
        assert api.get("/version").status_code == 200


def test_chunked_body_is_accepted(server):
    body = b'{"name": "c", "upstream": "127.0.0.1:1"}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    request = (
        b"POST /proxies HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + chunked
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request)
        reply = b""
        while part := sock.recv(65536):
            reply += part
    assert reply.startswith(b"HTTP/1.1 201 ")
