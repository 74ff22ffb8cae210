"""Headless Chromium driven over the DevTools protocol: load a page, record what it did."""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import websocket

CHROMIUM = Path("/usr/bin/chromium")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
)


@dataclass(frozen=True, slots=True)
class PageLoad:
    """What a page did while loading: errors, requests, dialogs, and what its DOM holds."""

    console_errors: tuple[str, ...]
    requested_urls: tuple[str, ...]
    dialogs: tuple[str, ...]
    facts: dict
    screenshot_png: bytes
    pdf: bytes  # empty unless asked for


@contextmanager
def chromium(profile_dir: Path, *, start_timeout_seconds: float = 30) -> Iterator[str]:
    """A headless Chromium on a free loopback port; yields the websocket URL of its blank page."""
    process = subprocess.Popen(
        [str(CHROMIUM), *_FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        port_file = profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + start_timeout_seconds
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start (exit {process.poll()})")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        yield _page_websocket(port, deadline)
    finally:
        _stop(process)


def _page_websocket(port: int, deadline: float) -> str:
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
            pages = [t for t in json.load(response) if t.get("type") == "page"]
        if pages:
            return pages[0]["webSocketDebuggerUrl"]
        if time.monotonic() > deadline:
            raise RuntimeError("chromium opened no page")
        time.sleep(0.05)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def load_page(
    websocket_url: str, page: Path, facts_script: str, *, print_pdf: bool = False, timeout_seconds: float = 60
) -> PageLoad:
    """Open `page` (a file) and record console errors, requests, dialogs, facts, a screenshot
    and, with `print_pdf`, the page printed to A4."""
    connection = websocket.create_connection(websocket_url, timeout=timeout_seconds)
    ids = itertools.count(1)
    events: list[dict] = []

    def send(method: str, **params) -> int:
        message_id = next(ids)
        connection.send(json.dumps({"id": message_id, "method": method, "params": params}))
        return message_id

    def receive() -> dict:
        message = json.loads(connection.recv())
        if message.get("method") == "Page.javascriptDialogOpening":
            send("Page.handleJavaScriptDialog", accept=False)  # a dialog would block the page
        if "method" in message:
            events.append(message)
        return message

    def call(method: str, **params) -> dict:
        message_id = send(method, **params)
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            message = receive()
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
        raise TimeoutError(method)

    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            call(f"{domain}.enable")
        call("Page.navigate", url=page.resolve().as_uri())
        deadline = time.monotonic() + timeout_seconds
        while not any(e.get("method") == "Page.loadEventFired" for e in events):
            if time.monotonic() > deadline:
                raise TimeoutError("page did not load")
            receive()
        facts = call("Runtime.evaluate", expression=facts_script, returnByValue=True)["result"]["value"]
        shot = call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        pdf = call("Page.printToPDF", paperWidth=8.27, paperHeight=11.69)["data"] if print_pdf else ""
    finally:
        connection.close()
    return PageLoad(
        console_errors=tuple(_errors(events)),
        requested_urls=tuple(
            e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"
        ),
        dialogs=tuple(
            e["params"].get("message", "")
            for e in events
            if e.get("method") == "Page.javascriptDialogOpening"
        ),
        facts=facts,
        screenshot_png=base64.b64decode(shot["data"]),
        pdf=base64.b64decode(pdf),
    )


def _errors(events: list[dict]) -> Iterator[str]:
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            yield json.dumps(params.get("args"))
        elif method == "Runtime.exceptionThrown":
            yield json.dumps(params.get("exceptionDetails"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            yield params["entry"].get("text", "")
