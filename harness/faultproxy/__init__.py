"""A Toxiproxy-compatible TCP fault proxy: the HTTP API of Toxiproxy 2.x, our own data path.

Links without toxics move bytes with `os.splice` in a thread per direction; links with toxics run
through an event-loop pipeline of toxic stages. See ../shared/TOXIPROXY_API.md for the contract.
"""

from __future__ import annotations

from ._api import VERSION
from ._server import DEFAULT_PORT, FaultProxy, load_config, serve, start_server

__all__ = ["DEFAULT_PORT", "VERSION", "FaultProxy", "load_config", "serve", "start_server"]

for _name in ("FaultProxy", "serve", "start_server", "load_config"):
    globals()[_name].__module__ = __name__
