"""grade(): which targets a run grades, and the run doubts that make every check unknown, against
records with a known truth. Targets here are probe-reported measures (Prometheus), so the
verdicts depend on scoring alone, not on how harness.measures derives canary figures."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.model import (
    Event,
    ExperimentRef,
    FaultRecord,
    Measurement,
    RunRecord,
    Sample,
    Scenario,
    Target,
    Verdict,
)
from harness.scoring import grade

KILL = {
    "activity": {
        "type": "action",
        "name": "kill-primary",
        "provider": {"type": "python", "module": "harness.actions.instances", "func": "stop_instance"},
    },
    "status": "succeeded",
}
SCENARIO = Scenario(
    name="shop",
    path="scenarios/shop.yaml",
    targets=(
        Target("latency", "slo_p99_latency_seconds", 0.5, "seconds", critical=True, source="seed 9 line 4"),
        Target("error_rate", "slo_error_ratio", 0.05, "ratio"),
        Target("saturation", "cpu_saturation_ratio", 0.8, "ratio"),
    ),
    experiments=(
        ExperimentRef("experiments/partition.yaml", "daily", targets=("latency", "error_rate")),
        ExperimentRef("experiments/load.yaml", "weekly", targets=("latency", "saturation")),
    ),
)


def _record(**changes) -> RunRecord:
    base = dict(
        run_id="r1",
        scenario="shop",
        experiment_title="partition",
        experiment_path="/work/project/experiments/partition.yaml",
        harness_version="0",
        started_at="2026-01-01T00:00:00+00:00",
        duration_seconds=30.0,
        status="completed",
        steady_state_before=True,
        steady_state_after=True,
        faults=(
            FaultRecord(
                "f1", "harness.actions.network.partition_regions", "eu-west-1", 10.0, 20.0, True, "cut"
            ),
        ),
        measurements=(
            Measurement("slo_p99_latency_seconds", 0.12, "seconds", "prometheus"),
            Measurement("slo_error_ratio", 0.01, "ratio", "prometheus"),
        ),
        journal={"status": "completed", "run": [KILL]},
    )
    base.update(changes)
    return RunRecord(**base)


def test_a_clean_run_passes_its_listed_targets_only() -> None:
    result = grade(_record(), SCENARIO)
    assert result.verdict is Verdict.PASS, result
    assert [c.target for c in result.checks] == ["latency", "error_rate"]
    assert result.checks[0].source == "seed 9 line 4"


def test_an_unlisted_experiment_grades_nothing_and_is_unknown() -> None:
    result = grade(_record(experiment_path="experiments/other.yaml"), SCENARIO)
    assert result.verdict is Verdict.UNKNOWN and result.checks == ()
    assert result.reasons == ("scenario shop does not list experiment experiments/other.yaml",)


def test_a_listed_target_the_run_did_not_measure_is_unknown_never_dropped() -> None:
    record = _record(
        experiment_path="experiments/load.yaml",
        measurements=(Measurement("slo_p99_latency_seconds", 0.12, "seconds", "prometheus"),),
    )
    result = grade(record, SCENARIO)
    assert [(c.target, c.verdict) for c in result.checks] == [
        ("latency", Verdict.PASS),
        ("saturation", Verdict.UNKNOWN),
    ]
    assert result.verdict is Verdict.UNKNOWN
    assert "not measured" in result.checks[1].missing[0]


def test_a_ref_without_targets_grades_nothing() -> None:
    scenario = replace(SCENARIO, experiments=(ExperimentRef("experiments/partition.yaml"),))
    result = grade(_record(), scenario)
    assert result.verdict is Verdict.UNKNOWN and "without targets" in result.reasons[0]


@pytest.mark.parametrize(
    ("changes", "doubt"),
    [
        ({"status": "aborted"}, "chaoslib status is 'aborted', not 'completed'"),
        ({"status": "failed"}, "chaoslib status is 'failed', not 'completed'"),
        ({"status": "interrupted"}, "chaoslib status is 'interrupted', not 'completed'"),
        ({"steady_state_before": None}, "no steady state was checked before the fault"),
        ({"steady_state_before": False}, "steady state did not hold before the fault"),
        ({"faults": ()}, "no fault was journalled"),
        ({"faults": (), "journal": {}}, "no fault was journalled"),
        (
            {
                "faults": (
                    FaultRecord("f1", "harness.actions.network.partition_regions", "eu", 10.0, 20.0, None),
                )
            },
            "effect of harness.actions.network.partition_regions on eu was not checked",
        ),
        (
            {
                "journal": {
                    "run": [
                        KILL,
                        {
                            "activity": {
                                "type": "action",
                                "name": "drain-node",
                                "provider": {"type": "python", "module": "chaosk8s.node.actions"},
                            }
                        },
                    ]
                }
            },
            "action drain-node (python chaosk8s.node.actions) ran outside the fault ledger",
        ),
        (
            {
                "journal": {
                    "run": [
                        KILL,
                        {
                            "activity": {
                                "type": "action",
                                "name": "kill",
                                "provider": {"type": "process", "path": "pkill"},
                            }
                        },
                    ]
                }
            },
            "action kill (process pkill) ran outside the fault ledger",
        ),
    ],
)
def test_run_doubts_make_every_check_unknown(changes, doubt) -> None:
    result = grade(_record(**changes), SCENARIO)
    assert result.verdict is Verdict.UNKNOWN
    assert all(c.verdict is Verdict.UNKNOWN for c in result.checks)
    assert any(doubt in r for r in result.reasons), result.reasons
    assert all(any(doubt in m for m in c.missing) for c in result.checks)


def test_a_method_without_actions_needs_no_fault() -> None:
    probe_only = {"run": [{"activity": {"type": "probe", "name": "p", "provider": {"type": "python"}}}]}
    assert grade(_record(faults=(), journal=probe_only), SCENARIO).verdict is Verdict.PASS


def test_a_guardrail_abort_is_a_fail_not_a_doubt() -> None:
    crossed = Event(15.0, "guardrail.crossed", "runner", {"reason": "canary error ratio 80%"})
    result = grade(_record(status="interrupted", events=(crossed,)), SCENARIO)
    assert result.verdict is Verdict.FAIL
    assert not any("chaoslib status" in r for r in result.reasons)
    assert any("guardrail" in r and "80%" in r for r in result.reasons)


def _canary(region: str, start: float, end: float, failing: tuple[float, float] | None, every: int = 0):
    """20 Hz canary samples; inside `failing`, `every`-th sample fails (0: all fail)."""
    samples = []
    for tick in range(int(start * 20), int(end * 20)):
        at = tick / 20
        down = failing is not None and failing[0] <= at < failing[1] and (every == 0 or tick % every != 0)
        samples.append(
            Sample(
                "canary",
                at,
                None if down else 0.002,
                not down,
                region,
                1.0 if down else 0.002,
                "timeout after 1 s" if down else "",
            )
        )
    return samples


def test_canary_and_prometheus_disagreeing_on_a_partition_is_unknown() -> None:
    # 10-20 s: the cut region's canary fails 80 % of its requests, the primary's none: 40 % overall;
    # Prometheus never saw those requests and reports 0 %.
    started = tuple(
        Event(
            0.5,
            "canary.started",
            "runner",
            {"region": r, "kind": "redis", "rate_hz": 20.0, "timeout_seconds": 1.0},
        )
        for r in ("us-east-1", "eu-west-1")
    )
    samples = _canary("us-east-1", 1.0, 29.0, None) + _canary("eu-west-1", 1.0, 29.0, (10.0, 20.0), every=5)
    record = _record(
        events=started,
        samples=tuple(sorted(samples, key=lambda s: s.at_seconds)),
        measurements=(
            Measurement("slo_p99_latency_seconds", 0.12, "seconds", "prometheus"),
            Measurement("slo_error_ratio", 0.0, "ratio", "prometheus"),
        ),
    )
    check = next(c for c in grade(record, SCENARIO).checks if c.target == "error_rate")
    assert check.verdict is Verdict.UNKNOWN
    (prometheus, canary) = check.witnesses
    assert prometheus == ("slo_error_ratio", 0.0)
    # 40 % of all canary requests, 80 % of the cut region's: either way far from Prometheus's 0 %.
    assert canary[0] == "error_ratio" and canary[1] >= 0.38


def test_a_region_of_the_scenario_whose_canary_never_started_is_unknown() -> None:
    # The record shows canaries in us-east-1 only; the scenario runs eu-west-1 too, and a region
    # with no canary at all leaves no trace in the samples.
    from harness.model import Region

    scenario = replace(SCENARIO, regions=(Region("us-east-1", primary=True), Region("eu-west-1")))
    started = Event(
        0.5, "canary.started", "runner", {"region": "us-east-1", "kind": "redis", "rate_hz": 20.0}
    )
    result = grade(_record(events=(started,)), scenario)
    assert result.verdict is Verdict.UNKNOWN
    assert "no canary started in region eu-west-1 of scenario shop" in result.reasons
    both = (started, replace(started, detail={**started.detail, "region": "eu-west-1"}))
    assert grade(_record(events=both), scenario).verdict is Verdict.PASS
    # Regions kept out of the sandbox have no canary of their own.
    remote = replace(scenario, regions=(*scenario.regions, Region("ap-south-1", in_sandbox=False)))
    assert grade(_record(events=both), remote).verdict is Verdict.PASS


def test_a_fault_an_action_applied_that_the_ledger_lacks_is_a_doubt() -> None:
    # The method's partition returned fault f2, but this run's ledger holds only f1.
    applied = {**KILL, "output": {"fault_id": "f2", "effect_proven": True}}
    result = grade(_record(journal={"run": [KILL, applied]}), SCENARIO)
    assert result.verdict is Verdict.UNKNOWN
    assert "fault f2 applied by kill-primary is not in this run's fault ledger" in result.reasons
    recorded = {**KILL, "output": {"fault_id": "f1", "effect_proven": True}}
    assert grade(_record(journal={"run": [recorded]}), SCENARIO).verdict is Verdict.PASS


def test_a_guardrail_abort_fails_even_an_unlisted_experiment() -> None:
    crossed = Event(15.0, "guardrail.crossed", "runner", {"reason": "canary error ratio 80%"})
    record = _record(experiment_path="experiments/other.yaml", status="interrupted", events=(crossed,))
    result = grade(record, SCENARIO)
    assert result.verdict is Verdict.FAIL and result.checks == ()
    assert result.reasons == (
        "scenario shop does not list experiment experiments/other.yaml",
        "aborted by a guardrail: canary error ratio 80%",
    )
