"""Chaos Toolkit var-files: the one `harness sandbox up` writes, and the ones `chaos run` was given.

A var-file is ``{"configuration": {...}}`` (CTK ignores any other shape). chaoslib applies a
var-file's keys only where the experiment declares them, so the harness control also reads the
var-files of the running `chaos run` itself (from its command line, through click) to find the
target's endpoints in a user's experiment that declares none of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness import loading
from harness.errors import ConfigError
from harness.store import write_text_atomic

__all__ = ["VAR_FILE", "chaos_parameter", "given_configuration", "given_paths", "write_var_file"]

VAR_FILE = "ctk-vars.json"


def write_var_file(directory: Path, endpoints: Mapping[str, Any], endpoints_file: Path) -> Path:
    """Write DIR/ctk-vars.json: the endpoints as CTK configuration, and where the endpoints file is."""
    path = Path(directory) / VAR_FILE
    document = {"configuration": {**endpoints, "harness_endpoints": str(Path(endpoints_file).absolute())}}
    write_text_atomic(path, json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path


def chaos_parameter(name: str) -> Any:
    """A parameter of the `chaos` command running this process (None outside one)."""
    try:
        import click
    except ImportError:
        return None
    context = click.get_current_context(silent=True)
    return context.params.get(name) if context is not None else None


def given_paths() -> list[str]:
    """The --var-file paths given to the running `chaos run`."""
    return [str(p) for p in chaos_parameter("var_file") or ()]


def given_configuration() -> dict[str, Any]:
    """The `configuration` mappings of the running `chaos run`'s var-files, later files winning."""
    merged: dict[str, Any] = {}
    for name in given_paths():
        document = loading.read_document(Path(name))
        configuration = document.get("configuration") if isinstance(document, dict) else None
        if not isinstance(configuration, dict):
            raise ConfigError(name, "configuration", 'expected a var-file {"configuration": {...}}')
        merged.update(configuration)
    return merged
