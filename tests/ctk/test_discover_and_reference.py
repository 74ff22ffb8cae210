"""The extension as Chaos Toolkit sees it: `chaos discover` lists every activity; the reference is current."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from harness.discovery import NOT_ACTIVITY_MODULES, activity_modules, portable_type
from harness.reference import render_reference

ROOT = Path(__file__).resolve().parents[2]
CHAOS = Path(sys.executable).with_name("chaos")


def _module_files() -> dict[str, Path]:
    """Every public module file under harness/actions and harness/probes, by module name."""
    found = {}
    for folder in ("actions", "probes"):
        for path in (ROOT / "harness" / folder).glob("*.py"):
            name = f"harness.{folder}.{path.stem}"
            if not path.stem.startswith("_") and name not in NOT_ACTIVITY_MODULES:
                found[name] = path
    return found


def _exported(path: Path) -> list[str]:
    """The names in a module's literal __all__ (read from the source, nothing imported)."""
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"{path} defines no __all__ (chaos discover reads it)")


def test_chaos_discover_lists_every_activity_with_types_and_docs(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(CHAOS), "discover", "--no-install", "--discovery-path", "discovery.json", "resilience-harness"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    discovery = json.loads((tmp_path / "discovery.json").read_text())
    assert discovery["extension"]["name"] == "resilience-harness"
    listed = {(a["mod"], a["name"]): a for a in discovery["activities"]}
    files = _module_files()
    assert {name for name, _ in activity_modules()} == set(files)
    for module, path in files.items():
        kind = "action" if ".actions." in module else "probe"
        for name in _exported(path):
            activity = listed.get((module, name))
            assert activity is not None, f"{module}.{name} is in __all__ but chaos discover does not list it"
            assert activity["type"] == kind
            assert activity["doc"], f"{module}.{name} has no docstring"
            for argument in activity["arguments"]:
                untyped = f"{module}.{name}({argument['name']}) has no type hint"
                assert argument.get("type", "object") != "object", untyped
    assert len(listed) == sum(len(_exported(p)) for p in files.values())


def test_portable_types_follow_chaoslib_names() -> None:
    from collections.abc import Mapping, Sequence

    assert portable_type(float | None) == "number"
    assert portable_type(Mapping[str, int] | None) == "mapping"
    assert portable_type(Sequence[str]) == "list"
    assert portable_type(str | Path) == "string"
    assert portable_type(bool) == "boolean"


def test_reference_page_is_generated_from_the_current_code() -> None:
    page = (ROOT / "docs" / "reference.md").read_text()
    assert page == render_reference(), (
        "docs/reference.md is stale: regenerate it with `python -m harness.reference > docs/reference.md`"
    )
    for module, path in _module_files().items():
        assert f"## {module}" in page
        for name in _exported(path):
            assert f"func: {name}" in page
