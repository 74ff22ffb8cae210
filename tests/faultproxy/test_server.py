"""Running the server: the in-process handle, config files, `python -m harness.faultproxy` and signals."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
from typer.testing import CliRunner

from harness.errors import ConfigError, EnvironmentProblem
from harness.faultproxy import FaultProxy, start_server
from harness.faultproxy.cli import app

from .support import eof_within, free_port, port_of, refuses, rtt_seconds, wait_for


def test_handle_is_a_context_manager_and_stops_twice():
    server = FaultProxy()
    with server:
        assert server.port != 0
        assert server.api_url == f"http://127.0.0.1:{server.port}"
        assert requests.get(server.api_url + "/version", timeout=5).status_code == 200
    server.stop()
    assert refuses(server.port)


def test_config_file_populates_proxies(tmp_path, echo):
    config = tmp_path / "proxies.json"
    config.write_text(
        json.dumps([{"name": "a", "upstream": f"127.0.0.1:{echo.port}", "listen": "127.0.0.1:0"}])
    )
    with start_server(config_path=config) as server:
        proxies = requests.get(server.api_url + "/proxies", timeout=5).json()
        assert list(proxies) == ["a"]
        with socket.create_connection(("127.0.0.1", port_of(proxies["a"]["listen"]))) as client:
            assert rtt_seconds(client) < 1


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{", "not JSON"),
        ("{}", "expected a JSON array"),
        ('[{"upstream": "127.0.0.1:1"}]', "missing required field"),
    ],
)
def test_bad_config_file_is_a_config_error(tmp_path, content, problem):
    config = tmp_path / "proxies.json"
    config.write_text(content)
    with pytest.raises(ConfigError, match=problem):
        start_server(config_path=config)


def test_busy_api_port_is_an_environment_problem():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(EnvironmentProblem, match="cannot listen"):
            start_server(port=taken.getsockname()[1])


def test_cli_has_serve_command():
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--config" in result.output
    assert "--port" in result.output


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_module_serves_until_signalled(tmp_path, echo, signum):
    port = free_port()
    listen_port = free_port()
    config = tmp_path / "proxies.json"
    config.write_text(
        json.dumps(
            [{"name": "a", "upstream": f"127.0.0.1:{echo.port}", "listen": f"127.0.0.1:{listen_port}"}]
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.faultproxy", "--port", str(port), "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    client = None
    try:
        assert wait_for(lambda: not refuses(port), timeout=15), "server did not start"
        assert requests.get(f"http://127.0.0.1:{port}/proxies", timeout=5).json()["a"]["enabled"] is True
        client = socket.create_connection(("127.0.0.1", listen_port), timeout=5)
        assert rtt_seconds(client) < 1
        start = time.monotonic()
        process.send_signal(signum)
        assert process.wait(10) == 0
        assert time.monotonic() - start < 5
        eof_within(client, 1)
        assert refuses(port)
        assert refuses(listen_port)
        assert "Traceback" not in process.stderr.read()
    finally:
        if client is not None:
            client.close()
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
