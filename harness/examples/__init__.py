"""The example scenarios and experiments, shipped inside the package.

``harness/examples/scenarios`` and ``harness/examples/experiments`` are links to the checkout's
top-level ``scenarios/`` and ``experiments/`` (one copy of each file in the repository); a wheel
holds the files themselves (package data). They are the last place a bare scenario name is looked
up (after ./scenarios) and what `harness init DIR` copies into a user's project. A scenario names
its experiments as ``experiments/<file>``, relative to the folder above its own, so the same
layout works here, in the checkout and in an initialised project.
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["EXAMPLE_FOLDERS", "copy_examples", "examples_dir", "packaged_scenario"]

EXAMPLE_FOLDERS = ("scenarios", "experiments")
_SUFFIXES = (".yaml", ".yml", ".json")


def examples_dir() -> Path:
    return Path(__file__).resolve().parent


def packaged_scenario(name: str) -> Path | None:
    """The packaged example scenario called `name`, or None."""
    if not name or "/" in name or "\\" in name:
        return None
    for suffix in _SUFFIXES:
        candidate = examples_dir() / "scenarios" / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def example_files() -> list[Path]:
    """Every shipped example file, relative to the examples folder."""
    base = examples_dir()
    return sorted(
        path.relative_to(base)
        for folder in EXAMPLE_FOLDERS
        for path in (base / folder).glob("*")
        if path.is_file() and (path.suffix in _SUFFIXES or path.name == "README.md")
    )


def copy_examples(destination: Path) -> list[Path]:
    """Copy the examples into `destination` (scenarios/, experiments/); the files written."""
    written = []
    for relative in example_files():
        target = Path(destination) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(examples_dir() / relative, target)
        written.append(target)
    return written
