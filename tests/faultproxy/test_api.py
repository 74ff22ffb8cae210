"""Spec §5 items 1-27: the proxy API, through toxiproxy-python where it covers the call, else raw HTTP."""

from __future__ import annotations

import json
import socket

import pytest
import toxiproxy
from toxiproxy.exceptions import NotFound, ProxyExists

from .support import eof_within, free_port, port_of, refuses, rtt_seconds, wait_for

# Generous bound for "within 100 ms" on a noisy 2-core machine.
PROMPT_SECONDS = 0.5


def test_01_version(toxi, api):
    body = toxi.version()
    assert isinstance(json.loads(body)["version"], str)
    assert json.loads(body)["version"]
    response = api.get("/version")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"


def test_02_fresh_server_has_no_proxies(toxi, api):
    assert toxi.proxies() == {}
    response = api.get("/proxies")
    assert response.status_code == 200
    assert response.json() == {}


def test_03_create_proxy(toxi, api, echo, connect):
    response = api.post(
        "/proxies", {"name": "a", "upstream": f"127.0.0.1:{echo.port}", "listen": "127.0.0.1:0"}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "a"
    assert body["enabled"] is True
    assert body["toxics"] == []
    assert body["upstream"] == f"127.0.0.1:{echo.port}"
    assert body["listen"].startswith("127.0.0.1:")
    assert port_of(body["listen"]) != 0
    assert rtt_seconds(connect(body["listen"])) < 1
    proxy = toxi.create(upstream=f"127.0.0.1:{echo.port}", name="b")
    assert port_of(proxy.listen) != 0
    assert set(toxi.proxies()) == {"a", "b"}


def test_04_duplicate_proxy_is_409(toxi, api, echo):
    body = {"name": "a", "upstream": f"127.0.0.1:{echo.port}", "listen": "127.0.0.1:0"}
    assert api.post("/proxies", body).status_code == 201
    response = api.post("/proxies", body)
    assert response.status_code == 409
    assert response.json() == {"error": "proxy already exists", "status": 409}
    with pytest.raises(ProxyExists):
        toxi.create(upstream=f"127.0.0.1:{echo.port}", name="a")


def test_05_missing_fields_and_bad_body(api):
    response = api.post("/proxies", {"upstream": "127.0.0.1:1"})
    assert (response.status_code, response.json()["error"]) == (400, "missing required field: name")
    response = api.post("/proxies", {"name": "", "upstream": ""})
    assert (response.status_code, response.json()["error"]) == (400, "missing required field: name")
    response = api.post("/proxies", {"name": "a"})
    assert (response.status_code, response.json()["error"]) == (400, "missing required field: upstream")
    response = api.post("/proxies", data=b"{")
    assert response.status_code == 400
    assert response.json()["error"].startswith("bad request body")
    assert response.json()["status"] == 400


def test_06_listen_omitted_or_localhost(api, echo, connect):
    omitted = api.post("/proxies", {"name": "a", "upstream": f"127.0.0.1:{echo.port}"})
    assert omitted.status_code == 201
    assert port_of(omitted.json()["listen"]) != 0
    assert rtt_seconds(connect(omitted.json()["listen"])) < 1
    named = api.create_proxy("b", echo.port, listen="localhost:0")
    assert named["listen"].startswith("127.0.0.1:")
    assert port_of(named["listen"]) != 0


def test_07_created_disabled(api, echo):
    port = free_port()
    response = api.post(
        "/proxies",
        {"name": "a", "upstream": f"127.0.0.1:{echo.port}", "listen": f"127.0.0.1:{port}", "enabled": False},
    )
    assert response.status_code == 201
    assert response.json()["listen"] == f"127.0.0.1:{port}"
    assert response.json()["enabled"] is False
    assert refuses(port)


def test_08_listen_in_use_is_500(api, echo):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        response = api.post(
            "/proxies", {"name": "a", "upstream": f"127.0.0.1:{echo.port}", "listen": f"127.0.0.1:{port}"}
        )
    assert response.status_code == 500
    assert response.json() == {
        "error": f"listen tcp 127.0.0.1:{port}: bind: address already in use",
        "status": 500,
    }
    assert api.get("/proxies/a").status_code == 404


def test_09_get_proxy(api, echo):
    created = api.create_proxy("a", echo.port)
    api.create_proxy("b", echo.port)
    response = api.get("/proxies/a")
    assert response.status_code == 200
    assert response.json() == created
    missing = api.get("/proxies/nope")
    assert missing.status_code == 404
    assert missing.json() == {"error": "proxy not found", "status": 404}
    listing = api.get("/proxies").json()
    assert set(listing) == {"a", "b"}
    assert listing["a"] == created


def test_10_disable_closes_listener_and_connections(toxi, api, manual, connect):
    proxy = toxi.create(upstream=f"127.0.0.1:{manual.port}", name="a")
    client = connect(proxy.listen)
    upstream = manual.accept()
    proxy.disable()
    assert toxi.get_proxy("a").enabled is False
    assert refuses(port_of(proxy.listen))
    assert eof_within(client, PROMPT_SECONDS) < PROMPT_SECONDS
    assert eof_within(upstream, PROMPT_SECONDS) < PROMPT_SECONDS
    response = api.post("/proxies/a", {"enabled": False})
    assert response.status_code == 200


def test_11_enable_rebinds_same_listen(toxi, echo, connect):
    proxy = toxi.create(upstream=f"127.0.0.1:{echo.port}", name="a")
    proxy.disable()
    proxy.enable()
    assert toxi.get_proxy("a").listen == proxy.listen
    assert toxi.get_proxy("a").enabled is True
    assert rtt_seconds(connect(proxy.listen)) < 1


def test_12_patch_behaves_like_post(api, echo):
    api.create_proxy("a", echo.port)
    response = api.patch("/proxies/a", {"enabled": False})
    assert response.status_code == 200
    assert response.json()["enabled"] is False
    api.add_toxic("a", "latency", attributes={"latency": 10})
    response = api.patch("/proxies/a/toxics/latency_downstream", {"attributes": {"latency": 20}})
    assert response.status_code == 200
    assert response.json()["attributes"]["latency"] == 20
    response = api.post("/proxies/a/toxics/latency_downstream", {"attributes": {"latency": 30}})
    assert response.json()["attributes"]["latency"] == 30


def test_13_change_upstream(api, echo, manual, connect):
    created = api.create_proxy("a", echo.port)
    old = connect(created["listen"])
    rtt_seconds(old)
    response = api.post("/proxies/a", {"upstream": f"127.0.0.1:{manual.port}"})
    assert response.status_code == 200
    assert response.json()["upstream"] == f"127.0.0.1:{manual.port}"
    assert response.json()["listen"] == created["listen"]
    assert eof_within(old, PROMPT_SECONDS) < PROMPT_SECONDS
    new = connect(created["listen"])
    upstream = manual.accept()
    new.sendall(b"hello")
    assert upstream.recv(5) == b"hello"


def test_14_change_listen_to_port_zero(api, echo, connect):
    created = api.create_proxy("a", echo.port)
    response = api.post("/proxies/a", {"listen": "127.0.0.1:0"})
    assert response.status_code == 200
    listen = response.json()["listen"]
    assert listen != created["listen"]
    assert port_of(listen) != 0
    assert refuses(port_of(created["listen"]))
    assert rtt_seconds(connect(listen)) < 1


def test_15_same_listen_and_upstream_keeps_connections(api, echo, connect):
    created = api.create_proxy("a", echo.port)
    client = connect(created["listen"])
    rtt_seconds(client)
    response = api.post(
        "/proxies/a", {"listen": created["listen"], "upstream": created["upstream"], "enabled": True}
    )
    assert response.status_code == 200
    assert rtt_seconds(client) < 1
    response = api.post("/proxies/a", {"listen": created["listen"].replace("127.0.0.1", "localhost")})
    assert response.status_code == 200
    assert rtt_seconds(client) < 1


def test_16_update_errors(api, echo):
    response = api.post("/proxies/nope", {"enabled": False})
    assert response.status_code == 404
    assert response.json() == {"error": "proxy not found", "status": 404}
    api.create_proxy("a", echo.port)
    response = api.post("/proxies/a", {"enabled": "no"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("bad request body")


def test_17_unresolvable_upstream_is_never_dialled_by_the_api(toxi, api):
    proxy = toxi.create(upstream="somehost:12345", name="a")
    assert proxy.upstream == "somehost:12345"
    proxy.disable()
    proxy.enable()
    response = api.post("/proxies/a", {"enabled": False, "upstream": "somehost:12345"})
    assert response.status_code == 200
    response = api.post("/proxies/a", {"enabled": True, "upstream": "somehost:12345"})
    assert response.status_code == 200
    assert response.json()["enabled"] is True


def test_18_refusing_upstream_closes_client(api, connect):
    created = api.create_proxy("a", free_port())
    client = connect(created["listen"])
    assert eof_within(client, PROMPT_SECONDS) < PROMPT_SECONDS


def test_19_delete(toxi, api, echo):
    created = api.create_proxy("a", echo.port)
    response = api.delete("/proxies/a")
    assert response.status_code == 204
    assert response.content == b""
    port = port_of(created["listen"])
    assert refuses(port)
    with socket.socket() as rebind:
        rebind.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        rebind.bind(("127.0.0.1", port))
    assert api.delete("/proxies/a").status_code == 404
    proxy = toxi.create(upstream=f"127.0.0.1:{echo.port}", name="b")
    toxi.destroy(proxy)
    with pytest.raises(NotFound):
        proxy.destroy()


def test_20_populate_new(api, echo, connect):
    items = [
        {"name": "one", "upstream": f"127.0.0.1:{echo.port}", "listen": "127.0.0.1:0"},
        {"name": "two", "upstream": f"127.0.0.1:{echo.port}", "listen": "127.0.0.1:0"},
    ]
    response = api.post("/populate", items)
    assert response.status_code == 201
    proxies = response.json()["proxies"]
    assert [p["name"] for p in proxies] == ["one", "two"]
    for proxy in proxies:
        assert proxy["enabled"] is True
        assert rtt_seconds(connect(proxy["listen"])) < 1


def test_21_populate_identical_keeps_toxics_and_connections(api, echo, connect):
    created = api.create_proxy("a", echo.port)
    api.add_toxic("a", "noop")
    client = connect(created["listen"])
    rtt_seconds(client)
    same = {
        "name": "a",
        "upstream": created["upstream"],
        "listen": created["listen"].replace("127.0.0.1", "localhost"),
    }
    response = api.post("/populate", [same])
    assert response.status_code == 201
    assert response.json()["proxies"][0]["toxics"][0]["name"] == "noop_downstream"
    assert rtt_seconds(client) < 1


def test_22_populate_changed_listen_replaces(api, echo, connect):
    created = api.create_proxy("a", echo.port)
    api.add_toxic("a", "noop")
    response = api.post(
        "/populate", [{"name": "a", "upstream": created["upstream"], "listen": "127.0.0.1:0"}]
    )
    assert response.status_code == 201
    proxy = response.json()["proxies"][0]
    assert proxy["toxics"] == []
    assert proxy["listen"] != created["listen"]
    assert refuses(port_of(created["listen"]))
    assert rtt_seconds(connect(proxy["listen"])) < 1


def test_23_populate_checks_every_item_first(api, echo):
    items = [{"name": "one", "upstream": f"127.0.0.1:{echo.port}"}, {"upstream": f"127.0.0.1:{echo.port}"}]
    response = api.post("/populate", items)
    assert response.status_code == 400
    assert response.json()["error"] == "missing required field: name at proxy 2"
    assert response.json()["proxies"] == []
    items = [{"name": "one", "upstream": f"127.0.0.1:{echo.port}"}, {"name": "two"}]
    assert api.post("/populate", items).json()["error"] == "missing required field: upstream at proxy 2"
    assert api.get("/proxies").json() == {}


def test_24_populate_is_not_atomic_on_bind_failure(api, echo):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        items = [
            {"name": "one", "upstream": f"127.0.0.1:{echo.port}", "listen": "127.0.0.1:0"},
            {"name": "two", "upstream": f"127.0.0.1:{echo.port}", "listen": f"127.0.0.1:{port}"},
            {"name": "three", "upstream": f"127.0.0.1:{echo.port}", "listen": "127.0.0.1:0"},
        ]
        response = api.post("/populate", items)
    assert response.status_code == 500
    body = response.json()
    assert body["status"] == 500
    assert "address already in use" in body["error"]
    assert [p["name"] for p in body["proxies"]] == ["one"]
    assert set(api.get("/proxies").json()) == {"one"}


def test_25_populate_disabled_item(api, echo):
    port = free_port()
    item = {
        "name": "a",
        "upstream": f"127.0.0.1:{echo.port}",
        "listen": f"127.0.0.1:{port}",
        "enabled": False,
    }
    response = api.post("/populate", [item])
    assert response.status_code == 201
    assert response.json()["proxies"][0]["enabled"] is False
    assert api.get("/proxies/a").status_code == 200
    assert refuses(port)


def test_26_reset(toxi, api, echo, connect):
    a = api.create_proxy("a", echo.port)
    api.create_proxy("b", echo.port)
    api.add_toxic("a", "latency", attributes={"latency": 10})
    api.add_toxic("b", "noop", stream="upstream")
    api.post("/proxies/b", {"enabled": False})
    response = api.post("/reset")
    assert response.status_code == 204
    assert response.content == b""
    assert toxi.reset() is True
    proxies = api.get("/proxies").json()
    assert set(proxies) == {"a", "b"}
    assert all(p["toxics"] == [] and p["enabled"] for p in proxies.values())
    assert proxies["a"]["listen"] == a["listen"]
    assert rtt_seconds(connect(proxies["b"]["listen"])) < 1


def test_27_unknown_path_wrong_method_browser(api):
    response = api.get("/nope")
    assert response.status_code == 404
    assert response.text.strip() == "404 page not found"
    assert api.request("PUT", "/proxies").status_code == 405
    assert api.get("/reset").status_code == 405
    response = api.get("/proxies", headers={"User-Agent": "Mozilla/5.0 (X11)"})
    assert response.status_code == 403


def test_client_populate_and_destroy_all(toxi, echo):
    """toxiproxy-python's client-side populate deletes and re-creates: ports must re-bind at once."""
    port = free_port()
    listen = f"127.0.0.1:{port}"
    toxi.populate([{"name": "a", "upstream": f"127.0.0.1:{echo.port}", "listen": listen}])
    toxi.populate([{"name": "a", "upstream": f"localhost:{echo.port}", "listen": listen}])
    assert toxi.get_proxy("a").upstream == f"localhost:{echo.port}"
    toxi.destroy_all()
    assert toxi.proxies() == {}
    assert wait_for(lambda: refuses(port))
    assert isinstance(toxi, toxiproxy.Toxiproxy)
