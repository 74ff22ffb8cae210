"""The regional API service of the sandbox: what users of one region call.

``python -m harness.sandbox.api_service --region R --port P --redis-url URL --sentinels H:P,...
--master-name NAME [--postgres-dsn DSN --postgres-primary-dsn DSN] [--redis-route H:P=H:P ...]``

* Every response carries ``X-Served-By: <region>``: behind the global load balancer, each answer
  says which region served it.
* ``GET /health``: 200 at once, touching no backend: the balancer's liveness check.
* ``GET /api/v1/health``: 200 with JSON when the region's Redis (and PostgreSQL) answer, else 503.
* ``POST /api/v1/items/<key>`` (body: the value, or JSON ``{"value": ...}``): written to the Redis
  primary Sentinel names (reached through ``--redis-route`` when it maps that address, i.e.
  through the fault proxy) and to the PostgreSQL primary; 201, or 503 when a write fails.
* ``GET /api/v1/items/<key>``: read from the region's own Redis, then its own PostgreSQL; 404 if absent.
* With ``--convergence`` (the active-active topology): the convergence probe's HTTP contract
  (harness.probes._convergence_http) at ``/api/v1/convergence``, over the region's own
  PostgreSQL (``--postgres-dsn``) with the probe's own SQL (harness.probes.convergence.PostgresEndpoint):
  ``POST /elements``, ``POST /registers``, ``POST /elements/held``, ``GET /range?low=&high=``.
  Route ``convergence`` in the metrics.
* ``/metrics``: ``harness_api_requests_total{region,route,code}``,
  ``harness_api_request_duration_seconds{region,route}``,
  ``harness_api_backend_errors_total{region,backend}``.

Every (route, code) series the service can produce exists from the start at 0, so a counter's
first error is an increase Prometheus sees (a series born at its first error would hide it).
Routes ``metrics`` and ``health`` are the scrape and the health checks, not user requests.
A request whose handler fails unexpectedly is answered 500, and counted.
"""

from __future__ import annotations

import argparse
import json
import queue
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import prometheus_client
import psycopg
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

ITEMS = "/api/v1/items/"
CONVERGENCE = "/api/v1/convergence"
LIVENESS = "/health"  # the global load balancer's health check (harness.sandbox.balancer)
SERVED_BY_HEADER = "X-Served-By"
TIMEOUT_SECONDS = 2.0
_BUCKETS_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Every status code each route can answer (500: the handler failed unexpectedly).
ROUTE_CODES = {
    "items_read": ("200", "404", "500", "503"),
    "items_write": ("201", "400", "500", "503"),
    "health": ("200", "500", "503"),
    "metrics": ("200", "500"),
    "other": ("404", "500"),
}
CONVERGENCE_CODES = ("200", "201", "400", "404", "500", "503")  # only with --convergence
BACKENDS = ("redis", "postgres")


class _Connections:
    """A few reusable PostgreSQL connections to one DSN; a connection that failed is dropped."""

    def __init__(self, dsn: str, size: int = 4) -> None:
        self.dsn = dsn
        self._idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue(maxsize=size)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        try:
            connection = self._idle.get_nowait()
        except queue.Empty:
            connection = psycopg.connect(
                self.dsn,
                connect_timeout=int(TIMEOUT_SECONDS),
                autocommit=True,
                options="-c statement_timeout=2000",
            )
        try:
            yield connection
        except BaseException:
            connection.close()
            raise
        try:
            self._idle.put_nowait(connection)
        except queue.Full:
            connection.close()


# One attempt per call within TIMEOUT_SECONDS: redis-py would otherwise retry a failed command
# up to 10 times with backoff, answering a user tens of seconds late instead of with a 503.
_REDIS_OPTIONS: dict[str, Any] = {
    "socket_timeout": TIMEOUT_SECONDS,
    "socket_connect_timeout": TIMEOUT_SECONDS,
    "retry": Retry(NoBackoff(), 0),
}


