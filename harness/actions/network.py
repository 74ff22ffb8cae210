"""Network faults between regions, applied on the fault proxy (Toxiproxy API) that carries every link.

A link (``configuration["links"]``) is one proxy: clients in its ``from`` region reach a
service in its ``to`` region through it. The proxy's upstream stream carries traffic from
``from`` to ``to``, the downstream stream the replies. Every action names its toxics
``harness-*`` so it never touches the latency toxics that give regions their distance.

The API is spoken with plain HTTP and a timeout on every call: ``toxiproxy-python`` keeps its
server address in class attributes shared by the whole process and sets no timeouts.

Proof of effect is an observation of traffic across the link, never the proxy's own listing:
a request each service answers without credentials (Redis PING, PostgreSQL SSLRequest, an HTTP
health check) is sent through the proxy before the fault and again after it. A partition is
proven when the request answered before and fails after; a latency when the measured round
trip grew by the added amount (±10 %); a degradation when a timed transfer through the link got
slower by at least 90 % of what the toxics add (or, for a timeout toxic, stopped answering).
A link whose service has no such request cannot be observed and leaves the effect unproven.

For a Redis link whose ``from`` region's server replicates from the ``to`` region's, each
action also checks that the replica's replication connection really ends at the proxy (its
master client's peer address in CLIENT LIST) and, for a partition both ways, that the replica
reports ``master_link_status:down`` within a few seconds. A replica that reaches its primary
past the proxy (e.g. Sentinel reconfigured it) leaves the effect unproven, saying so.
"""

from __future__ import annotations

import json
import math
import socket
import statistics
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from harness import ledger
from harness.actions._faults import Proof, close_faults, open_fault, record_effect
from harness.errors import ConfigError, EnvironmentProblem

__all__ = [
    "add_latency",
    "degrade_link",
    "heal_regions",
    "partition_regions",
    "remove_latency",
    "restore_link",
]

_MODULE = "harness.actions.network"
_API_TIMEOUT_SECONDS = 5.0
_STREAMS = ("upstream", "downstream")
PARTITION_TOXIC = "harness-partition"
LATENCY_TOXIC = "harness-latency"
DEGRADE_TYPES = ("bandwidth", "slicer", "timeout")
LATENCY_TOLERANCE = 0.10  # a measured increase within ±10 % of the added round trip proves a latency
DEGRADE_FLOOR = 0.90  # a degraded transfer must slow by at least 90 % of what the toxics add
_ROUND_TRIPS = 3  # samples per measurement; the median is kept (one slow sample is noise)
_NO_ANSWER_SECONDS = 1.0  # a request unanswered this long through a cut link has failed


