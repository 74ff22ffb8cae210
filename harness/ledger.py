"""The fault ledger: every fault is written down, with how to undo it, before it is applied.

An append-only JSON-lines file (``<state dir>/faults.jsonl``), each line fsynced. A fault is
open from its ``applied`` line until its ``undone`` line. ``harness recover`` calls the undo
of every open fault; runs refuse to start while any is open.

The state directory is, in order: the ``harness_state_dir`` configuration key, the
``HARNESS_STATE_DIR`` environment variable, or ``.harness`` in the working directory.
"""

from __future__ import annotations

import importlib
import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import EnvironmentProblem
from harness.model import FaultRecord

LEDGER_FILE = "faults.jsonl"


# Ledgers written before the activities moved under the harness package name "actions.network" etc.;
# `harness recover` must still undo what they hold.
_LEGACY_PACKAGES = ("actions.", "probes.")


def _current_module(module: str) -> str:
    return f"harness.{module}" if module.startswith(_LEGACY_PACKAGES) else module


@dataclass(frozen=True, slots=True)
class Undo:
    """How to undo a fault: a function by module path and its keyword arguments."""

    module: str
    func: str
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def call(self) -> Any:
        function = getattr(importlib.import_module(_current_module(self.module)), self.func)
        return function(**self.arguments)


@dataclass(frozen=True, slots=True)
class OpenFault:
    fault_id: str
    action: str
    target: str
    undo: Undo
    applied_wall: float
    applied_monotonic: float
    run_id: str = ""


def state_dir(configuration: Mapping[str, Any] | None = None) -> Path:
    """Where the ledger (and locks) live for this configuration."""
    configured = (configuration or {}).get("harness_state_dir") or os.environ.get("HARNESS_STATE_DIR")
    return Path(configured or ".harness")


def _append(directory: Path, entry: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode()
    fd = os.open(directory / LEDGER_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_entries(directory: Path) -> list[dict[str, Any]]:
    """Every ledger line, oldest first; a torn last line (crash mid-write) is skipped."""
    path = directory / LEDGER_FILE
    if not path.exists():
        return []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise EnvironmentProblem(f"cannot read the fault ledger {path}: {exc}") from None
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def record_applied(directory: Path, action: str, target: str, undo: Undo, run_id: str | None = None) -> str:
    """Write down a fault about to be applied; returns its id. Call before touching anything."""
    fault_id = uuid.uuid4().hex[:12]
    _append(
        directory,
        {
            "event": "applied",
            "fault_id": fault_id,
            "action": action,
            "target": target,
            "undo": {"module": undo.module, "func": undo.func, "arguments": dict(undo.arguments)},
            "run_id": run_id or os.environ.get("HARNESS_RUN_ID", ""),
            "wall": time.time(),
            "monotonic": time.monotonic(),
        },
    )
    return fault_id


def record_effect(directory: Path, fault_id: str, proven: bool, evidence: str) -> None:
    """Write down whether the fault's observable effect was seen."""
    _append(
        directory,
        {
            "event": "effect",
            "fault_id": fault_id,
            "proven": proven,
            "evidence": evidence,
            "wall": time.time(),
            "monotonic": time.monotonic(),
        },
    )


def record_undone(directory: Path, fault_id: str, how: str = "rollback") -> None:
    """Write down that a fault was undone."""
    _append(
        directory,
        {
            "event": "undone",
            "fault_id": fault_id,
            "how": how,
            "wall": time.time(),
            "monotonic": time.monotonic(),
        },
    )


def fault_records(
    directory: Path, origin_monotonic: float, run_id: str | None = None, unlabelled: bool = False
) -> list[FaultRecord]:
    """Faults of one run (every fault when run_id is None) timed in seconds from `origin_monotonic`,
    oldest first; `unlabelled` also counts faults applied outside any run (plain `chaos run`)."""
    runs = None if run_id is None else {run_id, ""} if unlabelled else {run_id}
    applied: dict[str, dict[str, Any]] = {}
    for entry in read_entries(directory):
        event, fault_id = entry.get("event"), entry.get("fault_id")
        if event == "applied" and (runs is None or entry.get("run_id", "") in runs):
            applied[fault_id] = {"applied": entry}
        elif event in ("effect", "undone") and fault_id in applied:
            applied[fault_id][event] = entry
    records = []
    for fault in applied.values():
        entry, effect, undone = fault["applied"], fault.get("effect"), fault.get("undone")
        records.append(
            FaultRecord(
                fault_id=entry["fault_id"],
                action=entry["action"],
                target=entry["target"],
                applied_at_seconds=entry["monotonic"] - origin_monotonic,
                undone_at_seconds=None if undone is None else undone["monotonic"] - origin_monotonic,
                effect_proven=None if effect is None else bool(effect["proven"]),
                effect_evidence="" if effect is None else effect.get("evidence", ""),
            )
        )
    return sorted(records, key=lambda f: f.applied_at_seconds)


def open_faults(directory: Path) -> list[OpenFault]:
    """Faults applied and not undone, oldest first."""
    applied: dict[str, OpenFault] = {}
    for entry in read_entries(directory):
        if entry.get("event") == "applied":
            try:
                undo = entry["undo"]
                applied[entry["fault_id"]] = OpenFault(
                    fault_id=entry["fault_id"],
                    action=entry["action"],
                    target=entry["target"],
                    undo=Undo(undo["module"], undo["func"], undo.get("arguments", {})),
                    applied_wall=entry["wall"],
                    applied_monotonic=entry["monotonic"],
                    run_id=entry.get("run_id", ""),
                )
            except (KeyError, TypeError, AttributeError) as exc:
                # A fault that cannot be read cannot be undone: never skip it silently.
                raise EnvironmentProblem(
                    f"{directory / LEDGER_FILE}: unreadable applied entry {json.dumps(entry)[:120]} "
                    f"({type(exc).__name__}: {exc}); undo that fault by hand, then remove its line"
                ) from None
        elif entry.get("event") == "undone" and isinstance(entry.get("fault_id"), str):
            applied.pop(entry["fault_id"], None)
    return list(applied.values())


def open_fault_for(directory: Path, action_prefix: str, target: str) -> OpenFault | None:
    """The newest open fault on `target` whose action starts with `action_prefix`."""
    matching = [
        f for f in open_faults(directory) if f.target == target and f.action.startswith(action_prefix)
    ]
    return matching[-1] if matching else None


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    fault: OpenFault
    error: str = ""  # empty when the undo succeeded

    @property
    def is_undone(self) -> bool:
        return not self.error


def recover(directory: Path, run_id: str | None = None) -> list[RecoveryResult]:
    """Undo every open fault (of one run, if given), newest first; a failure is reported and the
    rest carry on."""
    results = []
    for fault in reversed(open_faults(directory)):
        if run_id is not None and fault.run_id != run_id:
            continue
        try:
            fault.undo.call()
        except Exception as exc:  # each undo is independent; report and continue
            results.append(RecoveryResult(fault, f"{type(exc).__name__}: {exc}"))
            continue
        record_undone(directory, fault.fault_id, how="recover")
        results.append(RecoveryResult(fault))
    return results
