"""RPO: acknowledged writes the system lost in a fault, counted after recovery."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from harness.canary import Canary, lost_writes, targets_from_endpoints
from harness.errors import ConfigError
from harness.model import Event
from harness.probes._window import derived, faults_in_window, missing, window_record

__all__ = ["lost_acknowledged_writes"]

_RETRY_SECONDS = 0.5


def lost_acknowledged_writes(
    duration_seconds: float,
    rate_hz: float = 20.0,
    recovery_timeout_seconds: float = 30.0,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Write to Redis through Sentinel for `duration_seconds`, then count acknowledged writes lost.

    Meant for `background: true` across the fault. Every write the primary acknowledged is kept
    in a ledger; after the loop it waits (≤ `recovery_timeout_seconds`) for a primary to answer
    and reads every key back. Returns `measurements` lost_writes_count and rpo_seconds (span of
    acknowledgements lost), `lost_keys` (first 20) and `checked`; both values are None
    (unknown) when no primary answered in time.
    """
    if not 0 < duration_seconds <= 3600:
        raise ConfigError(
            "arguments", "duration_seconds", f"expected 0 < seconds ≤ 3600, got {duration_seconds!r}"
        )
    targets = targets_from_endpoints(configuration or {}, ["redis"])
    if not targets:
        raise ConfigError(
            "configuration", "redis_sentinels", "expected Sentinel addresses and redis_master_name"
        )
    # Keys of its own (the region label names them), so the runner's canary never overwrites them.
    target = targets[0]
    labelled = type(target)(
        "redis", f"{target.region}-durability-{uuid.uuid4().hex[:8]}", target.sentinels, target.master_name
    )
    canary = Canary(labelled, rate_hz, max_duration_seconds=duration_seconds)
    started = time.monotonic()
    canary.start()
    time.sleep(duration_seconds)
    canary.stop()
    acked = canary.acked_writes()
    lost, error = None, ""
    deadline = time.monotonic() + recovery_timeout_seconds
    while lost is None and time.monotonic() < deadline:
        try:
            lost = lost_writes(labelled, acked)
        except Exception as exc:  # no primary yet: try again until the deadline
            error = f"{type(exc).__name__}: {exc}"[:200]
            time.sleep(_RETRY_SECONDS)
    ended = time.monotonic()
    if lost is None:
        reason = f"no primary answered within {recovery_timeout_seconds:g} s: {error}"
        return {
            "checked": len(acked),
            "measurements": [
                missing("lost_writes_count", "count", "canary", reason),
                missing("rpo_seconds", "seconds", "canary", reason),
            ],
        }
    events = [Event(w.at_monotonic - started, "write.lost", "canary", {"key": w.key}) for w in lost]
    events.append(
        Event(
            ended - started,
            "writes.verified",
            "canary",
            {"checked": len(acked), "interval_seconds": 1 / rate_hz},
        )
    )
    record = window_record(
        "durability", started, ended, events=events, faults=faults_in_window(configuration, started, ended)
    )
    return {
        "checked": len(acked),
        "lost_keys": [w.key for w in lost[:20]],
        "measurements": derived(record, ("lost_writes_count", "rpo_seconds")),
    }
