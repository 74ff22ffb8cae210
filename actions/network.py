"""Network faults between regions, applied on the fault proxy (Toxiproxy API) that carries every link.

A link (``configuration["links"]``) is one proxy: clients in its ``from`` region reach a
service in its ``to`` region through it. The proxy's upstream stream carries traffic from
``from`` to ``to``, the downstream stream the replies. Every action names its toxics
``harness-*`` so it never touches the latency toxics that give regions their distance.

The API is spoken with plain HTTP and a timeout on every call: ``toxiproxy-python`` keeps its
server address in class attributes shared by the whole process and sets no timeouts.

A proxy that refuses or delays proves the proxy, not the path. For a Redis link whose
``from`` region's server replicates from the ``to`` region's, each action also checks that
the replica's replication connection really ends at the proxy (its master client's peer
address in CLIENT LIST) and, for a partition both ways, that the replica reports
``master_link_status:down`` within a few seconds. A replica that reaches its primary past
the proxy (e.g. Sentinel reconfigured it) leaves the effect unproven, saying so.
"""

from __future__ import annotations

import json
import socket
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from harness import ledger
from harness.errors import ConfigError, EnvironmentProblem

__all__ = [
    "add_latency",
    "degrade_link",
    "heal_regions",
    "partition_regions",
    "remove_latency",
    "restore_link",
]

_MODULE = "actions.network"
_API_TIMEOUT_SECONDS = 5.0
_STREAMS = ("upstream", "downstream")
PARTITION_TOXIC = "harness-partition"
LATENCY_TOXIC = "harness-latency"
DEGRADE_TYPES = ("bandwidth", "slicer", "timeout")


def partition_regions(
    a: str, b: str, one_way: bool = False, configuration: Mapping[str, Any] | None = None
) -> dict:
    """Cut every fault-proxy link between regions `a` and `b`. Undo with heal_regions.

    Both ways (default): the proxies are disabled, so new connections are refused and open ones
    dropped. `one_way`: only traffic sent from `a` towards `b` is blackholed (a timeout toxic that
    never closes), replies from `b` still flow. Proof of effect: refused connections, or no
    answer through the proxy within 1 s.
    """
    url, links = _links_between(configuration, a, b)
    proxies = [link["proxy"] for link in links]
    target = f"{a}->{b}" if one_way else _pair(a, b)
    fault_id = _record(configuration, "partition_regions", target, "heal_regions", a, b, url, proxies)
    at = time.monotonic()
    paths = _replication_paths(configuration, links)
    proofs = [(routed, text) for _, routed, text in paths]
    for link in links:
        proxy = link["proxy"]
        if one_way:
            stream = "upstream" if link["from"] == a else "downstream"
            _put_toxic(url, proxy, PARTITION_TOXIC, "timeout", stream, {"timeout": 0})
            if link.get("service") in _HELLO:
                round_trip = _round_trip_seconds(_listen(url, proxy), link["service"], timeout_seconds=1.0)
                blocked = round_trip is None
                seen = "no answer within 1 s" if blocked else f"answered in {round_trip * 1000:.0f} ms"
            else:
                blocked = _toxic_listed(url, proxy, PARTITION_TOXIC)
                seen = "toxic listed by the proxy" if blocked else "toxic missing"
            proofs.append((blocked, f"{proxy}: {stream} blackholed, {seen}"))
        else:
            _call(url, "POST", f"/proxies/{_quote(proxy)}", {"enabled": False})
            refused = _refuses(_listen(url, proxy))
            seen = "connections refused" if refused else "still accepts connections"
            proofs.append((refused, f"{proxy}: disabled, {seen}"))
    if not one_way:
        proofs += [_link_goes_down(path) for path, routed, _ in paths if routed]
    return _finish(configuration, fault_id, proofs, at, a=a, b=b, one_way=one_way, proxies=proxies)


