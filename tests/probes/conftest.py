"""Fixtures for the probe tests: a regional HTTP API stand-in and links through the fault proxy."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness.faultproxy import FaultProxy


class ApiStandIn(ThreadingHTTPServer):
    """The regional API's two canary routes; `healthy` switches /api/v1/health between 200 and 503."""

    daemon_threads = True
    healthy = True
    requests = 0


class _Handler(BaseHTTPRequestHandler):
    server: ApiStandIn

    def do_GET(self) -> None:
        self.server.requests += 1
        self._reply(200 if self.server.healthy else 503, {"status": "ok" if self.server.healthy else "down"})

    def do_POST(self) -> None:
        self.server.requests += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._reply(201, {"stored": True})

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[ApiStandIn]:
    server = ApiStandIn(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    try:
        thread.start()
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def http_through_proxy(api: ApiStandIn, fault_proxy: FaultProxy, tmp_path: Path) -> dict[str, Any]:
    """Configuration of region `eu-west-1`, whose API (in `us-east-1`) is reached through a proxy link."""
    body = json.dumps(
        {"name": "eu-west-1-api", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{api.server_port}"}
    ).encode()
    request = urllib.request.Request(f"{fault_proxy.api_url}/proxies", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        listen = json.loads(response.read())["listen"]
    return {
        "primary_region": "us-east-1",
        "regions": {"eu-west-1": {"api_url": f"http://{listen}", "primary": False}},
        "faultproxy_url": fault_proxy.api_url,
        "links": {
            "eu-west-1/api": {
                "proxy": "eu-west-1-api",
                "from": "eu-west-1",
                "to": "us-east-1",
                "service": "http",
            }
        },
        "harness_state_dir": str(tmp_path / "state"),
        "run_dir": str(tmp_path / "run"),
    }
