"""The local multi-region sandbox: real servers on 127.0.0.1, cross-region links through the fault proxy."""

from harness.sandbox.components import (
    Component,
    load_components,
    pause_component,
    resume_component,
    start_component,
    stop_component,
)
from harness.sandbox.lifecycle import ComponentStatus, Sandbox, down, status, up

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