def heal_regions(
    a: str,
    b: str,
    faultproxy_url: str | None = None,
    proxies: Sequence[str] | None = None,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Restore the links partition_regions cut between `a` and `b` (either mode). Safe to call twice."""
    url, names = _proxies(configuration, a, b, faultproxy_url, proxies)
    for proxy in names:
        _call(url, "POST", f"/proxies/{_quote(proxy)}", {"enabled": True})
        _delete_toxic(url, proxy, PARTITION_TOXIC)
    _close(configuration, "partition_regions", (_pair(a, b), f"{a}->{b}", f"{b}->{a}"))
    return {"a": a, "b": b, "proxies": names, "healed": True}


def add_latency(
    a: str, b: str, latency_ms: int, jitter_ms: int = 0, configuration: Mapping[str, Any] | None = None
) -> dict:
    """Delay traffic between `a` and `b` by `latency_ms` (± `jitter_ms`) each way. Undo: remove_latency.

    A round trip grows by twice `latency_ms`. Proof of effect: a round trip through each proxy
    (Redis PING, PostgreSQL SSLRequest, HTTP request) takes at least `latency_ms`.
    """
    latency_ms, jitter_ms = _whole("latency_ms", latency_ms), _whole("jitter_ms", jitter_ms)
    url, links = _links_between(configuration, a, b)
    proxies = [link["proxy"] for link in links]
    fault_id = _record(configuration, "add_latency", _pair(a, b), "remove_latency", a, b, url, proxies)
    at = time.monotonic()
    proofs = [(routed, text) for _, routed, text in _replication_paths(configuration, links)]
    for link in links:
        proxy = link["proxy"]
        for stream in _STREAMS:
            attributes = {"latency": latency_ms, "jitter": jitter_ms}
            _put_toxic(url, proxy, f"{LATENCY_TOXIC}-{stream}", "latency", stream, attributes)
        round_trip = _round_trip_seconds(_listen(url, proxy), link.get("service", ""), timeout_seconds=5.0)
        if round_trip is not None:
            raised = round_trip * 1000 >= latency_ms
            proofs.append(
                (
                    raised,
                    f"{proxy}: round trip {round_trip * 1000:.0f} ms with {latency_ms} ms added each way",
                )
            )
        elif link.get("service") in _HELLO:
            proofs.append((False, f"{proxy}: no answer through the proxy within 5 s"))
        else:
            listed = all(_toxic_listed(url, proxy, f"{LATENCY_TOXIC}-{stream}") for stream in _STREAMS)
            proofs.append(
                (listed, f"{proxy}: latency toxics " + ("listed by the proxy" if listed else "missing"))
            )
    return _finish(configuration, fault_id, proofs, at, a=a, b=b, latency_ms=latency_ms, proxies=proxies)


def remove_latency(
    a: str,
    b: str,
    faultproxy_url: str | None = None,
    proxies: Sequence[str] | None = None,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Remove the latency add_latency put between `a` and `b`. Safe to call twice."""
    url, names = _proxies(configuration, a, b, faultproxy_url, proxies)
    for proxy in names:
        for stream in _STREAMS:
            _delete_toxic(url, proxy, f"{LATENCY_TOXIC}-{stream}")
    _close(configuration, "add_latency", (_pair(a, b),))
    return {"a": a, "b": b, "proxies": names, "removed": True}


def degrade_link(
    a: str,
    b: str,
    bandwidth_kb_per_second: int | None = None,
    slice_average_bytes: int | None = None,
    slice_delay_us: int = 0,
    timeout_ms: int | None = None,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Degrade the links between `a` and `b` in both directions. Undo with restore_link.

    `bandwidth_kb_per_second` caps throughput (1 KB = 1000 B); `slice_average_bytes` cuts data
    into small pieces with `slice_delay_us` between them; `timeout_ms` blackholes data and
    closes connections after that long without traffic (0: never closes). At least one is needed.
    Proof of effect: the proxy lists every toxic with the asked attributes.
    """
    wanted: dict[str, dict[str, int]] = {}
    if bandwidth_kb_per_second is not None:
        wanted["bandwidth"] = {"rate": _positive("bandwidth_kb_per_second", bandwidth_kb_per_second)}
    if slice_average_bytes is not None:
        wanted["slicer"] = {
            "average_size": _positive("slice_average_bytes", slice_average_bytes),
            "delay": _whole("slice_delay_us", slice_delay_us),
        }
    if timeout_ms is not None:
        wanted["timeout"] = {"timeout": _whole("timeout_ms", timeout_ms)}
    if not wanted:
        raise ConfigError(
            "arguments", "degrade_link", "expected bandwidth_kb_per_second, slice_average_bytes or timeout_ms"
        )
    url, links = _links_between(configuration, a, b)
    proxies = [link["proxy"] for link in links]
    fault_id = _record(configuration, "degrade_link", _pair(a, b), "restore_link", a, b, url, proxies)
    at = time.monotonic()
    proofs = [(routed, text) for _, routed, text in _replication_paths(configuration, links)]
    for proxy in proxies:
        for type_, attributes in wanted.items():
            for stream in _STREAMS:
                _put_toxic(url, proxy, f"harness-{type_}-{stream}", type_, stream, attributes)
        listed = {t["name"]: t for t in _call(url, "GET", f"/proxies/{_quote(proxy)}/toxics")}
        present = all(
            listed.get(f"harness-{type_}-{stream}", {}).get("attributes", {}).items() >= attributes.items()
            for type_, attributes in wanted.items()
            for stream in _STREAMS
        )
        state = "in place" if present else "not all in place"
        proofs.append((present, f"{proxy}: {', '.join(wanted)} toxics {state}"))
    return _finish(configuration, fault_id, proofs, at, a=a, b=b, toxics=wanted, proxies=proxies)


def restore_link(
    a: str,
    b: str,
    faultproxy_url: str | None = None,
    proxies: Sequence[str] | None = None,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Remove every toxic degrade_link put between `a` and `b`. Safe to call twice."""
    url, names = _proxies(configuration, a, b, faultproxy_url, proxies)
    for proxy in names:
        for type_ in DEGRADE_TYPES:
            for stream in _STREAMS:
                _delete_toxic(url, proxy, f"harness-{type_}-{stream}")
    _close(configuration, "degrade_link", (_pair(a, b),))
    return {"a": a, "b": b, "proxies": names, "restored": True}


# ---------------------------------------------------------------- configuration


def _pair(a: str, b: str) -> str:
    first, second = sorted((a, b))
    return f"{first}<->{second}"


def _faultproxy_url(configuration: Mapping[str, Any] | None) -> str:
    url = (configuration or {}).get("faultproxy_url")
    if not url:
        raise ConfigError(
            "configuration", "faultproxy_url", "expected the fault proxy's API URL (sandbox endpoints.json)"
        )
    return str(url).rstrip("/")


def _links_between(
    configuration: Mapping[str, Any] | None, a: str, b: str
) -> tuple[str, list[Mapping[str, Any]]]:
    """The fault-proxy URL and every link joining regions `a` and `b`, in either direction."""
    url = _faultproxy_url(configuration)
    links = (configuration or {}).get("links") or {}
    if not isinstance(links, Mapping):
        raise ConfigError(
            "configuration", "links", f"expected a mapping of link name to proxy, got {type(links).__name__}"
        )
    between = [link for link in links.values() if {link.get("from"), link.get("to")} == {a, b}]
    if a == b or not between:
        known = sorted({f"{link.get('from')}<->{link.get('to')}" for link in links.values()})
        raise ConfigError(
            "configuration", "links", f"no fault-proxy link between {a!r} and {b!r} (links: {known})"
        )
    return url, between


def _proxies(
    configuration: Mapping[str, Any] | None, a: str, b: str, url: str | None, names: Sequence[str] | None
) -> tuple[str, list[str]]:
    """For inverses: the given url and proxies (a ledger undo), else those of the configuration."""
    if url and names is not None:
        return url.rstrip("/"), list(names)
    found_url, links = _links_between(configuration, a, b)
    return url or found_url, [link["proxy"] for link in links]


def _whole(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError("arguments", name, f"expected a whole number ≥ 0, got {value!r}")
    return value


def _positive(name: str, value: Any) -> int:
    if _whole(name, value) < 1:
        raise ConfigError("arguments", name, f"expected a whole number ≥ 1, got {value!r}")
    return value


# ---------------------------------------------------------------- ledger


def _record(
    configuration: Mapping[str, Any] | None,
    action: str,
    target: str,
    undo: str,
    a: str,
    b: str,
    url: str,
    proxies: list[str],
) -> str:
    arguments = {"a": a, "b": b, "faultproxy_url": url, "proxies": proxies}
    return ledger.record_applied(
        ledger.state_dir(configuration),
        f"{_MODULE}.{action}",
        target,
        ledger.Undo(_MODULE, undo, arguments),
        run_id=(configuration or {}).get("run_id"),
    )


def _finish(
    configuration: Mapping[str, Any] | None,
    fault_id: str,
    proofs: list[tuple[bool, str]],
    at_monotonic: float,
    **detail: Any,
) -> dict:
    proven = all(ok for ok, _ in proofs)
    evidence = "; ".join(text for _, text in proofs)
    ledger.record_effect(ledger.state_dir(configuration), fault_id, proven, evidence)
    return {
        "fault_id": fault_id,
        "effect_proven": proven,
        "evidence": evidence,
        "at_monotonic": at_monotonic,
        **detail,
    }


def _close(configuration: Mapping[str, Any] | None, action: str, targets: Sequence[str]) -> None:
    directory = ledger.state_dir(configuration)
    for target in targets:
        while (fault := ledger.open_fault_for(directory, f"{_MODULE}.{action}", target)) is not None:
            ledger.record_undone(directory, fault.fault_id)


# ---------------------------------------------------------------- the fault proxy's API


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _call(url: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=_API_TIMEOUT_SECONDS) as response:
            text = response.read()
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace").strip()
        raise EnvironmentProblem(f"fault proxy {method} {path}: HTTP {error.code} {detail}") from None
    except (urllib.error.URLError, OSError) as error:
        raise EnvironmentProblem(f"fault proxy at {url} unreachable: {error}") from None
    return json.loads(text) if text.strip() else None


def _put_toxic(url: str, proxy: str, name: str, type_: str, stream: str, attributes: dict[str, int]) -> None:
    """Create the toxic, replacing one of the same name (so applying twice is harmless)."""
    _delete_toxic(url, proxy, name)
    body = {"name": name, "type": type_, "stream": stream, "toxicity": 1.0, "attributes": attributes}
    _call(url, "POST", f"/proxies/{_quote(proxy)}/toxics", body)


def _delete_toxic(url: str, proxy: str, name: str) -> None:
    request = urllib.request.Request(f"{url}/proxies/{_quote(proxy)}/toxics/{_quote(name)}", method="DELETE")
    try:
        with urllib.request.urlopen(request, timeout=_API_TIMEOUT_SECONDS):
            pass
    except urllib.error.HTTPError as error:
        if error.code != 404:  # absent already: nothing to undo
            raise EnvironmentProblem(
                f"fault proxy DELETE toxic {name} on {proxy}: HTTP {error.code}"
            ) from None
    except (urllib.error.URLError, OSError) as error:
        raise EnvironmentProblem(f"fault proxy at {url} unreachable: {error}") from None


def _toxic_listed(url: str, proxy: str, name: str) -> bool:
    return any(t["name"] == name for t in _call(url, "GET", f"/proxies/{_quote(proxy)}/toxics"))


def _listen(url: str, proxy: str) -> tuple[str, int]:
    listen = _call(url, "GET", f"/proxies/{_quote(proxy)}")["listen"]
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


# ---------------------------------------------------------------- proof of effect


def _refuses(address: tuple[str, int], within_seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + within_seconds
    while True:
        try:
            with socket.create_connection(address, timeout=0.5):
                pass
        except OSError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


# A request each service answers at once, without credentials.
_HELLO = {
    "redis": b"PING\r\n",
    "postgres": struct.pack("!ii", 8, 80877103),  # SSLRequest: the server answers one byte, S or N
    "http": b"GET /api/v1/health HTTP/1.0\r\nHost: harness\r\n\r\n",
    "api": b"GET /api/v1/health HTTP/1.0\r\nHost: harness\r\n\r\n",
}


def _round_trip_seconds(address: tuple[str, int], service: str, timeout_seconds: float) -> float | None:
    """Seconds from sending a hello through the proxy to the first byte back; None: no answer in time."""
    hello = _HELLO.get(service)
    if hello is None:
        return None
    try:
        with socket.create_connection(address, timeout=timeout_seconds) as connection:
            connection.settimeout(timeout_seconds)
            sent = time.monotonic()
            connection.sendall(hello)
            if not connection.recv(1):
                return None
            return time.monotonic() - sent
    except OSError:
        return None


# ---------------------------------------------------------------- replication paths


def _redis_address(configuration: Mapping[str, Any] | None, region: str) -> tuple[str, int] | None:
    url = ((configuration or {}).get("regions") or {}).get(region, {}).get("redis_url")
    if not url:
        return None
    parts = urllib.parse.urlsplit(url)
    return (parts.hostname or "127.0.0.1"), (parts.port or 6379)


def _redis(address: tuple[str, int]) -> redis.Redis:
    return redis.Redis(
        host=address[0], port=address[1], socket_timeout=1, socket_connect_timeout=1, decode_responses=True
    )


def _replication_paths(
    configuration: Mapping[str, Any] | None, links: Sequence[Mapping[str, Any]]
) -> list[tuple[tuple[str, tuple[str, int]], bool, str]]:
    """For each Redis link whose `from` server replicates from its `to` server: that replica, whether
    its replication connection ends at the link's proxy, and a sentence saying which way it goes.

    Links that carry no replication now (or whose servers the configuration does not name) are left out.
    """
    paths = []
    for link in links:
        if link.get("service") != "redis" or not link.get("listen"):
            continue
        replica, upstream = (
            _redis_address(configuration, link["from"]),
            _redis_address(configuration, link["to"]),
        )
        if replica is None or upstream is None:
            continue
        listen = str(link["listen"])
        try:
            with _redis(replica) as client:
                info = client.info("replication")
                peers = [c["addr"] for c in client.client_list() if "M" in c.get("flags", "")]
        except (redis.RedisError, OSError):
            continue
        told = f"{info.get('master_host')}:{info.get('master_port')}"
        if info.get("role") != "slave" or told not in (f"{upstream[0]}:{upstream[1]}", listen):
            continue
        who = f"{link['from']} replica"
        if not peers:
            routed, text = (
                False,
                f"{who}: not connected to {told}, replication through {link['proxy']} unseen",
            )
        elif peers[0] == listen:
            routed, text = True, f"{who} replicates from {told} through proxy {link['proxy']} ({listen})"
        else:
            routed = False
            text = (
                f"{who} replicates from {peers[0]} directly (Sentinel reconfigured it), "
                f"not through proxy {link['proxy']} ({listen})"
            )
        paths.append(((link["from"], replica), routed, text))
    return paths


def _link_goes_down(path: tuple[str, tuple[str, int]], within_seconds: float = 5.0) -> tuple[bool, str]:
    """Whether the region's replica reports its link to the primary down within `within_seconds`."""
    region, address = path
    started = time.monotonic()
    status = "unknown"
    while time.monotonic() - started < within_seconds:
        try:
            with _redis(address) as client:
                status = client.info("replication").get("master_link_status", "none")
        except (redis.RedisError, OSError) as error:
            status = f"unreachable ({error})"
        if status == "down":
            return True, f"{region} replica: master_link_status down after {time.monotonic() - started:.1f} s"
        time.sleep(0.05)
    return False, f"{region} replica: master_link_status still {status} after {within_seconds:g} s"
