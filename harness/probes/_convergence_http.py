"""The convergence probe's HTTP transport: one region of an active-active service, over HTTP.

The contract (``base`` = the region's ``convergence_url``; JSON bodies and answers; every key and
element id is the probe's own, ``<token>/e<epoch:06d>/...``):

* ``POST {base}/elements`` ``{"id": ID, "origin": REGION}`` → any 2xx: the element is stored.
* ``POST {base}/registers`` ``{"key": K, "value": V, "origin": REGION}`` → 2xx
  ``{"prev": <the value the region held for K before this write, read in the same transaction,
  or null>, "commit_us": <the commit timestamp last-write-wins compares, µs since 1970>}``.
* ``POST {base}/elements/held`` ``{"ids": [ID, ...]}`` (at most 2000) → 2xx
  ``{"held": [the ids of the list the region holds]}``.
* ``GET {base}/range?low=L&high=H`` → 2xx ``{"elements": [ID, ...], "registers": {K: {"value": V,
  "origin": REGION, "commit_us": N}}}``: everything with L ≤ id/key < H in byte order, each
  register with the commit timestamp of the write the region holds (its origin's, as replicated).

The probe computes each epoch's digest from ``range`` itself, with the formula the PostgreSQL
transport's query uses (md5 over the epoch's sorted ``E<id>`` and ``R<key>=<value>``), so the two
transports digest identical data identically and a service need not implement it.

Bad answers never become evidence: a non-2xx, a body that is not the JSON above, or an id or key
outside what was asked raises `BadAnswer`, which the probe records like an unreachable region
(the write is not acknowledged, the read is missing). A 2xx to a register write whose body lacks
`prev` or an integer `commit_us` is acknowledged (the service said it committed) without a commit
timestamp, and names the problem: grading then cannot judge last-write-wins (unknown).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness.probes.convergence import RegisterAck, RegisterRow

__all__: list[str] = []  # a transport, not an activity

TIMEOUT_SECONDS = 1.0  # as the PostgreSQL transport's statement timeout
_MAX_ANSWER_BYTES = 64 * 1024 * 1024


class BadAnswer(Exception):
    """An answer that breaks the contract: not evidence."""


def check_url(url: Any) -> str:
    """`url` if it is an absolute http(s) URL with a host (and a valid port); else the reason."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {url!r}")
    try:
        parts.port  # noqa: B018 — raises ValueError for a port that is not a number 0..65535
    except ValueError as error:
        raise ValueError(f"expected a port number in {url!r}: {error}") from None
    if parts.query or parts.fragment:
        raise ValueError(f"expected a base URL without query or fragment, got {url!r}")
    return url.strip().rstrip("/")


# ---------------------------------------------------------------- answers (pure)


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadAnswer(f"{what}: not JSON ({error}): {body[:80]!r}") from None


def _stamp(value: Any) -> int | None:
    """A commit timestamp in µs since 1970, or None (booleans and fractions are not one)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def parse_register_ack(body: bytes) -> RegisterAck:
    """The answer to an acknowledged (2xx) register write."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        return RegisterAck(None, None, f"register write answered 2xx but not JSON ({error})")
    if not isinstance(payload, Mapping):
        return RegisterAck(None, None, "register write answered 2xx but not a JSON object")
    prev = payload.get("prev")
    if "prev" not in payload or (prev is not None and not isinstance(prev, str)):
        return RegisterAck(
            None, None, f"register write answer: expected prev (a string or null), got {prev!r}"
        )
    commit_us = _stamp(payload.get("commit_us"))
    if commit_us is None:
        problem = (
            f"register write answer: expected commit_us (µs since 1970), got {payload.get('commit_us')!r}"
        )
        return RegisterAck(prev, None, problem)
    return RegisterAck(prev, commit_us)


def parse_held(body: bytes, asked: Iterable[str]) -> set[str]:
    """The ids of `asked` the region holds."""
    payload = _json(body, "elements/held")
    held = payload.get("held") if isinstance(payload, Mapping) else None
    if not isinstance(held, list) or not all(isinstance(i, str) for i in held):
        raise BadAnswer(f"elements/held: expected {{'held': [ids]}}, got {str(payload)[:80]}")
    unasked = set(held) - set(asked)
    if unasked:
        raise BadAnswer(f"elements/held: answered ids it was not asked about ({sorted(unasked)[0]!r})")
    return set(held)


def _in_range(key: str, low: str, high: str) -> bool:
    return low.encode() <= key.encode() < high.encode()


