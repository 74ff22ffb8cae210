"""RTO: from the start of a fault until every client-side check is green again."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from harness.canary import Canary, targets_from_endpoints
from harness.errors import ConfigError
from harness.model import Sample
from harness.probes import _cancel
from harness.probes._window import derived, faults_in_window, missing, window_record

__all__ = ["recovery_time"]

_CHECK_SECONDS = 0.1


def recovery_time(
    timeout_seconds: float = 300.0,
    kinds: Sequence[str] = ("redis",),
    rate_hz: float = 10.0,
    stable_seconds: float = 2.0,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Seconds from the fault's start until every canary (`kinds`) is green again: the measured RTO.

    Run it with `background: true` before the fault (it waits for the ledger to show one), or
    right after the fault action. It returns once every target has answered without a failure
    for `stable_seconds` after the fault, or after `timeout_seconds`, or as soon as the run is
    interrupted (then the RTO is a lower bound). Returns `measurements` (rto_seconds) and its
    checks as `samples` (probe `recovery_check`, so they never mix with the runner's own canary).
    """
    configuration = configuration or {}
    if not 0 < timeout_seconds <= 3600:
        raise ConfigError(
            "arguments", "timeout_seconds", f"expected 0 < seconds ≤ 3600, got {timeout_seconds!r}"
        )
    if isinstance(kinds, str) or not kinds:
        raise ConfigError("arguments", "kinds", f"expected a list of redis, http, postgres; got {kinds!r}")
    targets = targets_from_endpoints(configuration, kinds)
    if not targets:
        raise ConfigError("configuration", "regions", f"no endpoint for canary kinds {list(kinds)}")
    canaries = [Canary(t, rate_hz, max_duration_seconds=timeout_seconds) for t in targets]
    started = time.monotonic()
    for canary in canaries:
        canary.start()
    try:
        while time.monotonic() - started < timeout_seconds:
            if _cancel.wait(_CHECK_SECONDS, configuration):
                break  # the run was interrupted or aborted: report what was seen (a lower bound)
            now = time.monotonic()
            faults = faults_in_window(configuration, started - timeout_seconds, now, origin=started)
            if faults and _green_since(canaries, started + faults[0].applied_at_seconds, now, stable_seconds):
                break
    finally:
        raw = [s for canary in canaries for s in canary.stop()]
    ended = time.monotonic()
    samples = [{**s, "probe": "recovery_check"} for s in raw]
    faults = faults_in_window(configuration, started - timeout_seconds, ended, origin=started)
    if not faults:
        reason = f"no fault in the ledger within {timeout_seconds:g} s"
        return {"samples": samples, "measurements": [missing("rto_seconds", "seconds", "canary", reason)]}
    fault = faults[0]
    first_check = min((s["at_monotonic"] for s in samples), default=ended) - started
    after = [s for s in samples if s["at_monotonic"] - started >= fault.applied_at_seconds]
    if first_check > fault.applied_at_seconds + 1.0 / rate_hz and after and all(s["ok"] for s in after):
        late = first_check - fault.applied_at_seconds
        reason = (
            f"checks began {late:.3f} s after the fault and were all green: the outage, if any, was missed"
        )
        return {"samples": samples, "measurements": [missing("rto_seconds", "seconds", "canary", reason)]}
    record = window_record(
        "recovery",
        started,
        ended,
        samples=(Sample.from_raw(s, started, probe="canary") for s in samples),
        faults=[fault],
    )
    return {"samples": samples, "measurements": derived(record, ("rto_seconds",))}


def _green_since(canaries: Sequence[Canary], fault_at: float, now: float, stable_seconds: float) -> bool:
    """Whether every canary has answered, without one failure, for `stable_seconds` after the fault."""
    for canary in canaries:
        after = [s for s in canary.samples() if s["at_monotonic"] >= fault_at]
        failures = [s["at_monotonic"] for s in after if not s["ok"]]
        since = max(failures, default=fault_at)
        if now - since < stable_seconds or not any(s["ok"] and s["at_monotonic"] > since for s in after):
            return False
    return True