class Backends:
    """The region's view of Redis and PostgreSQL."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.region = args.region
        self.local_redis = redis.Redis.from_url(args.redis_url, **_REDIS_OPTIONS)
        sentinels = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in args.sentinels.split(",") if s)]
        self.sentinel = (
            Sentinel(sentinels, sentinel_kwargs=_REDIS_OPTIONS, **_REDIS_OPTIONS) if sentinels else None
        )
        self.master_name = args.master_name
        self.routes = dict(route.split("=", 1) for route in args.redis_route)
        self._primaries: dict[str, redis.Redis] = {}
        self._lock = threading.Lock()
        self.local_postgres = _Connections(args.postgres_dsn) if args.postgres_dsn else None
        self.primary_postgres = _Connections(args.postgres_primary_dsn) if args.postgres_primary_dsn else None

    def redis_primary(self) -> redis.Redis:
        """The current Redis primary as Sentinel names it, reached through this region's route to it."""
        if self.sentinel is None:
            return self.local_redis
        host, port = self.sentinel.discover_master(self.master_name)
        address = self.routes.get(f"{host}:{port}", f"{host}:{port}")
        with self._lock:
            if address not in self._primaries:
                route_host, route_port = address.rsplit(":", 1)
                self._primaries[address] = redis.Redis(
                    host=route_host, port=int(route_port), **_REDIS_OPTIONS
                )
            return self._primaries[address]


