"""Every shipped experiment declares every configuration key its activities read.

chaoslib applies a var-file's keys (and `harness run`'s endpoints) only where the experiment declares
them, so an undeclared key is silently missing under plain `chaos run` ("failover_time needs run_dir
in the configuration"). The keys an activity module reads are found in its source and in the harness
modules it imports (the sandbox's own modules excepted: they read the sandbox's files, not the
configuration), limited to the keys the harness writes: the endpoints file's and the run's.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.yaml"))
# What harness.runner.Observation adds for every run.
RUN_KEYS = frozenset({"run_dir", "run_id", "harness_state_dir", "scenario_path"})
ENDPOINT_KEYS = frozenset(
    {
        "components",
        "primary_region",
        "redis_master_name",
        "redis_sentinels",
        "regions",
        "sandbox_dir",
        "faultproxy_url",
        "links",
        "prometheus_url",
        "etcd_urls",
        "patroni_scope",
        "traffic",
        "postgres_topology",
        "replication",
    }
)
_READ = re.compile(
    r"\b(?:configuration|config|endpoints|conf)\b\s*(?:or\s*\{\}\s*\)\s*)?(?:\.get\(\s*|\[\s*)\"(\w+)\""
)
_NOT_CONFIGURATION = ("harness.sandbox", "harness.faultproxy")


def _path(module: str) -> Path | None:
    base = ROOT / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("harness"))
    return {m for m in found if _path(m) and not m.startswith(_NOT_CONFIGURATION)}


@cache
def _direct(module: str) -> tuple[frozenset[str], frozenset[str]]:
    """(keys read, harness modules imported) by one module's source."""
    path = _path(module)
    if path is None:
        return frozenset(), frozenset()
    keys = {k for k in _READ.findall(path.read_text()) if k in RUN_KEYS | ENDPOINT_KEYS}
    return frozenset(keys), frozenset(_imports(path))


def keys_read(module: str) -> set[str]:
    """The keys `module` and every harness module it imports (transitively) read."""
    found: set[str] = set()
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        keys, imported = _direct(current)
        found |= keys
        todo.extend(imported)
    return found


def _modules(node: Any) -> set[str]:
    if isinstance(node, dict):
        own = {node["module"]} if node.get("type") == "python" and "module" in node else set()
        return own.union(*(_modules(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_modules(v) for v in node))
    return set()


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.name for p in EXPERIMENTS])
def test_experiment_declares_every_key_it_uses(path: Path) -> None:
    experiment = yaml.safe_load(path.read_text())
    declared = set(experiment.get("configuration") or {})
    needed = set(re.findall(r"\$\{(\w+)\}", path.read_text()))
    for module in _modules(experiment):
        if module.startswith("harness."):
            needed |= keys_read(module)
    missing = sorted(needed - declared)
    assert not missing, f"{path.name}: configuration does not declare {', '.join(missing)}"


def test_the_scan_sees_what_failover_time_reads() -> None:
    assert {"run_dir", "run_id", "harness_state_dir"} <= keys_read("harness.probes.failover")
