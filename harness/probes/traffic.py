"""What users of a global load balancer see: a traffic canary per client region, the balancer's
server states, and its own request counts.

`traffic_canary` (run it with `background: true`) sends, per client region, one GET per tick to
the global endpoint (`traffic.url` of the endpoints), naming the client region in the request
header the balancer routes on (`traffic.client_region_header`), and records each request's send
time, latency, status and serving region (`traffic.served_by_header` of the answer) as samples
`Sample(probe="traffic", region=<client region>, served_by=<region>)`. Alongside it:

* a watcher polls HAProxy's runtime API (`show servers state` on `traffic.admin_socket`) at the
  canary's rate and records each server's changes as events `traffic.check_failed` (a health
  check failed while the server was up), `traffic.server_down`, `traffic.server_up`,
  `traffic.drain` and `traffic.ready`, with the region, backend and server. Their times are
  POLLED: a change happened at most one poll interval before its event (the detail says so:
  `polled: true`, `poll_interval_seconds`);
* a scraper reads the balancer's Prometheus exporter (`traffic.metrics_url`) every
  `metrics_interval_seconds`: requests and 5xx answers per client region's backend (samples
  `traffic_metrics.requests` / `traffic_metrics.errors`), the second witness of the error ratio.

It also records what grading needs to know and nothing else holds: a `traffic.started` event per
client region (rate, timeout, home region, allowed regions) and one `traffic.settings` event
(residency rules, health-check settings, serving regions). harness.traffic_measures grades all
of it; the measurements this probe returns are the same derivations over its own window.

Bounded: at most `duration_seconds` (≤ 1 h), at most 50 Hz per client region, and it stops
within 0.1 s of a cancelled run (harness.probes._cancel) or of `stop_traffic_canary`.
`wait_for_balancer` waits (bounded) until the balancer shows a region in a state, so an
experiment lasts as long as the health checks need, not a fixed guess.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.canary import describe_failure
from harness.errors import ConfigError, EnvironmentProblem
from harness.model import Event, Sample
from harness.probes import _cancel
from harness.probes._window import derived, faults_in_window, window_record
from harness.sandbox import haproxy_admin

__all__ = ["stop_traffic_canary", "traffic_canary", "traffic_served_at_home", "wait_for_balancer"]

MEASURES = (
    "traffic_failover_seconds",
    "residency_violations_count",
    "evacuation_seconds",
    "failback_seconds",
    "traffic_error_ratio",
    "traffic_p99_latency_seconds",
    "traffic_balancer_error_ratio",
)
METRIC_REQUESTS = "traffic_metrics.requests"
METRIC_ERRORS = "traffic_metrics.errors"
STOP_FILE = "traffic-canary.stop"  # in the run directory: stop_traffic_canary asks the canary to end
MAX_RATE_HZ = 50.0
MIN_RATE_HZ = 10.0
_HEALTH_BITS = ("srv_check_health", "srv_check_result")
_CHECK_FAILED = 2  # srv_check_result CHK_RES_FAILED
_METRIC = re.compile(r"^(haproxy_(?:backend|frontend)_http_(?:requests|responses)_total)\{([^}]*)\}\s+(\S+)")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def traffic_canary(
    duration_seconds: float,
    rate_hz: float = 20.0,
    timeout_seconds: float = 1.0,
    path: str = "",
    metrics_interval_seconds: float = 0.2,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Run the traffic canary of every client region for up to `duration_seconds` (background).

    `rate_hz` (10..50) per client region; a request slower than `timeout_seconds` fails; `path`
    is the request path (default: the balancer's health-check path, the cheapest answer a region
    gives). Stops early when the run is cancelled or `stop_traffic_canary` is called. Returns
    `samples`, `events` and `measurements` (the traffic measures over its own window).
    """
    traffic = _traffic(configuration)
    if not 0 < duration_seconds <= 3600:
        raise ConfigError(
            "arguments", "duration_seconds", f"expected 0 < seconds ≤ 3600, got {duration_seconds!r}"
        )
    if not MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ:
        raise ConfigError(
            "arguments", "rate_hz", f"expected {MIN_RATE_HZ:g} to {MAX_RATE_HZ:g} Hz, got {rate_hz!r}"
        )
    if not 0 < timeout_seconds <= 60:
        raise ConfigError(
            "arguments", "timeout_seconds", f"expected 0 < seconds ≤ 60, got {timeout_seconds!r}"
        )
    path = path or str((traffic.get("health") or {}).get("path") or "/")
    stop_file = _stop_file(configuration)
    if stop_file is not None:
        stop_file.unlink(missing_ok=True)
    halt = threading.Event()
    started = time.monotonic()
    deadline = started + duration_seconds
    clients = [
        _ClientLoop(traffic, client, rate_hz, timeout_seconds, path, halt, deadline)
        for client in _clients(traffic)
    ]
    watcher = _Watcher(traffic, 1.0 / rate_hz, halt, deadline)
    scraper = _Scraper(traffic, metrics_interval_seconds, halt, deadline)
    events: list[dict[str, Any]] = [_settings_event(traffic, rate_hz, watcher.interval_seconds, started)]
    for worker in (*clients, watcher, scraper):
        worker.start()
    try:
        while time.monotonic() < deadline:
            if _cancel.wait(min(0.1, max(0.0, deadline - time.monotonic())), configuration):
                break
            if stop_file is not None and stop_file.exists():
                break
    finally:
        halt.set()
        for worker in (*clients, watcher, scraper):
            worker.join(timeout_seconds + 2.0)
    ended = time.monotonic()
    samples = [s for c in clients for s in c.samples] + scraper.samples
    events += [c.started_event() for c in clients] + watcher.events
    record = window_record(
        "traffic",
        started,
        ended,
        samples=(Sample.from_raw(s, started) for s in samples),
        events=(Event.from_raw(e, started) for e in events),
        faults=faults_in_window(configuration, started, ended),
    )
    return {
        "samples": samples,
        "events": events,
        "measurements": derived(record, MEASURES),
        "requests": sum(len(c.samples) for c in clients),
    }


