"""Failover probes: how long clients saw the primary gone, and who took over.

`failover_time` waits (bounded) until the canary has recovered from the latest fault, so a
method can continue as soon as the system has failed over instead of sleeping a fixed time.
Its figure uses the same formula the scorer derives from the run record (harness.measures).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from chaoslib.exceptions import ActivityFailed

from harness import ledger, measures
from harness.model import FaultRecord, Measurement, RunRecord, Sample
from probes.canary import read_canary_log

__all__ = ["failover_time"]

_POLL_SECONDS = 0.05
_QUIET_SECONDS = 3.0  # no failure this long after the fault: the fault caused no outage


def _latest_fault_monotonic(configuration: Mapping[str, Any]) -> float | None:
    run_id = configuration.get("run_id", "")
    applied = [
        e["monotonic"]
        for e in ledger.read_entries(ledger.state_dir(configuration))
        if e.get("event") == "applied" and (not run_id or e.get("run_id") == run_id)
    ]
    return max(applied, default=None)


def _failover(samples: list[dict[str, Any]], fault_at: float) -> Measurement | None:
    record = RunRecord(
        run_id="probe",
        scenario="",
        experiment_title="",
        experiment_path="",
        harness_version="",
        started_at="",
        duration_seconds=0.0,
        status="running",
        samples=tuple(
            Sample("canary", s["at_monotonic"] - fault_at, s.get("value"), s["ok"], s.get("region", ""))
            for s in samples
            if s.get("probe") == "canary"
        ),
        faults=(FaultRecord("probe", "latest fault", "", 0.0),),
    )
    return measures.failover_seconds(record)


def failover_time(
    timeout_seconds: float = 60.0, configuration: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Wait until the canary recovers from the latest fault (at most `timeout_seconds`); returns
    `failover_seconds` (first failed request → first success after it) as a measurement."""
    configuration = configuration or {}
    run_dir = configuration.get("run_dir")
    if not run_dir:
        raise ActivityFailed("failover_time needs run_dir in the configuration (where the canary writes)")
    fault_at = _latest_fault_monotonic(configuration) or time.monotonic()
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        after = [s for s in read_canary_log(run_dir) if s["at_monotonic"] >= fault_at]
        failed = [s for s in after if not s["ok"]]
        if failed and any(s["ok"] and s["at_monotonic"] > failed[0]["at_monotonic"] for s in after):
            break
        if not failed and after and after[-1]["at_monotonic"] - fault_at >= _QUIET_SECONDS:
            break
        time.sleep(_POLL_SECONDS)
    else:
        raise ActivityFailed(f"the canary did not recover within {timeout_seconds:g} s of the fault")
    measurement = _failover(read_canary_log(run_dir), fault_at)
    return {
        "failover_seconds": measurement.value if measurement else None,
        "evidence": measurement.evidence if measurement else "no canary samples",
    }
