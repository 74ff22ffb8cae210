"""A probe's output as the runner records it, for the probe tests that grade it."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from harness.model import Event, FaultRecord, RunRecord, Sample


def as_record(output: Mapping[str, Any], origin: float, faults: Sequence[FaultRecord] = ()) -> RunRecord:
    """The probe's output as the runner records it (run clock from `origin`)."""
    return RunRecord(
        run_id="t",
        scenario="t",
        experiment_title="t",
        experiment_path="t",
        harness_version="t",
        started_at="2026-01-01T00:00:00+00:00",
        duration_seconds=time.monotonic() - origin,
        status="completed",
        events=tuple(Event.from_raw(e, origin) for e in output["events"]),
        samples=tuple(Sample.from_raw(s, origin) for s in output["samples"]),
        faults=tuple(faults),
    )
