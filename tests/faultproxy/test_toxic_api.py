"""Spec §5 items 28-36: the toxic API."""

from __future__ import annotations

import pytest

from .support import Api


@pytest.fixture
def proxy(api: Api, echo) -> dict:
    return api.create_proxy("a", echo.port)


def test_28_create_latency(api, proxy):
    response = api.post(
        "/proxies/a/toxics", {"type": "latency", "attributes": {"latency": 1000, "jitter": 100}}
    )
    assert response.status_code == 200
    assert response.json() == {
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1,
        "attributes": {"latency": 1000, "jitter": 100},
    }


def test_29_toxic_is_visible_everywhere(toxi, api, proxy):
    toxi.get_proxy("a").add_toxic(type="latency", attributes={"latency": 1000, "jitter": 100})
    toxic = api.get("/proxies/a/toxics/latency_downstream")
    assert toxic.status_code == 200
    assert toxic.json()["attributes"] == {"latency": 1000, "jitter": 100}
    assert api.get("/proxies/a/toxics").json() == [toxic.json()]
    assert api.get("/proxies/a").json()["toxics"] == [toxic.json()]
    seen = toxi.get_proxy("a").toxics()
    assert list(seen) == ["latency_downstream"]
    assert seen["latency_downstream"].type == "latency"


def test_30_duplicate_names(api, proxy):
    body = {"type": "latency", "attributes": {"latency": 1000}}
    assert api.post("/proxies/a/toxics", body).status_code == 200
    again = api.post("/proxies/a/toxics", body)
    assert again.status_code == 409
    assert again.json() == {"error": "toxic already exists", "status": 409}
    other_stream = api.post("/proxies/a/toxics", {**body, "name": "latency_downstream", "stream": "upstream"})
    assert other_stream.status_code == 409
    nameless_upstream = api.post("/proxies/a/toxics", {**body, "stream": "upstream"})
    assert nameless_upstream.status_code == 200
    assert nameless_upstream.json()["name"] == "latency_upstream"
    assert nameless_upstream.json()["stream"] == "upstream"


def test_31_invalid_type_stream_proxy(api, proxy):
    for type_ in ("bogus", "down", ""):
        response = api.post("/proxies/a/toxics", {"type": type_})
        assert response.status_code == 400
        assert response.json() == {"error": "invalid toxic type", "status": 400}
    response = api.post("/proxies/a/toxics", {"type": "latency", "stream": "lolstream"})
    assert response.status_code == 400
    assert response.json()["error"] == "stream was invalid, can be either upstream or downstream"
    response = api.post("/proxies/a/toxics", {"type": "latency", "stream": ""})
    assert response.status_code == 400
    response = api.post("/proxies/nope/toxics", {"type": "latency"})
    assert response.status_code == 404
    assert response.json() == {"error": "proxy not found", "status": 404}
    response = api.post("/proxies/a/toxics", {"type": "latency", "stream": "UpStream"})
    assert response.json()["stream"] == "upstream"


def test_32_update_merges(api, proxy):
    api.add_toxic("a", "latency", attributes={"latency": 1000, "jitter": 100}, toxicity=0.75)
    response = api.post("/proxies/a/toxics/latency_downstream", {"attributes": {"latency": 12345}})
    assert response.status_code == 200
    assert response.json()["attributes"] == {"latency": 12345, "jitter": 100}
    assert response.json()["toxicity"] == 0.75
    response = api.post("/proxies/a/toxics/latency_downstream", {"toxicity": 0.5})
    assert response.json()["toxicity"] == 0.5
    assert response.json()["attributes"] == {"latency": 12345, "jitter": 100}
    ignored = api.post(
        "/proxies/a/toxics/latency_downstream", {"name": "x", "type": "noop", "stream": "upstream"}
    )
    assert ignored.json()["name"] == "latency_downstream"
    assert ignored.json()["type"] == "latency"
    assert api.post("/proxies/a/toxics/nope", {"toxicity": 0.5}).status_code == 404


def test_33_delete_toxic(toxi, api, proxy):
    api.add_toxic("a", "latency", attributes={"latency": 1000})
    response = api.delete("/proxies/a/toxics/latency_downstream")
    assert response.status_code == 204
    assert response.content == b""
    missing = api.get("/proxies/a/toxics/latency_downstream")
    assert missing.status_code == 404
    assert missing.json() == {"error": "toxic not found", "status": 404}
    assert api.delete("/proxies/a/toxics/latency_downstream").status_code == 404
    client_proxy = toxi.get_proxy("a")
    client_proxy.add_toxic(type="noop", name="n")
    assert client_proxy.destroy_toxic("n") is True
    assert client_proxy.toxics() == {}


def test_34_list_order(api, proxy):
    api.add_toxic("a", "noop", name="d1")
    api.add_toxic("a", "noop", name="u1", stream="upstream")
    api.add_toxic("a", "noop", name="d2")
    api.add_toxic("a", "noop", name="u2", stream="upstream")
    names = [toxic["name"] for toxic in api.get("/proxies/a/toxics").json()]
    assert names == ["u1", "u2", "d1", "d2"]
    assert [toxic["name"] for toxic in api.get("/proxies/a").json()["toxics"]] == names


@pytest.mark.parametrize(
    ("type_", "attributes"),
    [
        ("latency", {"latency": 1000, "jitter": 100}),
        ("bandwidth", {"rate": 1000}),
        ("slow_close", {"delay": 1000}),
        ("timeout", {"timeout": 5000}),
        ("slicer", {"average_size": 1000, "size_variation": 1000, "delay": 1000}),
        ("reset_peer", {"timeout": 1000}),
        ("limit_data", {"bytes": 42}),
    ],
)
def test_35_attributes_echoed_exactly(api, proxy, type_, attributes):
    response = api.post("/proxies/a/toxics", {"type": type_, "attributes": attributes})
    assert response.status_code == 200
    assert response.json()["attributes"] == attributes
    assert api.get(f"/proxies/a/toxics/{type_}_downstream").json()["attributes"] == attributes


def test_36_attributes_omitted(api, proxy):
    expected = {
        "latency": {"latency": 0, "jitter": 0},
        "timeout": {"timeout": 0},
        "slow_close": {"delay": 0},
        "reset_peer": {"timeout": 0},
        "limit_data": {"bytes": 0},
        "noop": {},
    }
    for type_, attributes in expected.items():
        response = api.post("/proxies/a/toxics", {"type": type_, "stream": "upstream"})
        assert response.status_code == 200, type_
        assert response.json()["attributes"] == attributes
    for type_ in ("bandwidth", "slicer"):
        response = api.post("/proxies/a/toxics", {"type": type_})
        assert response.status_code == 400, type_
        assert response.json()["error"].startswith("invalid value: ")


def test_disabled_proxy_takes_toxics(api, proxy):
    api.post("/proxies/a", {"enabled": False})
    assert api.add_toxic("a", "latency", attributes={"latency": 5})["name"] == "latency_downstream"