class Metrics:
    def __init__(self, region: str, convergence: bool = False) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        self.region = region
        self.requests = prometheus_client.Counter(
            "harness_api_requests", "Requests served.", ["region", "route", "code"], registry=self.registry
        )
        self.duration = prometheus_client.Histogram(
            "harness_api_request_duration_seconds",
            "Time to serve a request.",
            ["region", "route"],
            buckets=_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self.backend_errors = prometheus_client.Counter(
            "harness_api_backend_errors",
            "Failed calls to a backend.",
            ["region", "backend"],
            registry=self.registry,
        )
        for route, codes in ROUTE_CODES.items():
            for code in codes:
                self.requests.labels(region, route, code)
            self.duration.labels(region, route)
        for backend in BACKENDS:
            self.backend_errors.labels(region, backend)
        if convergence:
            for code in CONVERGENCE_CODES:
                self.requests.labels(region, "convergence", code)
            self.duration.labels(region, "convergence")


class ConvergenceStore:
    """The convergence probe's contract over this region's own PostgreSQL: the probe's own
    PostgreSQL transport behind HTTP, so both transports run the same SQL."""

    def __init__(self, dsn: str, size: int = 8) -> None:
        # Imported here, at start, not at the first request: only this topology needs the probe.
        from harness.probes.convergence import PostgresEndpoint

        self.dsn, self._kind = dsn, PostgresEndpoint
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue(maxsize=size)

    @contextmanager
    def endpoint(self) -> Iterator[Any]:
        try:
            endpoint = self._idle.get_nowait()
        except queue.Empty:
            endpoint = self._kind(self.dsn)
        try:
            yield endpoint
        finally:  # a failed statement already closed its connection: the next call reopens it
            try:
                self._idle.put_nowait(endpoint)
            except queue.Full:
                endpoint.close()

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """(status, JSON answer) for a request under CONVERGENCE; psycopg.Error propagates."""
        route, _, query = path[len(CONVERGENCE) :].partition("?")
        if method == "GET" and route == "/range":
            asked = urllib.parse.parse_qs(query)
            low, high = asked.get("low", [None])[0], asked.get("high", [None])[0]
            if low is None or high is None:
                return 400, {"error": "expected ?low=...&high=..."}
            with self.endpoint() as endpoint:
                registers = endpoint.registers(low, high)
                elements = endpoint.elements(low, high)
            return 200, {
                "elements": sorted(elements),
                "registers": {
                    k: {"value": r.value, "origin": r.origin, "commit_us": r.commit_us}
                    for k, r in sorted(registers.items())
                },
            }
        if method != "POST" or route not in ("/elements", "/registers", "/elements/held"):
            return 404, {"error": f"no route {method} {path}"}
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, {"error": "expected a JSON body"}
        if not isinstance(payload, dict):
            return 400, {"error": "expected a JSON object"}
        strings = {"/elements": ("id", "origin"), "/registers": ("key", "value", "origin")}.get(route, ())
        if not all(isinstance(payload.get(name), str) for name in strings):
            return 400, {"error": f"expected {', '.join(strings)} (strings)"}
        with self.endpoint() as endpoint:
            if route == "/elements":
                endpoint.add_element(payload["id"], payload["origin"])
                return 201, {}
            if route == "/registers":
                ack = endpoint.write_register(payload["key"], payload["value"], payload["origin"])
                return 200, {"prev": ack.prev, "commit_us": ack.commit_us}
            ids = payload.get("ids")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                return 400, {"error": "expected ids, a list of strings"}
            return 200, {"held": sorted(endpoint.held_elements(ids))}


def _route(method: str, path: str) -> str:
    if path.startswith(ITEMS) and len(path) > len(ITEMS):
        return "items_read" if method == "GET" else "items_write"
    if method == "GET" and path in ("/api/v1/health", LIVENESS):
        return "health"
    if method == "GET" and path == "/metrics":
        return "metrics"
    return "other"


def _handler(
    backends: Backends, metrics: Metrics, convergence: ConvergenceStore | None = None
) -> type[BaseHTTPRequestHandler]:
    region = backends.region

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes: on a kept-alive connection (the balancer's, a
        # keep-alive client's) Nagle held the body until the client's delayed ACK, 40 ms a request.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: metrics count requests; the log keeps only startup and errors."""

        replied = False

        def _reply(self, route: str, started: float, code: int, body: Any, content_type: str = "") -> None:
            self.replied = True
            # Counted before it is sent: a client that gave up waiting still got this answer from
            # the server's side, and the server's witness must not lose it.
            metrics.requests.labels(region, route, str(code)).inc()
            metrics.duration.labels(region, route).observe(time.perf_counter() - started)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            try:
                self.send_response(code)
                self.send_header("Content-Type", content_type or "application/json")
                self.send_header(SERVED_BY_HEADER, region)  # which region answered, through any balancer
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client left before the answer

        def _backend_failed(self, backend: str, error: Exception) -> str:
            metrics.backend_errors.labels(region, backend).inc()
            return f"{backend}: {type(error).__name__}: {error}"

        def _answer_failure(self, method: str, started: float, error: Exception) -> None:
            """An unexpected failure is a 500 the user sees, so it is counted like one."""
            if not self.replied:
                route = "convergence" if self._convergence() else _route(method, self.path)
                self._reply(route, started, 500, {"error": f"{type(error).__name__}: {error}"})

        def _convergence(self) -> bool:
            return convergence is not None and self.path.startswith(CONVERGENCE + "/")

        def _serve_convergence(self, method: str, started: float, body: bytes) -> None:
            assert convergence is not None
            try:
                code, answer = convergence.answer(method, self.path, body)
            except psycopg.Error as error:
                code, answer = 503, {"error": self._backend_failed("postgres", error)}
            self._reply("convergence", started, code, answer)

        def do_GET(self) -> None:
            self._serve("GET", self._get)

        def do_POST(self) -> None:
            self._serve("POST", self._post)

        def _serve(self, method: str, handle: Callable[[float], None]) -> None:
            started = time.perf_counter()
            self.replied = False  # one handler serves every request of a kept-alive connection
            try:
                handle(started)
            except (BrokenPipeError, ConnectionResetError):
                raise
            except Exception as error:
                self._answer_failure(method, started, error)

        def _get(self, started: float) -> None:
            if self._convergence():
                self._serve_convergence("GET", started, b"")
            elif self.path == LIVENESS:  # the balancer's check: cheap, touches no backend
                self._reply("health", started, 200, {"region": region, "status": "ok"})
            elif self.path == "/api/v1/health":
                self._health(started)
            elif self.path.startswith(ITEMS) and len(self.path) > len(ITEMS):
                self._read(started, self.path[len(ITEMS) :])
            elif self.path == "/metrics":
                self._reply(
                    "metrics",
                    started,
                    200,
                    prometheus_client.generate_latest(metrics.registry),
                    prometheus_client.CONTENT_TYPE_LATEST,
                )
            else:
                self._reply("other", started, 404, {"error": f"no route {self.path}"})

        def _post(self, started: float) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self._convergence():
                self._serve_convergence("POST", started, body)
            elif self.path.startswith(ITEMS) and len(self.path) > len(ITEMS):
                self._write(started, self.path[len(ITEMS) :], body)
            else:
                self._reply("other", started, 404, {"error": f"no route {self.path}"})

        def _health(self, started: float) -> None:
            checks, problems = {}, []
            try:
                backends.local_redis.ping()
                checks["redis"] = "ok"
            except redis.RedisError as error:
                problems.append(self._backend_failed("redis", error))
            if backends.local_postgres is not None:
                try:
                    with backends.local_postgres.connection() as connection:
                        connection.execute("SELECT 1")
                    checks["postgres"] = "ok"
                except psycopg.Error as error:
                    problems.append(self._backend_failed("postgres", error))
            code = 503 if problems else 200
            self._reply("health", started, code, {"region": region, "checks": checks, "problems": problems})

        def _read(self, started: float, key: str) -> None:
            try:
                value = backends.local_redis.get(key)
            except redis.RedisError as error:
                value, problem = None, self._backend_failed("redis", error)
            else:
                problem = ""
            if value is not None:
                self._reply(
                    "items_read", started, 200, {"key": key, "value": value.decode(), "source": "redis"}
                )
                return
            if backends.local_postgres is not None:
                try:
                    with backends.local_postgres.connection() as connection:
                        row = connection.execute("SELECT value FROM items WHERE key = %s", (key,)).fetchone()
                except psycopg.Error as error:
                    self._reply(
                        "items_read", started, 503, {"error": self._backend_failed("postgres", error)}
                    )
                    return
                if row is not None:
                    self._reply(
                        "items_read", started, 200, {"key": key, "value": row[0], "source": "postgres"}
                    )
                    return
            if problem:
                self._reply("items_read", started, 503, {"error": problem})
            else:
                self._reply("items_read", started, 404, {"key": key, "error": "not found"})

        def _write(self, started: float, key: str, body: bytes) -> None:
            try:
                parsed = json.loads(body) if body.startswith(b"{") else None
                value = str(parsed["value"]) if isinstance(parsed, dict) else body.decode()
            except (ValueError, KeyError):
                self._reply(
                    "items_write", started, 400, {"error": 'expected the value, or JSON {"value": ...}'}
                )
                return
            try:
                backends.redis_primary().set(key, value)
            except redis.RedisError as error:
                self._reply("items_write", started, 503, {"error": self._backend_failed("redis", error)})
                return
            if backends.primary_postgres is not None:
                try:
                    with backends.primary_postgres.connection() as connection:
                        connection.execute(
                            "INSERT INTO items (key, value) VALUES (%s, %s) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, written_at = now()",
                            (key, value),
                        )
                except psycopg.Error as error:
                    self._reply(
                        "items_write", started, 503, {"error": self._backend_failed("postgres", error)}
                    )
                    return
            self._reply("items_write", started, 201, {"key": key, "value": value, "region": region})

    return Handler


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m harness.sandbox.api_service", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--region", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True, help="the region's own Redis")
    parser.add_argument("--sentinels", default="", help="comma-separated host:port of the Sentinels")
    parser.add_argument("--master-name", default="harness")
    parser.add_argument(
        "--redis-route", action="append", default=[], help="host:port=host:port, e.g. to the proxy"
    )
    parser.add_argument("--postgres-dsn", default="", help="the region's own PostgreSQL")
    parser.add_argument(
        "--postgres-primary-dsn", default="", help="the PostgreSQL primary, as this region reaches it"
    )
    parser.add_argument(
        "--convergence",
        action="store_true",
        help=f"serve the convergence probe's HTTP contract at {CONVERGENCE} over --postgres-dsn",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_arguments(argv)
    backends = Backends(args)
    if args.convergence and not args.postgres_dsn:
        raise SystemExit("api_service: --convergence needs --postgres-dsn (the region's own store)")
    store = ConvergenceStore(args.postgres_dsn) if args.convergence else None
    metrics = Metrics(args.region, convergence=store is not None)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _handler(backends, metrics, store))
    server.daemon_threads = True
    print(f"api {args.region} listening on http://127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
