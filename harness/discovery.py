"""What `chaos discover resilience-harness` reports: every activity of harness.actions and harness.probes.

chaoslib finds the distribution's top-level package (``harness``) and calls its ``discover``
(harness/__init__.py forwards here). The activity modules are found by iterating the two
packages, so a module added later is listed without editing this file; each one's ``__all__``
names its activities (chaoslib's rule). Argument and return types are read with
``typing.get_type_hints``: the modules use ``from __future__ import annotations``, so chaoslib's
own reading of a signature sees strings and would call every type ``object``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import PurePath
from typing import Any

__all__ = ["activity_modules", "discover", "discover_harness_activities", "portable_type"]

DISTRIBUTION = "resilience-harness"
PACKAGES = (("harness.actions", "action"), ("harness.probes", "probe"))
# Modules in the activity folders that are not activity modules: the Locust file runs only in a
# Locust subprocess (importing locust in-process breaks requests and boto3).
NOT_ACTIVITY_MODULES = frozenset({"harness.actions.locustfile"})


def activity_modules() -> Iterator[tuple[str, str]]:
    """(module name, "action" or "probe") of every public module under harness.actions and harness.probes."""
    for package_name, kind in PACKAGES:
        package = importlib.import_module(package_name)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            name = f"{package_name}.{info.name}"
            if info.name.startswith("_") or info.ispkg or name in NOT_ACTIVITY_MODULES:
                continue
            yield name, kind


def portable_type(annotation: Any) -> str:
    """chaoslib's portable type vocabulary (string, number, integer, boolean, list, mapping, ...);
    an optional value is named by its type, a union of several by their names joined with "|"."""
    if annotation is type(None) or annotation is None:
        return "null"
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        named = [portable_type(arg) for arg in typing.get_args(annotation) if arg is not type(None)]
        return "|".join(dict.fromkeys(named)) or "null"
    if origin is typing.Literal:
        return portable_type(type(typing.get_args(annotation)[0]))
    base = origin or annotation
    simple = {bool: "boolean", int: "integer", float: "number", str: "string", bytes: "byte"}
    if base in simple:
        return simple[base]
    if inspect.isclass(base):
        if issubclass(base, PurePath):  # a path is given as a string in an experiment
            return "string"
        if issubclass(base, Mapping):
            return "mapping"
        if issubclass(base, set | frozenset):
            return "set"
        if issubclass(base, tuple):
            return "tuple"
        if issubclass(base, Sequence) and not issubclass(base, str | bytes):
            return "list"
    return "object"


def _typed(activity: dict[str, Any], module: types.ModuleType) -> dict[str, Any]:
    """chaoslib's entry for one activity with real type names, and every argument's default JSON-safe."""
    func = getattr(module, activity["name"])
    hints = typing.get_type_hints(func)
    if "return" in hints:
        activity["return_type"] = portable_type(hints["return"])
    for argument in activity["arguments"]:
        if argument["name"] in hints:
            argument["type"] = portable_type(hints[argument["name"]])
        if "default" in argument and not isinstance(argument["default"], str | int | float | bool | None):
            argument["default"] = repr(argument["default"])
    return activity


def discover_harness_activities() -> list[dict[str, Any]]:
    """Every exported activity of every activity module, in module order."""
    from chaoslib.discovery.discover import discover_activities

    found = []
    for module_name, kind in activity_modules():
        module = importlib.import_module(module_name)
        found.extend(_typed(a, module) for a in discover_activities(module_name, kind))
    return found


def discover(discover_system: bool = True) -> dict[str, Any]:
    """The extension's discovery document (chaoslib's format). `discover_system` is accepted for
    chaoslib's call; the harness reads its target from an endpoints file, not by discovery."""
    from chaoslib.discovery.discover import initialize_discovery_result

    try:
        version = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    discovery = initialize_discovery_result(DISTRIBUTION, version, "harness")
    discovery["activities"].extend(discover_harness_activities())
    return discovery