def stop_traffic_canary(configuration: Mapping[str, Any] | None = None) -> dict:
    """Ask a running `traffic_canary` of this run to stop (it returns within 0.1 s), so an experiment
    ends when its last wait is over instead of at the canary's longest duration."""
    stop_file = _stop_file(configuration)
    if stop_file is None:
        raise ConfigError("configuration", "run_dir", "expected the run directory the traffic canary watches")
    stop_file.parent.mkdir(parents=True, exist_ok=True)
    stop_file.touch()
    return {"stop_requested": True, "at_monotonic": time.monotonic()}


def traffic_served_at_home(
    timeout_seconds: float = 2.0, configuration: Mapping[str, Any] | None = None
) -> bool:
    """True when one request of every client region through the global endpoint succeeds and is
    served by that client region's home region (the steady state before a traffic fault)."""
    traffic = _traffic(configuration)
    path = str((traffic.get("health") or {}).get("path") or "/")
    halt = threading.Event()
    for client in _clients(traffic):
        loop = _ClientLoop(traffic, client, MIN_RATE_HZ, timeout_seconds, path, halt, time.monotonic() + 60)
        try:
            sample = loop._request()
        finally:
            loop._close()
        if not sample["ok"] or sample["served_by"] != loop.home:
            return False
    return True


