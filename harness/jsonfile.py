"""Reading a JSON file a user hands us (a run.json, a Chaos Toolkit journal): any problem is one
ConfigError line naming the file, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

__all__ = ["read_json"]


def read_json(path: Path) -> Any:
    """The parsed content of `path`; ConfigError for a missing, unreadable or malformed file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "", "no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(path, "", f"cannot read: {error}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(path, "", f"expected JSON, {error.msg} at line {error.lineno}") from None
    except RecursionError:
        raise ConfigError(path, "", "expected JSON, nested too deeply") from None