def partition_regions(
    a: str, b: str, one_way: bool = False, configuration: Mapping[str, Any] | None = None
) -> dict:
    """Cut every fault-proxy link between regions `a` and `b`. Undo with heal_regions.

    Both ways (default): the proxies are disabled, so new connections are refused and open ones
    dropped. `one_way`: only traffic sent from `a` towards `b` is blackholed (a timeout toxic that
    never closes), replies from `b` still flow. Proof of effect, per link: a request that answered
    through the proxy just before the fault fails after it (refused, or no answer within 1 s).
    """
    url, links = _links_between(configuration, a, b)
    proxies = [link["proxy"] for link in links]
    before = {link["proxy"]: _answers(_listen(url, link["proxy"]), link.get("service", "")) for link in links}
    target = f"{a}->{b}" if one_way else _pair(a, b)
    fault_id = _record(configuration, "partition_regions", target, "heal_regions", a, b, url, proxies)
    at = time.monotonic()
    paths = _replication_paths(configuration, links)
    proofs: list[Proof] = [(routed, text) for _, routed, text in paths]
    for link in links:
        proxy = link["proxy"]
        if one_way:
            stream = "upstream" if link["from"] == a else "downstream"
            _put_toxic(url, proxy, PARTITION_TOXIC, "timeout", stream, {"timeout": 0})
            done = f"{stream} blackholed"
        else:
            _call(url, "POST", f"/proxies/{_quote(proxy)}", {"enabled": False})
            done = "disabled"
        after = _answers(_listen(url, proxy), link.get("service", ""))
        proofs.append(_cut_proof(proxy, done, before[proxy], after))
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

    A round trip grows by twice `latency_ms`. Proof of effect, per link: the median round trip of
    a request through the proxy, measured before and after, grew by twice `latency_ms`, ± 10 %. The
    increase is what counts, never the absolute round trip (the link's own distance is in it), so
    a 0 ms latency is never proven.
    """
    latency_ms, jitter_ms = _whole("latency_ms", latency_ms), _whole("jitter_ms", jitter_ms)
    url, links = _links_between(configuration, a, b)
    proxies = [link["proxy"] for link in links]
    before = {link["proxy"]: _median_round_trip(_listen(url, link["proxy"]), link) for link in links}
    fault_id = _record(configuration, "add_latency", _pair(a, b), "remove_latency", a, b, url, proxies)
    at = time.monotonic()
    proofs: list[Proof] = [(routed, text) for _, routed, text in _replication_paths(configuration, links)]
    for link in links:
        proxy = link["proxy"]
        for stream in _STREAMS:
            attributes = {"latency": latency_ms, "jitter": jitter_ms}
            _put_toxic(url, proxy, f"{LATENCY_TOXIC}-{stream}", "latency", stream, attributes)
        after = _median_round_trip(_listen(url, proxy), link)
        proofs.append(
            _latency_proof(proxy, link.get("service", ""), 2 * latency_ms / 1000, before[proxy], after)
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
    Proof of effect, per link: with `timeout_ms`, a request that answered before gets no answer;
    otherwise a Redis ECHO of a payload sized for the toxics is timed before and after, and must
    slow by at least 90 % of the delay the toxics add to it (links of other services cannot carry
    such a transfer: unproven).
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
    payload_bytes, added_seconds = _degraded_transfer(wanted)
    before = {link["proxy"]: _degrade_reading(url, link, wanted, payload_bytes) for link in links}
    fault_id = _record(configuration, "degrade_link", _pair(a, b), "restore_link", a, b, url, proxies)
    at = time.monotonic()
    proofs: list[Proof] = [(routed, text) for _, routed, text in _replication_paths(configuration, links)]
    for link in links:
        proxy = link["proxy"]
        for type_, attributes in wanted.items():
            for stream in _STREAMS:
                _put_toxic(url, proxy, f"harness-{type_}-{stream}", type_, stream, attributes)
        after = _degrade_reading(url, link, wanted, payload_bytes)
        if "timeout" in wanted:
            proofs.append(_cut_proof(proxy, "timeout toxics", before[proxy], after))
        else:
            proofs.append(_degrade_proof(proxy, link.get("service", ""), payload_bytes, added_seconds,
                                         before[proxy], after))  # fmt: skip
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
    return open_fault(configuration, f"{_MODULE}.{action}", target, ledger.Undo(_MODULE, undo, arguments))


def _finish(
    configuration: Mapping[str, Any] | None,
    fault_id: str,
    proofs: list[Proof],
    at_monotonic: float,
    **detail: Any,
) -> dict:
    return record_effect(configuration, fault_id, proofs, at_monotonic=at_monotonic, **detail)


def _close(configuration: Mapping[str, Any] | None, action: str, targets: Sequence[str]) -> None:
    for target in targets:
        close_faults(configuration, (f"{_MODULE}.{action}",), target)


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


def _listen(url: str, proxy: str) -> tuple[str, int]:
    listen = _call(url, "GET", f"/proxies/{_quote(proxy)}")["listen"]
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


# ---------------------------------------------------------------- proof of effect

# A request each service answers at once, without credentials.
_HELLO = {
    "redis": b"PING\r\n",
    "postgres": struct.pack("!ii", 8, 80877103),  # SSLRequest: the server answers one byte, S or N
    "http": b"GET /api/v1/health HTTP/1.0\r\nHost: harness\r\n\r\n",
    "api": b"GET /api/v1/health HTTP/1.0\r\nHost: harness\r\n\r\n",
}


def _answers(address: tuple[str, int], service: str) -> str:
    """What a request through the proxy met: "answered", "refused", "no answer" or "closed"; for a
    service with no request to send, "accepted" when the connection alone succeeded."""
    try:
        connection = socket.create_connection(address, timeout=_NO_ANSWER_SECONDS)
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "no answer"
    with connection:
        if service not in _HELLO:
            return "accepted"
        connection.settimeout(_NO_ANSWER_SECONDS)
        try:
            connection.sendall(_HELLO[service])
            return "answered" if connection.recv(1) else "closed"
        except TimeoutError:
            return "no answer"
        except OSError:
            return "closed"


_THROUGH = ("answered", "accepted")


def _cut_proof(proxy: str, done: str, before: str, after: str) -> Proof:
    """A cut is observed when a connection or request that went through before the fault fails after
    it. A link whose service has no request is observed by connections alone: a refusal proves a
    cut, an accepted connection proves nothing about data (a one-way blackhole)."""
    if before not in _THROUGH:
        return (
            False,
            f"{proxy}: {done}; a request got '{before}' before the fault too, so the cut is unobserved",
        )
    if after in _THROUGH:
        still = (
            "a request through it still answered"
            if after == "answered"
            else ("connections are still accepted and its service has no request to send")
        )
        return False, f"{proxy}: {done}; {still}"
    return True, f"{proxy}: {done}; a request went through before, got '{after}' after"


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


def _median_round_trip(address: tuple[str, int], link: Mapping[str, Any]) -> float | None:
    """The median of a few round trips through the proxy; None when any got no answer within 5 s."""
    trips = [_round_trip_seconds(address, link.get("service", ""), 5.0) for _ in range(_ROUND_TRIPS)]
    if any(trip is None for trip in trips):
        return None
    return statistics.median(t for t in trips if t is not None)


def latency_is_proven(expected_seconds: float, before: float, after: float) -> bool:
    """Whether the round trip grew from `before` to `after` by `expected_seconds` ± 10 % (never for 0)."""
    return (
        expected_seconds > 0
        and abs((after - before) - expected_seconds) <= LATENCY_TOLERANCE * expected_seconds
    )


def _latency_proof(
    proxy: str, service: str, expected_seconds: float, before: float | None, after: float | None
) -> Proof:
    if service not in _HELLO:
        return False, f"{proxy}: its service {service!r} has no request to time, the latency is unobserved"
    if before is None or after is None:
        when = "before" if before is None else "after"
        return False, f"{proxy}: no answer through the proxy {when} the latency was added"
    increase = after - before
    held = latency_is_proven(expected_seconds, before, after)
    return held, (
        f"{proxy}: round trip {before * 1000:.1f} -> {after * 1000:.1f} ms "
        f"({increase * 1000:+.1f} ms, expected {expected_seconds * 1000:+.1f} ms ± 10 %)"
    )


def _degraded_transfer(wanted: Mapping[str, Mapping[str, int]]) -> tuple[int, float]:
    """A payload size for a timed Redis ECHO and the seconds the toxics add to its round trip
    (the payload crosses each toxic twice: request and reply)."""
    payload, added = 0, 0.0
    if "bandwidth" in wanted:
        bytes_per_second = wanted["bandwidth"]["rate"] * 1000
        payload = max(payload, min(1_000_000, max(1000, bytes_per_second // 10)))  # about 0.1 s a way
    if "slicer" in wanted and wanted["slicer"]["delay"] > 0:
        size, delay = wanted["slicer"]["average_size"], wanted["slicer"]["delay"] / 1_000_000
        payload = max(payload, min(1_000_000, size * max(2, math.ceil(0.1 / delay))))
    if "bandwidth" in wanted:
        added += 2 * payload / (wanted["bandwidth"]["rate"] * 1000)
    if "slicer" in wanted and wanted["slicer"]["delay"] > 0:
        slices = payload // (wanted["slicer"]["average_size"] + wanted["slicer"].get("size_variation", 0))
        added += 2 * slices * wanted["slicer"]["delay"] / 1_000_000
    return payload, added


def _echo_seconds(address: tuple[str, int], size: int, timeout_seconds: float = 10.0) -> float | None:
    """Seconds for a Redis ECHO of `size` bytes through the proxy, reply read in full; None: failed."""
    payload = b"x" * size
    command = b"*2\r\n$4\r\nECHO\r\n$%d\r\n%s\r\n" % (size, payload)
    expected = len(b"$%d\r\n" % size) + size + 2
    try:
        with socket.create_connection(address, timeout=timeout_seconds) as connection:
            connection.settimeout(timeout_seconds)
            connection.sendall(b"PING\r\n")  # connected and answering before the clock starts
            if not connection.recv(16):
                return None
            started = time.monotonic()
            connection.sendall(command)
            received = 0
            while received < expected:
                chunk = connection.recv(65536)
                if not chunk:
                    return None
                received += len(chunk)
            return time.monotonic() - started
    except OSError:
        return None


def _degrade_reading(
    url: str, link: Mapping[str, Any], wanted: Mapping[str, Any], payload_bytes: int
) -> str | float | None:
    """For a timeout toxic, what a request met; otherwise the median ECHO time (None: failed or not Redis)."""
    address = _listen(url, link["proxy"])
    if "timeout" in wanted:
        return _answers(address, link.get("service", ""))
    if link.get("service") != "redis" or payload_bytes == 0:
        return None
    trips = [_echo_seconds(address, payload_bytes) for _ in range(_ROUND_TRIPS)]
    return None if any(t is None for t in trips) else statistics.median(t for t in trips if t is not None)


def _degrade_proof(
    proxy: str, service: str, payload_bytes: int, added_seconds: float, before: Any, after: Any
) -> Proof:
    if payload_bytes == 0 or added_seconds <= 0:
        return False, f"{proxy}: the toxics add no delay a client can time (a slicer without delay)"
    if service != "redis":
        return (
            False,
            f"{proxy}: its service {service!r} carries no timed transfer, the degradation is unobserved",
        )
    if before is None or after is None:
        when = "before" if before is None else "after"
        return False, f"{proxy}: a {payload_bytes} B ECHO through the proxy failed {when} the degradation"
    held = after - before >= DEGRADE_FLOOR * added_seconds
    return held, (
        f"{proxy}: a {payload_bytes} B ECHO took {before * 1000:.1f} -> {after * 1000:.1f} ms "
        f"({(after - before) * 1000:+.1f} ms, the toxics add about {added_seconds * 1000:.1f} ms)"
    )


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
