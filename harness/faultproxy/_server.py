"""Running the fault proxy: in a background thread (tests, the sandbox) or in the foreground (CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.errors import ConfigError, EnvironmentProblem

from ._api import Api
from ._collection import ProxyCollection
from ._errors import ApiError
from ._http import HttpServer
from ._timers import close_timer, reduce_timer_slack

log = logging.getLogger("harness.faultproxy")

DEFAULT_PORT = 8474


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (lower latency on the control plane and toxic pipeline), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def load_config(path: Path | str) -> list[Any]:
    """The proxies of a JSON file in /populate format."""
    try:
        value = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(path, "", f"not JSON: {exc}") from None
    except RecursionError:
        raise ConfigError(path, "", "nested too deeply: expected a flat JSON array of proxies") from None
    if not isinstance(value, list):
        raise ConfigError(path, "", "expected a JSON array of proxies, as for POST /populate")
    return value


class _Runtime:
    """The API server and the proxies, on the current event loop."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.requested_port = host, port
        self.port = 0
        self.collection: ProxyCollection | None = None
        self._http: HttpServer | None = None

    async def open(self, config: list[Any] | None, config_path: Path | str | None = None) -> None:
        self.collection = ProxyCollection(asyncio.get_running_loop())
        self._http = HttpServer(Api(self.collection).handle)
        try:
            if config is not None:
                try:
                    await self.collection.populate(config)
                except ApiError as exc:
                    raise ConfigError(config_path or "config", "", exc.message) from None
            try:
                self.port = await self._http.listen(self.host, self.requested_port)
            except OSError as exc:
                raise EnvironmentProblem(
                    f"fault proxy API: cannot listen on {self.host}:{self.requested_port}: "
                    f"{exc.strerror or exc}"
                ) from None
            if self.host in ("127.0.0.1", "localhost") and socket.has_ipv6:
                # Clients that say `localhost` may try ::1 first (the node client does).
                with contextlib.suppress(OSError):
                    await self._http.listen("::1", self.port)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self.collection is not None:
            await self.collection.stop_all()


class FaultProxy:
    """A fault proxy server in a background thread with its own event loop.

    >>> with FaultProxy() as server:
    ...     requests.get(server.api_url + "/version")
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, config_path: Path | str | None = None) -> None:
        self.host, self.config_path = host, config_path
        self._runtime = _Runtime(host, port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._done: asyncio.Event | None = None

    @property
    def port(self) -> int:
        return self._runtime.port

    @property
    def api_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> FaultProxy:
        """Start serving; returns once the API accepts connections. Raises what startup raised."""
        if self._thread is not None:
            raise RuntimeError("fault proxy already started")
        config = load_config(self.config_path) if self.config_path is not None else None
        self._thread = threading.Thread(target=self._run, args=(config,), name="faultproxy-api", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self, timeout_seconds: float = 10.0) -> None:
        """Close the API, every listener and every connection, then end the thread. Safe to call twice."""
        if self._thread is None:
            return
        if self._loop is not None and self._done is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(timeout_seconds)
        if self._thread.is_alive():
            raise EnvironmentProblem(f"fault proxy did not stop within {timeout_seconds} s")
        self._thread = None

    def __enter__(self) -> FaultProxy:
        return self if self._thread is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self, config: list[Any] | None) -> None:
        loop = self._loop = new_event_loop()
        reduce_timer_slack()  # this thread runs the loop: its timers wake on time
        try:
            loop.run_until_complete(self._main(config))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            close_timer(loop)
            loop.close()
            self._ready.set()

    async def _main(self, config: list[Any] | None) -> None:
        self._done = asyncio.Event()
        try:
            await self._runtime.open(config, self.config_path)
        except BaseException as exc:
            self._error = exc
            return
        self._ready.set()
        try:
            await self._done.wait()
        finally:
            await self._runtime.close()
            await _cancel_leftover_tasks()


async def _cancel_leftover_tasks() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=2)


def start_server(host: str = "127.0.0.1", port: int = 0, config_path: Path | str | None = None) -> FaultProxy:
    """A started FaultProxy (port 0: a free one); stop it with `.stop()` or use it as a context manager."""
    return FaultProxy(host, port, config_path).start()


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, config_path: Path | str | None = None) -> None:
    """Run the fault proxy in the foreground until SIGINT or SIGTERM, then close everything."""
    config = load_config(config_path) if config_path is not None else None
    loop = new_event_loop()
    reduce_timer_slack()
    try:
        loop.run_until_complete(_serve(host, port, config, config_path))
    finally:
        close_timer(loop)
        loop.close()


async def _serve(host: str, port: int, config: list[Any] | None, config_path: Path | str | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runtime = _Runtime(host, port)
    await runtime.open(config, config_path)
    print(f"fault proxy API listening on http://{host}:{runtime.port}", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await runtime.close()
        await _cancel_leftover_tasks()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    print("fault proxy stopped", file=sys.stderr, flush=True)
