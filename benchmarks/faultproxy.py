"""Fault proxy speed and accuracy, side by side with a direct loopback connection.

Run alone: `.venv/bin/python benchmarks/faultproxy.py [--quick]`. The proxy runs as its own process
(`python -m harness.faultproxy`, as the sandbox runs it); the upstream (an echo server and a sink)
runs in a second process and the client in this one, so the three do not share a GIL.

Targets (from the issue): throughput >= 0.35x direct, added median RTT <= 50 us,
latency toxic within +-1 ms, 200 connections x 100 round trips in <= 1.0 s.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import requests
import uvloop

MIB = 1 << 20


# -- upstream process ---------------------------------------------------------------------------


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def _sink(conn: socket.socket) -> None:
    """Read an 8-byte length, then that many bytes; answer one byte."""
    with conn:
        header = b""
        while len(header) < 8:
            header += conn.recv(8 - len(header))
        remaining = int.from_bytes(header, "big")
        buffer = bytearray(4 * MIB)
        while remaining > 0:
            n = conn.recv_into(buffer)
            if n == 0:
                return
            remaining -= n
        conn.sendall(b"k")


def _upstream_main(ports: multiprocessing.connection.Connection) -> None:
    import threading

    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(16)

    def accept_sinks() -> None:
        while True:
            conn, _ = sink.accept()
            threading.Thread(target=_sink, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_sinks, daemon=True).start()

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Echo, "127.0.0.1", 0, backlog=1024)
        ports.send((server.sockets[0].getsockname()[1], sink.getsockname()[1]))
        await asyncio.Event().wait()

    uvloop.run(main())


# -- client measurements ------------------------------------------------------------------------


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def throughput_mib_s(port: int, total: int, runs: int = 3) -> float:
    """Median MiB/s over `runs` fresh connections pushing `total` bytes to the sink."""
    chunk = memoryview(os.urandom(4 * MIB))
    rates = []
    for _ in range(runs):
        with _connect(port) as sock:
            start = time.perf_counter()
            sock.sendall(total.to_bytes(8, "big"))
            sent = 0
            while sent < total:
                piece = chunk[: min(len(chunk), total - sent)]
                sock.sendall(piece)
                sent += len(piece)
            assert sock.recv(1) == b"k"
            rates.append(total / MIB / (time.perf_counter() - start))
    return statistics.median(rates)


def ping_pong_us(port: int, trips: int, warmup: int = 50) -> list[float]:
    """Per-trip microseconds of 1-byte round trips on one connection, after `warmup` trips."""
    with _connect(port) as sock:
        for _ in range(warmup):
            sock.sendall(b"x")
            sock.recv(1)
        times = []
        clock = time.perf_counter_ns
        for _ in range(trips):
            start = clock()
            sock.sendall(b"x")
            sock.recv(1)
            times.append((clock() - start) / 1000)
    return times


def many_connections(port: int, connections: int, trips: int) -> tuple[float, list[float]]:
    """Wall seconds (connects included) and per-trip microseconds for concurrent 32-byte round trips."""
    payload = b"p" * 32
    samples: list[float] = []

    class Client(asyncio.Protocol):
        def __init__(self, done: asyncio.Future[None]) -> None:
            self.done, self.left, self.got = done, trips, 0

        def connection_made(self, transport: asyncio.Transport) -> None:
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.transport = transport
            self.start = time.perf_counter_ns()
            transport.write(payload)

        def data_received(self, data: bytes) -> None:
            self.got += len(data)
            if self.got < len(payload):
                return
            now = time.perf_counter_ns()
            samples.append((now - self.start) / 1000)
            self.got, self.left = 0, self.left - 1
            if self.left == 0:
                self.transport.close()
                self.done.set_result(None)
                return
            self.start = now
            self.transport.write(payload)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        waits = []
        for _ in range(connections):
            done = loop.create_future()
            waits.append(done)
            await loop.create_connection(lambda done=done: Client(done), "127.0.0.1", port)
        await asyncio.gather(*waits)
        return time.perf_counter() - start

    return uvloop.run(main()), samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- proxy process ------------------------------------------------------------------------------


@dataclass
class ProxyProcess:
    process: subprocess.Popen
    api: str

    def create(self, name: str, upstream_port: int) -> int:
        body = {"name": name, "upstream": f"127.0.0.1:{upstream_port}", "listen": "127.0.0.1:0"}
        response = requests.post(f"{self.api}/proxies", json=body, timeout=5)
        response.raise_for_status()
        return int(response.json()["listen"].rsplit(":", 1)[1])

    def toxic(self, proxy: str, body: dict) -> None:
        requests.post(f"{self.api}/proxies/{proxy}/toxics", json=body, timeout=5).raise_for_status()

    def untoxic(self, proxy: str, name: str) -> None:
        requests.delete(f"{self.api}/proxies/{proxy}/toxics/{name}", timeout=5).raise_for_status()


def start_proxy() -> ProxyProcess:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.faultproxy", "--port", str(port)], stderr=subprocess.DEVNULL
    )
    api = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"{api}/version", timeout=1)
            return ProxyProcess(process, api)
        except requests.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("fault proxy did not start")


# -- report -------------------------------------------------------------------------------------


def _row(name: str, direct: str, proxied: str, compare: str, target: str, ok: bool | None) -> str:
    verdict = "" if ok is None else ("ok" if ok else "MISSED")
    return f"{name:<34}{direct:>12}{proxied:>12}{compare:>14}  {target:<12}{verdict}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    total = (32 if args.quick else 256) * MIB
    trips = 500 if args.quick else 2000

    receiver, sender = multiprocessing.Pipe(duplex=False)
    upstream = multiprocessing.Process(target=_upstream_main, args=(sender,), daemon=True)
    upstream.start()
    echo_port, sink_port = receiver.recv()
    proxy = start_proxy()
    try:
        echo_proxy = proxy.create("echo", echo_port)
        sink_proxy = proxy.create("sink", sink_port)
        rows: list[str] = []

        def add(line: str) -> None:
            rows.append(line)
            print(line, flush=True)

        print(_row("metric", "direct", "proxy", "ratio/added", "target", None))
        print("-" * 96)

        direct_tp = throughput_mib_s(sink_port, total)
        proxy_tp = throughput_mib_s(sink_proxy, total)
        ratio = proxy_tp / direct_tp
        add(
            _row(
                f"throughput {total // MIB} MiB (MiB/s)",
                f"{direct_tp:.0f}",
                f"{proxy_tp:.0f}",
                f"{ratio:.2f}x",
                ">= 0.35x",
                ratio >= 0.35,
            )
        )

        direct_rtt = ping_pong_us(echo_port, trips)
        proxy_rtt = ping_pong_us(echo_proxy, trips)
        added = statistics.median(proxy_rtt) - statistics.median(direct_rtt)
        add(
            _row(
                f"ping-pong median, {trips} trips (us)",
                f"{statistics.median(direct_rtt):.1f}",
                f"{statistics.median(proxy_rtt):.1f}",
                f"+{added:.1f} us",
                "<= 50 us",
                added <= 50,
            )
        )
        add(
            _row(
                "ping-pong p99 (us)",
                f"{percentile(direct_rtt, 0.99):.1f}",
                f"{percentile(proxy_rtt, 0.99):.1f}",
                f"+{percentile(proxy_rtt, 0.99) - percentile(direct_rtt, 0.99):.1f} us",
                "",
                None,
            )
        )

        direct_wall, direct_trips = many_connections(echo_port, 200, 100)
        proxy_wall, proxy_trips = many_connections(echo_proxy, 200, 100)
        add(
            _row(
                "200 conns x 100 trips, wall (s)",
                f"{direct_wall:.3f}",
                f"{proxy_wall:.3f}",
                f"{proxy_wall / direct_wall:.2f}x",
                "<= 1.0 s",
                proxy_wall <= 1.0,
            )
        )
        for label, q in (("p50", 0.5), ("p99", 0.99)):
            d, p = percentile(direct_trips, q), percentile(proxy_trips, q)
            add(
                _row(f"200 x 100 per-trip {label} (us)", f"{d:.0f}", f"{p:.0f}", f"+{p - d:.0f} us", "", None)
            )

        proxy.toxic("echo", {"name": "lat", "type": "latency", "attributes": {"latency": 50}})
        toxic_rtt = ping_pong_us(echo_proxy, 40, warmup=3)
        proxy.untoxic("echo", "lat")
        errors_ms = [(rtt - statistics.median(proxy_rtt)) / 1000 - 50 for rtt in toxic_rtt]
        median_error = statistics.median(errors_ms)
        add(
            _row(
                "latency 50 ms: added - 50 (ms)",
                "",
                f"{median_error:+.2f}",
                f"max {max(errors_ms, key=abs):+.2f}",
                "within 1 ms",
                abs(median_error) <= 1,
            )
        )

        # The toxic pipeline itself (a noop toxic each way), for reference: no target.
        proxy.toxic("echo", {"name": "n_up", "type": "noop", "stream": "upstream"})
        proxy.toxic("echo", {"name": "n_down", "type": "noop"})
        proxy.toxic("sink", {"name": "n_up", "type": "noop", "stream": "upstream"})
        noop_rtt = ping_pong_us(echo_proxy, trips)
        noop_tp = throughput_mib_s(sink_proxy, total)
        add(
            _row(
                "noop toxics: ping-pong median (us)",
                f"{statistics.median(direct_rtt):.1f}",
                f"{statistics.median(noop_rtt):.1f}",
                f"+{statistics.median(noop_rtt) - statistics.median(direct_rtt):.1f} us",
                "(info)",
                None,
            )
        )
        add(
            _row(
                "noop toxics: throughput (MiB/s)",
                f"{direct_tp:.0f}",
                f"{noop_tp:.0f}",
                f"{noop_tp / direct_tp:.2f}x",
                "(info)",
                None,
            )
        )
    finally:
        proxy.process.terminate()
        proxy.process.wait(10)
        upstream.terminate()
        upstream.join(5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
