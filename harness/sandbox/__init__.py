"""The local multi-region sandbox: real servers on 127.0.0.1, cross-region links through the fault proxy.

The names below load their modules on first use: every sandbox server written in Python (the
regional APIs, the pglogical keeper) is a module of this package, and importing the whole sandbox
(PostgreSQL, Patroni, HAProxy, topology, canaries) cost each of them about 0.4 s of CPU at start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.sandbox.components import (
        Component,
        load_components,
        pause_component,
        resume_component,
        start_component,
        stop_component,
    )
    from harness.sandbox.lifecycle import ComponentStatus, Sandbox, down, status, up

_HOMES = {
    "Component": "components",
    "load_components": "components",
    "pause_component": "components",
    "resume_component": "components",
    "start_component": "components",
    "stop_component": "components",
    "ComponentStatus": "lifecycle",
    "Sandbox": "lifecycle",
    "down": "lifecycle",
    "status": "lifecycle",
    "up": "lifecycle",
}

__all__ = [
    "Component",
    "ComponentStatus",
    "Sandbox",
    "down",
    "load_components",
    "pause_component",
    "resume_component",
    "start_component",
    "status",
    "stop_component",
    "up",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