def wait_for_balancer(
    region: str,
    state: str = "down",
    timeout_seconds: float | None = None,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Wait until every balancer server of `region` is in `state` ("down", "up", "drain"): up to
    `timeout_seconds` (default: what the health checks can need, (fall + rise + 1) checks of the interval,
    plus the
    timeout + 5 s). Polled every 50 ms. Returns `reached`, `state`, `waited_seconds`; a state never
    reached is a result (the measures are then censored), not an error.
    """
    if state not in ("down", "up", "drain"):
        raise ConfigError("arguments", "state", f"expected down, up or drain, got {state!r}")
    traffic = _traffic(configuration)
    admin = _admin(traffic)
    health = traffic.get("health") or {}
    if timeout_seconds is None:
        interval = float(health.get("interval_seconds", 30.0))
        checks = int(health.get("fall", 3)) + int(health.get("rise", 2)) + 1
        timeout_seconds = checks * interval + float(health.get("timeout_seconds", 5.0)) + 5.0
    if not 0 < timeout_seconds <= 3600:
        raise ConfigError(
            "arguments", "timeout_seconds", f"expected 0 < seconds ≤ 3600, got {timeout_seconds!r}"
        )
    servers = _servers_of(traffic, region)
    started = time.monotonic()
    seen: dict[str, str] = {}
    while True:
        try:
            states = {s.name: s for s in haproxy_admin.servers_state(admin)}
        except EnvironmentProblem:
            states = {}
        mine = [s for s in states.values() if _region_of(servers, s.backend, s.server) == region]
        if states and not mine:  # a typo must not wait out the whole timeout
            known = sorted(
                {_region_of(_servers_of(traffic), s.backend, s.server) or s.server for s in states.values()}
            )
            raise ConfigError(
                "arguments", "region", f"no balancer server of {region!r} (regions: {', '.join(known)})"
            )
        seen = {s.name: s.state for s in mine}
        reached = bool(mine) and all(_is(s, state) for s in mine)
        if reached or time.monotonic() - started >= timeout_seconds or _cancel.wait(0.05, configuration):
            waited = time.monotonic() - started
            return {
                "region": region,
                "state": state,
                "reached": reached,
                "waited_seconds": waited,
                "servers": seen,
            }


def _is(server: haproxy_admin.ServerState, state: str) -> bool:
    if state == "drain":
        return server.drained
    if state == "up":
        return server.up and not server.drained and not server.maintenance
    return not server.up


# ---------------------------------------------------------------- configuration


def _traffic(configuration: Mapping[str, Any] | None) -> Mapping[str, Any]:
    traffic = (configuration or {}).get("traffic")
    if not isinstance(traffic, Mapping) or not traffic.get("url"):
        raise ConfigError(
            "configuration",
            "traffic.url",
            "expected the global endpoint (endpoints.json key traffic: url, client_regions, headers)",
        )
    if not _clients(traffic):
        raise ConfigError("configuration", "traffic.client_regions", "expected at least one client region")
    scheme = urllib.parse.urlsplit(str(traffic["url"])).scheme
    if scheme not in ("http", "https"):
        raise ConfigError("configuration", "traffic.url", f"expected an http(s) URL, got {traffic['url']!r}")
    return traffic


def _clients(traffic: Mapping[str, Any]) -> list[str]:
    clients = traffic.get("client_regions") or []
    return [str(c) for c in clients] if isinstance(clients, list | tuple) else []


def _admin(traffic: Mapping[str, Any]) -> str:
    admin = traffic.get("admin_socket")
    if not admin:
        raise ConfigError(
            "configuration", "traffic.admin_socket", "expected the balancer's runtime API socket"
        )
    return str(admin)


def _stop_file(configuration: Mapping[str, Any] | None) -> Path | None:
    run_dir = (configuration or {}).get("run_dir")
    return Path(run_dir) / STOP_FILE if run_dir else None


def _servers_of(traffic: Mapping[str, Any], region: str | None = None) -> dict[tuple[str, str], str]:
    """(backend, server) -> serving region, from `traffic.backends` (region -> backend, server,
    in_backends); a server listed by name only matches it in any backend (backend "")."""
    found: dict[tuple[str, str], str] = {}
    for name, info in (traffic.get("backends") or {}).items():
        if not isinstance(info, Mapping) or (region is not None and name != region):
            continue
        server = str(info.get("server") or name)
        found[("", server)] = str(name)
        for backend in info.get("in_backends") or [info.get("backend")]:
            if backend:
                found[(str(backend), server)] = str(name)
    return found


def _region_of(servers: Mapping[tuple[str, str], str], backend: str, server: str) -> str:
    return servers.get((backend, server)) or servers.get(("", server)) or ""


def _home(traffic: Mapping[str, Any], client: str) -> str:
    order = (traffic.get("serving_order") or {}).get(client)
    homes = traffic.get("home") or {}
    if isinstance(homes, Mapping) and homes.get(client):
        return str(homes[client])
    if isinstance(order, list | tuple) and order:
        return str(order[0])
    return client


def _settings_event(traffic: Mapping[str, Any], rate_hz: float, poll: float, at: float) -> dict[str, Any]:
    """Everything grading needs of the traffic layer, since the endpoints are not in the record."""
    clients = _clients(traffic)
    serving = sorted({r for r in _servers_of(traffic).values()} | set(clients))
    detail: dict[str, Any] = {
        "url": str(traffic["url"]),
        "client_regions": clients,
        "serving_regions": serving,
        "home": {c: _home(traffic, c) for c in clients},
        "health": dict(traffic.get("health") or {}),
        "client_region_header": str(traffic.get("client_region_header", "X-Client-Region")),
        "served_by_header": str(traffic.get("served_by_header", "X-Served-By")),
        "policy": traffic.get("policy", ""),
        # Which balancer backend serves each client region: the timeline's balancer steps are the
        # ones of the faulted region's own clients.
        "client_backends": {client: backend for backend, client in _client_backends(traffic).items()},
        "serving_order": dict(traffic.get("serving_order") or {}),
        "watcher": {
            "source": "HAProxy runtime API: show servers state",
            "polled": True,
            "poll_interval_seconds": poll,
        },
        "rate_hz": rate_hz,
    }
    if isinstance(traffic.get("residency"), Mapping):
        detail["residency"] = {str(k): list(v) for k, v in traffic["residency"].items()}
    return {"at_monotonic": at, "kind": "traffic.settings", "source": "traffic", "detail": detail}


# ---------------------------------------------------------------- the canary of one client region


class _ClientLoop(threading.Thread):
    """One GET per tick through the global endpoint, as a user of `client` region."""

    def __init__(
        self,
        traffic: Mapping[str, Any],
        client: str,
        rate_hz: float,
        timeout_seconds: float,
        path: str,
        halt: threading.Event,
        deadline: float,
    ) -> None:
        super().__init__(name=f"traffic-{client}", daemon=True)
        parts = urllib.parse.urlsplit(str(traffic["url"]))
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port
        self._path = (
            (parts.path.rstrip("/") + "/" + path.lstrip("/")) if parts.path not in ("", "/") else path
        )
        self._header = str(traffic.get("client_region_header", "X-Client-Region"))
        self._served_header = str(traffic.get("served_by_header", "X-Served-By"))
        self.client = client
        self.home = _home(traffic, client)
        residency = traffic.get("residency") or {}
        self.allowed = (
            list(residency[client]) if isinstance(residency, Mapping) and client in residency else None
        )
        self.rate_hz, self.timeout_seconds = rate_hz, timeout_seconds
        self._halt, self._deadline = halt, deadline
        self.samples: list[dict[str, Any]] = []
        self.started_monotonic = time.monotonic()
        self._connection: http.client.HTTPConnection | None = None
        self._reused = False  # the request in progress went out on a kept-alive connection

    def started_event(self) -> dict[str, Any]:
        return {
            "at_monotonic": self.started_monotonic,
            "kind": "traffic.started",
            "source": "traffic",
            "detail": {
                "region": self.client,
                "rate_hz": self.rate_hz,
                "timeout_seconds": self.timeout_seconds,
                "home": self.home,
                "allowed": self.allowed,
            },
        }

    def run(self) -> None:
        self.started_monotonic = time.monotonic()
        interval = 1.0 / self.rate_hz
        next_tick = self.started_monotonic
        try:
            while not self._halt.is_set() and time.monotonic() < self._deadline:
                self.samples.append(self._request())
                next_tick += interval
                self._halt.wait(max(0.0, next_tick - time.monotonic()))
                if time.monotonic() - next_tick > interval:
                    next_tick = time.monotonic()  # a slow request: do not burst to catch up
        finally:
            self._close()

    def _request(self) -> dict[str, Any]:
        at = time.monotonic()
        status, served_by, error = 0, "", ""
        try:
            status, served_by = self._exchange()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            # A kept-alive connection the balancer closed meanwhile (it closes after an error page):
            # one more try on a fresh connection, as any HTTP client does for an idempotent GET.
            self._close()
            if not self._reused:
                error = describe_failure(exc)
            else:
                try:
                    status, served_by = self._exchange()
                except Exception as again:  # every failure is a sample, never a crash
                    error = describe_failure(again)
        except Exception as exc:  # every failure is a sample, never a crash
            error = describe_failure(exc)
        latency = time.monotonic() - at
        ok = not error and 200 <= status < 300
        if not ok:
            self._close()  # a late answer must never be read as the next request's
        if not error and not ok:
            error = f"HTTP {status}"
        return {
            "probe": "traffic",
            "region": self.client,
            "served_by": served_by.strip(),
            "at_monotonic": at,
            "ok": ok,
            "value": latency if ok else None,
            "latency_seconds": latency,
            "status": status,
            "error": error,
        }

    def _exchange(self) -> tuple[int, str]:
        """One GET; (status, serving region)."""
        self._reused = self._connection is not None
        connection = self._connect()
        connection.request("GET", self._path, headers={self._header: self.client})
        response = connection.getresponse()
        response.read()
        if (response.getheader("Connection") or "").lower() == "close":
            self._close()
        return response.status, response.getheader(self._served_header, "") or ""

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._connection = kind(self._host, self._port, timeout=self.timeout_seconds)
        return self._connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


# ---------------------------------------------------------------- the balancer's view


class _Watcher(threading.Thread):
    """Polls `show servers state` and turns each server's changes into traffic.* events."""

    def __init__(
        self, traffic: Mapping[str, Any], interval: float, halt: threading.Event, deadline: float
    ) -> None:
        super().__init__(name="traffic-watcher", daemon=True)
        self._admin = str(traffic.get("admin_socket") or "")
        self._servers = _servers_of(traffic)
        self.interval_seconds = max(0.02, interval)
        self._halt, self._deadline = halt, deadline
        self.events: list[dict[str, Any]] = []
        self._last: dict[str, tuple[haproxy_admin.ServerState, int, int]] = {}

    def run(self) -> None:
        if not self._admin:
            return  # a real target without a runtime API: no balancer events (the timeline says so)
        failing = ""
        while not self._halt.is_set() and time.monotonic() < self._deadline:
            at = time.monotonic()
            try:
                text = haproxy_admin.command(self._admin, "show servers state")
            except EnvironmentProblem as error:
                if not failing:
                    self._event(at, "traffic.watcher-unreachable", {"error": str(error)[:200]})
                failing = str(error)
            else:
                failing = ""
                self._compare(at, haproxy_admin.parse_servers_state(text), _health_bits(text))
            self._halt.wait(max(0.0, at + self.interval_seconds - time.monotonic()))

    def _compare(
        self, at: float, states: Sequence[haproxy_admin.ServerState], bits: Mapping[str, tuple[int, int]]
    ) -> None:
        for state in states:
            health, result = bits.get(state.name, (-1, -1))
            before = self._last.get(state.name)
            self._last[state.name] = (state, health, result)
            if before is None:
                continue  # the first poll is the baseline
            old, old_health, _ = before
            kinds = []
            if old.up and not state.up:
                kinds.append("traffic.server_down")
            if not old.up and state.up:
                kinds.append("traffic.server_up")
            if state.up and (
                (result == _CHECK_FAILED and before[2] != _CHECK_FAILED) or (0 <= health < old_health)
            ):
                kinds.append("traffic.check_failed")
            if (state.drained and not old.drained) or (state.weight == 0 < old.weight):
                kinds.append("traffic.drain")
            if (old.drained or old.maintenance or old.weight == 0) and not (
                state.drained or state.maintenance or state.weight == 0
            ):
                kinds.append("traffic.ready")
            for kind in kinds:
                self._event(at, kind, {
                    "region": _region_of(self._servers, state.backend, state.server) or state.server,
                    "backend": state.backend, "server": state.server, "state": state.state,
                    "check_health": health, "polled": True, "exact": False,
                    "poll_interval_seconds": self.interval_seconds,
                })  # fmt: skip

    def _event(self, at: float, kind: str, detail: dict[str, Any]) -> None:
        self.events.append({"at_monotonic": at, "kind": kind, "source": "traffic", "detail": detail})


def _health_bits(text: str) -> dict[str, tuple[int, int]]:
    """``backend/server`` -> (srv_check_health, srv_check_result) from a ``show servers state``
    answer: the two columns harness.sandbox.haproxy_admin does not read (a failed check before the
    server is marked down)."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = next((line for line in lines if line.startswith("# be_id")), None)
    if header is None:
        return {}
    names = header[2:].split()
    found = {}
    for line in lines:
        if line.startswith("#") or not line[0].isdigit():
            continue
        values = dict(zip(names, line.split(), strict=False))
        try:
            found[f"{values['be_name']}/{values['srv_name']}"] = tuple(int(values[b]) for b in _HEALTH_BITS)
        except (KeyError, ValueError):
            continue
    return found  # type: ignore[return-value]


class _Scraper(threading.Thread):
    """Reads the balancer's request and 5xx counters per client region's backend."""

    def __init__(
        self, traffic: Mapping[str, Any], interval: float, halt: threading.Event, deadline: float
    ) -> None:
        super().__init__(name="traffic-metrics", daemon=True)
        url = str(traffic.get("metrics_url") or "")
        # Only the frontend and backend families (a third of the page): parsed five times a second.
        self._url = f"{url}?scope=frontend&scope=backend" if url and "?" not in url else url
        self._backends = _client_backends(traffic)
        self._interval = max(0.1, float(interval))
        self._halt, self._deadline = halt, deadline
        self.samples: list[dict[str, Any]] = []

    def run(self) -> None:
        if not self._url:
            return
        while True:
            at = time.monotonic()
            self._scrape(at)
            # One last scrape after the stop: the window's far edge is after the fault's undo.
            if self._halt.is_set() or time.monotonic() >= self._deadline:
                return
            self._halt.wait(max(0.0, at + self._interval - time.monotonic()))

    def _scrape(self, at: float) -> None:
        try:
            with urllib.request.urlopen(self._url, timeout=2.0) as response:
                text = response.read().decode(errors="replace")
        except Exception as exc:  # an unreachable exporter leaves the witness unknown, never a crash
            error = describe_failure(exc)
            for probe in (METRIC_REQUESTS, METRIC_ERRORS):
                self._sample(probe, "*", at, None, error)
            return
        for (probe, client), value in sorted(parse_counts(text, self._backends).items()):
            self._sample(probe, client, at, value, "")

    def _sample(self, probe: str, client: str, at: float, value: float | None, error: str) -> None:
        # latency: the scrape's duration, so grading knows when the counters were read at the latest.
        self.samples.append({
            "probe": probe, "region": client, "at_monotonic": at, "ok": not error, "value": value,
            "latency_seconds": time.monotonic() - at, "error": error,
        })  # fmt: skip


def _client_backends(traffic: Mapping[str, Any]) -> dict[str, str]:
    """HAProxy backend name -> client region: `traffic.client_backends` when given, else a backend
    named after the client region (`client-<region>`, `<anything>-<region>` or `<region>`)."""
    given = traffic.get("client_backends")
    if isinstance(given, Mapping):
        return {str(backend): str(client) for client, backend in given.items()}
    names = {str(b) for info in (traffic.get("backends") or {}).values() if isinstance(info, Mapping)
             for b in (info.get("in_backends") or [info.get("backend")]) if b}  # fmt: skip
    found = {}
    for client in _clients(traffic):
        for name in sorted(names):
            if name == client or name.endswith(f"-{client}"):
                found[name] = client
    return found


def parse_counts(text: str, backends: Mapping[str, str]) -> dict[tuple[str, str], float]:
    """(probe, client region or "*") -> counter, from HAProxy's Prometheus exposition: requests and
    5xx answers of each client region's backend, and of every frontend together ("*")."""
    counts: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = _METRIC.match(line)
        if match is None:
            continue
        name, labels, value = match.group(1), dict(_LABEL.findall(match.group(2))), float(match.group(3))
        proxy = labels.get("proxy", "")
        if name.startswith("haproxy_backend_"):
            client = backends.get(proxy)
            if client is None:
                continue
        elif proxy in ("metrics", "stats"):
            continue  # the scrapes themselves
        else:
            client = "*"
        if name.endswith("_requests_total"):
            key = (METRIC_REQUESTS, client)
        elif labels.get("code") == "5xx":
            key = (METRIC_ERRORS, client)
        else:
            continue
        counts[key] = counts.get(key, 0.0) + value
    for client in {c for _, c in counts}:
        counts.setdefault((METRIC_ERRORS, client), 0.0)
    return counts
