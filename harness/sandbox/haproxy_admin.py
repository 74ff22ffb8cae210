"""A small client of HAProxy's runtime API (the admin socket): read server states, drain, weigh.

One command per connection (HAProxy closes a non-interactive connection after answering), a
timeout on every call. The balancer of the sandbox, the traffic actions and the traffic probe
all read the balancer through this module, so they agree on what a state means.

``show servers state`` answers one line per (backend, server) with numeric states; the names
that matter here:

* ``srv_op_state``: 0 stopped (down), 1 starting, 2 running (up), 3 stopping.
* ``srv_admin_state``: bit flags; maintenance 0x01/0x02/0x04/0x20/0x40, drain 0x08 (forced by
  the runtime API) and 0x10 (inherited).
* ``srv_uweight``: the weight the user set (the runtime API's ``set weight`` changes it).
* ``srv_check_health``: the health counter, 0..rise+fall-1 (``checks_failing`` reads it).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import EnvironmentProblem

TIMEOUT_SECONDS = 2.0
_OP_STATES = {0: "down", 1: "starting", 2: "up", 3: "stopping"}
_MAINTENANCE = 0x01 | 0x02 | 0x04 | 0x20 | 0x40
_DRAIN = 0x08 | 0x10


@dataclass(frozen=True, slots=True)
class ServerState:
    """One server of one backend as the runtime API reports it."""

    backend: str
    server: str
    op_state: int
    admin_state: int
    weight: int  # srv_uweight: the user's weight, 0..256
    initial_weight: int = 1  # srv_iweight: the weight in the configuration
    check_status: int = 0
    seconds_since_change: int = 0
    # srv_check_health: HAProxy's health counter, 0..rise+fall-1. A server is up while it is at
    # least `rise`; every failed check takes one off, every passed one adds one. Below its
    # maximum while up: checks have started failing (a "check failed" event before the "down").
    check_health: int = 0

    @property
    def name(self) -> str:
        """``backend/server``, as runtime API commands take it."""
        return f"{self.backend}/{self.server}"

    @property
    def up(self) -> bool:
        return self.op_state == 2

    @property
    def drained(self) -> bool:
        return bool(self.admin_state & _DRAIN)

    @property
    def maintenance(self) -> bool:
        return bool(self.admin_state & _MAINTENANCE)

    def checks_failing(self, rise: int, fall: int) -> bool:
        """Whether health checks have failed since the server was last fully healthy (up or down)."""
        return self.check_health < rise + fall - 1

    @property
    def state(self) -> str:
        """One word: maint, drain, down, up, starting or stopping (admin states first)."""
        if self.maintenance:
            return "maint"
        if self.drained:
            return "drain"
        return _OP_STATES.get(self.op_state, f"op{self.op_state}")


class BalancerGone(EnvironmentProblem):
    """No HAProxy behind the socket (the file is gone, or nothing accepts on it): its runtime state,
    drains and weights included, went with the process."""


def command(socket_path: str | Path, line: str, timeout_seconds: float = TIMEOUT_SECONDS) -> str:
    """Send one runtime API command and return the whole answer; BalancerGone when no HAProxy is
    behind the socket, EnvironmentProblem when it does not answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout_seconds)
            connection.connect(str(socket_path))
            connection.sendall(line.strip().encode() + b"\n")
            chunks = []
            while chunk := connection.recv(65536):
                chunks.append(chunk)
    except (FileNotFoundError, ConnectionRefusedError) as error:
        raise BalancerGone(f"no HAProxy runtime API at {socket_path}: {error}") from None
    except OSError as error:
        raise EnvironmentProblem(f"HAProxy runtime API at {socket_path} unreachable: {error}") from None
    return b"".join(chunks).decode(errors="replace")


def parse_servers_state(text: str) -> list[ServerState]:
    """The servers of a ``show servers state`` answer (format version 1, header line with names)."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = next((line for line in lines if line.startswith("# be_id")), None)
    if header is None:
        return []
    names = header[2:].split()
    states = []
    for line in lines:
        if line.startswith("#") or not line[0].isdigit():
            continue
        values = dict(zip(names, line.split(), strict=False))
        try:
            states.append(
                ServerState(
                    backend=values["be_name"],
                    server=values["srv_name"],
                    op_state=int(values["srv_op_state"]),
                    admin_state=int(values["srv_admin_state"]),
                    weight=int(values["srv_uweight"]),
                    initial_weight=int(values.get("srv_iweight", values["srv_uweight"])),
                    check_status=int(values.get("srv_check_status", 0)),
                    seconds_since_change=int(values.get("srv_time_since_last_change", 0)),
                    check_health=int(values.get("srv_check_health", 0)),
                )
            )
        except (KeyError, ValueError):
            continue  # a line of another shape: not a server
    return states


def servers_state(socket_path: str | Path) -> list[ServerState]:
    """Every server of every backend, now."""
    return parse_servers_state(command(socket_path, "show servers state"))


def show_stat(socket_path: str | Path) -> list[dict[str, str]]:
    """``show stat`` as rows of column name → value (pxname, svname, status, scur, stot, ...)."""
    text = command(socket_path, "show stat")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        return []
    names = lines[0][2:].rstrip(",").split(",")
    return [dict(zip(names, line.split(","), strict=False)) for line in lines[1:]]


def _expect_empty(socket_path: str | Path, line: str) -> None:
    """Run a command that answers nothing on success; its answer is the error otherwise."""
    answer = command(socket_path, line).strip()
    if answer:
        raise EnvironmentProblem(f"HAProxy runtime API refused {line!r}: {answer}")


def set_state(socket_path: str | Path, servers: Iterable[str], state: str) -> None:
    """``set server <backend>/<server> state <ready|drain|maint>`` for each server."""
    if state not in ("ready", "drain", "maint"):
        raise ValueError(f"expected ready, drain or maint, got {state!r}")
    for name in servers:
        _expect_empty(socket_path, f"set server {name} state {state}")


def set_weight(socket_path: str | Path, servers: Iterable[str], weight: int) -> None:
    """``set weight <backend>/<server> <weight>`` for each server (0..256)."""
    for name in servers:
        _expect_empty(socket_path, f"set weight {name} {int(weight)}")
