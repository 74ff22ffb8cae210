"""The fault ledger as the action modules use it: open a fault, write down its proven effect, close it.

One copy for every action module, so every fault is journalled the same way: the entry is
written before anything is touched, the effect is what was *observed* (each proof a
``(held, sentence)`` pair; no proof at all is no effect), and the inverse closes every open
fault of its action on the same target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness import ledger

Proof = tuple[bool, str]  # (whether the observation showed the effect, what was observed)


def open_fault(
    configuration: Mapping[str, Any] | None,
    action: str,
    target: str,
    undo: ledger.Undo,
    reuse_open: bool = False,
) -> str:
    """Journal a fault about to be applied; its id. `reuse_open`: an open fault of the same action
    on the same target is returned instead (its undo restores the state before the first one)."""
    directory = ledger.state_dir(configuration)
    if reuse_open and (fault := ledger.open_fault_for(directory, action, target)) is not None:
        return fault.fault_id
    return ledger.record_applied(directory, action, target, undo, run_id=(configuration or {}).get("run_id"))


def record_effect(
    configuration: Mapping[str, Any] | None, fault_id: str, proofs: Sequence[Proof], **detail: Any
) -> dict[str, Any]:
    """Write down whether every observation showed the effect; the action's result with `detail`."""
    proven = bool(proofs) and all(held for held, _ in proofs)
    evidence = "; ".join(text for _, text in proofs) or "nothing observed"
    ledger.record_effect(ledger.state_dir(configuration), fault_id, proven, evidence)
    return {**detail, "fault_id": fault_id, "effect_proven": proven, "evidence": evidence}


def close_faults(configuration: Mapping[str, Any] | None, actions: Sequence[str], target: str) -> list[str]:
    """Mark undone every open fault on `target` whose action starts with one of `actions`; their ids."""
    directory = ledger.state_dir(configuration)
    faults = [
        f for f in ledger.open_faults(directory) if f.target == target and f.action.startswith(tuple(actions))
    ]
    for fault in faults:
        ledger.record_undone(directory, fault.fault_id)
    return [f.fault_id for f in faults]


def recorded_effect(configuration: Mapping[str, Any] | None, fault_id: str) -> Proof | None:
    """The effect last written down for `fault_id`, or None when none was."""
    found = None
    for entry in ledger.read_entries(ledger.state_dir(configuration)):
        if entry.get("event") == "effect" and entry.get("fault_id") == fault_id:
            found = (bool(entry.get("proven")), str(entry.get("evidence", "")))
    return found
