"""Free TCP ports on 127.0.0.1 for the sandbox's servers.

Ports are drawn at random below the kernel's ephemeral range (so outgoing connections of
other programs never take them between choosing and binding) and checked by binding.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Collection
from pathlib import Path

from harness.errors import EnvironmentProblem

LOWEST_PORT = 20000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _highest_port() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0]) - 1
    except (OSError, ValueError, IndexError):
        return 32767


def is_free(port: int) -> bool:
    """Whether a server could bind 127.0.0.1:port now (with SO_REUSEADDR, as servers do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, avoid: Collection[int] = (), attempts: int = 2000) -> list[int]:
    """`count` distinct ports that are free now and not in `avoid`."""
    highest = _highest_port()
    chosen: list[int] = []
    for _ in range(attempts):
        if len(chosen) == count:
            return chosen
        port = random.randint(LOWEST_PORT, highest)
        if port not in chosen and port not in avoid and is_free(port):
            chosen.append(port)
    if len(chosen) == count:
        return chosen
    raise EnvironmentProblem(f"found only {len(chosen)} of {count} free ports on 127.0.0.1")


def ensure_free(port: int, owner: str) -> None:
    """Raise EnvironmentProblem naming `owner` when the port it was given has been taken since."""
    if not is_free(port):
        raise EnvironmentProblem(
            f"port 127.0.0.1:{port} for {owner} was taken by another program; run up again"
        )