def parse_range(body: bytes, low: str, high: str) -> tuple[set[str], dict[str, RegisterRow]]:
    """The elements and registers of [low, high) a region holds."""
    payload = _json(body, "range")
    if not isinstance(payload, Mapping):
        raise BadAnswer("range: expected a JSON object with elements and registers")
    elements, registers = payload.get("elements"), payload.get("registers")
    if not isinstance(elements, list) or not all(isinstance(i, str) for i in elements):
        raise BadAnswer("range: expected elements, a list of ids")
    if not isinstance(registers, Mapping):
        raise BadAnswer("range: expected registers, an object of key → {value, origin, commit_us}")
    rows: dict[str, RegisterRow] = {}
    for key, row in registers.items():
        if not isinstance(row, Mapping) or not isinstance(row.get("value"), str):
            raise BadAnswer(f"range: register {key!r}: expected a value")
        if not isinstance(row.get("origin"), str):
            raise BadAnswer(f"range: register {key!r}: expected an origin")
        # A row without its commit timestamp would hide a survivor older than an acknowledged
        # write (a last-write-wins violation): the answer is not evidence.
        commit_us = _stamp(row.get("commit_us"))
        if commit_us is None:
            raise BadAnswer(f"range: register {key!r}: expected commit_us, got {row.get('commit_us')!r}")
        rows[str(key)] = RegisterRow(row["value"], row["origin"], commit_us)
    outside = [k for k in [*elements, *rows] if not _in_range(k, low, high)]
    if outside:
        raise BadAnswer(f"range: {outside[0]!r} is outside [{low!r}, {high!r})")
    return set(elements), rows


def digests(elements: Iterable[str], registers: Mapping[str, RegisterRow]) -> dict[str, tuple[str, int]]:
    """Per epoch label: (md5, rows), exactly as the PostgreSQL transport's digest query."""
    groups: dict[str, list[bytes]] = {}
    rows = [f"E{i}" for i in elements] + [f"R{k}={r.value}" for k, r in registers.items()]
    for row in rows:
        parts = row.split("/")
        groups.setdefault(parts[1] if len(parts) > 1 else "", []).append(row.encode())
    return {
        label: (hashlib.md5(b",".join(sorted(found)), usedforsecurity=False).hexdigest(), len(found))
        for label, found in groups.items()
    }


# ---------------------------------------------------------------- the endpoint


class HttpEndpoint:
    """A region's convergence contract over HTTP; one kept-alive connection, reopened after an error."""

    def __init__(self, base_url: str) -> None:
        self.base_url = check_url(base_url)
        parts = urllib.parse.urlsplit(self.base_url)
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname or "", parts.port
        self._path = parts.path.rstrip("/")
        self._connection: http.client.HTTPConnection | None = None

    def _request(self, method: str, path: str, payload: Any = None) -> tuple[int, bytes]:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._connection = kind(self._host, self._port, timeout=TIMEOUT_SECONDS)
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            self._connection.request(method, self._path + path, body=body, headers=headers)
            response = self._connection.getresponse()
            data = response.read(_MAX_ANSWER_BYTES + 1)
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if len(data) > _MAX_ANSWER_BYTES or response.will_close:
            self.close()
        return response.status, data

    def _ok(self, method: str, path: str, payload: Any = None) -> bytes:
        status, data = self._request(method, path, payload)
        if not 200 <= status < 300:
            raise BadAnswer(f"{method} {path.split('?')[0]}: HTTP {status}: {data[:120]!r}")
        return data

    def add_element(self, element_id: str, origin: str) -> None:
        self._ok("POST", "/elements", {"id": element_id, "origin": origin})

    def write_register(self, key: str, value: str, origin: str) -> RegisterAck:
        return parse_register_ack(
            self._ok("POST", "/registers", {"key": key, "value": value, "origin": origin})
        )

    def held_elements(self, ids: Sequence[str]) -> set[str]:
        return parse_held(self._ok("POST", "/elements/held", {"ids": list(ids)}), ids)

    def _range(self, low: str, high: str) -> tuple[set[str], dict[str, RegisterRow]]:
        query = urllib.parse.urlencode({"low": low, "high": high})
        return parse_range(self._ok("GET", f"/range?{query}"), low, high)

    def digests(self, low: str, high: str) -> dict[str, tuple[str, int]]:
        return digests(*self._range(low, high))

    def registers(self, low: str, high: str) -> dict[str, RegisterRow]:
        return self._range(low, high)[1]

    def elements(self, low: str, high: str) -> set[str]:
        return self._range(low, high)[0]

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None
