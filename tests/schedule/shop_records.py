"""Run records of the test scenario `shop` (scenarios/shop.yaml in the `project` fixture)."""

from __future__ import annotations

from harness.model import FaultRecord, Measurement, RunRecord
from harness.units import unit_of_measure


def make_record(
    run_id: str,
    *,
    started_at: str = "2025-03-12T02:00:05+00:00",
    experiment_path: str = "experiments/redis-failover.json",
    scenario: str = "shop",
    measured: dict[str, float] | None = None,
    effect_proven: bool | None = True,
) -> RunRecord:
    """A run of the shop's Redis failover with the given measurements (defaults: all inside targets)."""
    values = {"failover_seconds": 4.2, "replication_lag_seconds": 0.8, "lost_writes_count": 0.0}
    values.update(measured or {})
    return RunRecord(
        run_id=run_id,
        scenario=scenario,
        experiment_title="Redis primary failover",
        experiment_path=experiment_path,
        harness_version="0.1.0",
        started_at=started_at,
        duration_seconds=60.0,
        status="completed",
        steady_state_before=True,
        steady_state_after=True,
        faults=(
            FaultRecord(
                "f1", "harness.actions.instances.stop_instance", "redis-primary", 20.0, 40.0, effect_proven
            ),
        ),
        measurements=tuple(
            Measurement(name, value, unit_of_measure(name) or "")
            for name, value in values.items()
            if value is not None
        ),
    )
