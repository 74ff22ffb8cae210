"""Property: removing or corrupting evidence never turns a verdict into a false pass.

From a record that passes with full evidence (a Redis primary killed, Sentinel promoting a
replica, two regions' canaries, marker and exporter lag, verified writes), hypothesis removes or
corrupts evidence at random. Whatever it does, a check may pass only where the full record's same
check passes with the same value, and a malformed record is a typed error (exit 2 in the CLI).
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.model import (
    Comparison,
    Event,
    ExperimentRef,
    FaultRecord,
    RecordError,
    Region,
    RunRecord,
    Sample,
    Scenario,
    Target,
    Verdict,
)
from harness.scoring import grade

REGIONS = ("us-east-1", "eu-west-1")
REPLICAS = ("redis-eu-west-1", "redis-us-east-1-b")
FAULT_AT, UNDONE_AT, RECOVERED_AT, END = 10.0, 20.0, 12.5, 30.0
RATE_HZ = 20.0


def _full_record() -> RunRecord:
    samples = []
    for index, region in enumerate(REGIONS):
        for tick in range(int(END * RATE_HZ) - 10):
            at = tick / RATE_HZ + index * 0.005
            down = FAULT_AT <= at < RECOVERED_AT
            samples.append(
                Sample(
                    "canary",
                    at,
                    None if down else 0.002,
                    not down,
                    region,
                    0.001 if down else 0.002,
                    "ConnectionError: refused" if down else "",
                )
            )
    for tick in range(10, 57):
        samples.extend(Sample("replication_lag", tick / 2, 0.01, True, replica) for replica in REPLICAS)
    for tick in range(5, 29):
        samples.extend(
            Sample("replication_lag_exporter", float(tick), 0.0, True, replica) for replica in REPLICAS
        )
    started = [
        Event(
            0.0,
            "canary.started",
            "runner",
            {"region": r, "kind": "redis", "rate_hz": RATE_HZ, "timeout_seconds": 1.0},
        )
        for r in REGIONS
    ]
    events = [
        *started,
        Event(5.0, "replication.replicas", "probe", {"service": "redis", "replicas": list(REPLICAS)}),
        Event(11.0, "sentinel.+odown", "sentinel", {"exact": True}),
        Event(
            12.0,
            "sentinel.+switch-master",
            "sentinel",
            {"old_primary": "127.0.0.1:6379", "new_primary": "127.0.0.1:6380", "exact": True},
        ),
        *(
            Event(
                29.5,
                "writes.verified",
                "runner",
                {"region": r, "kind": "redis", "checked": 400, "interval_seconds": 0.05},
            )
            for r in REGIONS
        ),
    ]
    kill = {
        "activity": {
            "type": "action",
            "name": "kill-redis-primary",
            "provider": {
                "type": "python",
                "module": "harness.actions.instances",
                "func": "stop_instance",
                "arguments": {"target": "redis-primary"},
            },
        },
        "status": "succeeded",
        "output": {"fault_id": "f1"},
    }
    return RunRecord(
        run_id="full",
        scenario="shop",
        experiment_title="Redis primary failover",
        experiment_path="experiments/redis-primary-failure.yaml",
        harness_version="0",
        started_at="2026-01-01T00:00:00+00:00",
        duration_seconds=END,
        status="completed",
        steady_state_before=True,
        steady_state_after=True,
        events=tuple(sorted(events, key=lambda e: e.at_seconds)),
        samples=tuple(sorted(samples, key=lambda s: s.at_seconds)),
        faults=(
            FaultRecord(
                "f1",
                "harness.actions.instances.stop_instance",
                "redis-primary",
                FAULT_AT,
                UNDONE_AT,
                True,
                "port 6379 refuses connections",
            ),
        ),
        journal={"status": "completed", "run": [kill]},
    )


TARGETS = (
    Target("failover_time", "failover_seconds", 30.0, "seconds", Comparison.AT_MOST, critical=True),
    Target("detection_time", "detection_seconds", 10.0, "seconds"),
    Target("promotion_time", "promotion_seconds", 10.0, "seconds"),
    Target("rto", "rto_seconds", 60.0, "seconds"),
    Target("rpo", "rpo_seconds", 60.0, "seconds"),
    Target("lost_writes", "lost_writes_count", 0.0, "count"),
    Target("replication_lag", "replication_lag_seconds", 5.0, "seconds"),
    Target("canary_latency", "canary_p99_latency_seconds", 1.0, "seconds"),
)
SCENARIO = Scenario(
    name="shop",
    path="scenarios/shop.yaml",
    regions=(Region("us-east-1", primary=True), Region("eu-west-1")),
    targets=TARGETS,
    experiments=(
        ExperimentRef("experiments/redis-primary-failure.yaml", targets=tuple(t.name for t in TARGETS)),
    ),
)
FULL = _full_record()
FULL_DATA = json.loads(json.dumps(FULL.to_dict()))  # the JSON form: lists, not tuples
FULL_GRADE = grade(FULL, SCENARIO)


def test_the_full_record_passes_every_target() -> None:
    assert [(c.target, c.verdict) for c in FULL_GRADE.checks] == [(t.name, Verdict.PASS) for t in TARGETS], [
        (c.target, c.verdict.value, c.evidence) for c in FULL_GRADE.checks if c.verdict is not Verdict.PASS
    ]
    assert FULL_GRADE.verdict is Verdict.PASS


# ---------------------------------------------------------------- corruptions (on the JSON form)

Data = dict[str, Any]


def drop_region(data: Data, draw) -> None:
    region = draw(st.sampled_from(REGIONS))
    data["samples"] = [s for s in data["samples"] if not (s["probe"] == "canary" and s["region"] == region)]


def drop_span(data: Data, draw) -> None:
    """Silence one region's canary for a while (a gap): 2 to 10 s starting anywhere in the run."""
    region = draw(st.sampled_from(REGIONS))
    start = draw(st.floats(0.0, END - 2.0))
    length = draw(st.floats(2.0, 10.0))
    data["samples"] = [
        s
        for s in data["samples"]
        if not (
            s["probe"] == "canary" and s["region"] == region and start <= s["at_seconds"] < start + length
        )
    ]


def drop_promotion(data: Data, draw) -> None:
    data["events"] = [e for e in data["events"] if e["kind"] != "sentinel.+switch-master"]


def same_primary(data: Data, draw) -> None:
    for event in data["events"]:
        if event["kind"] == "sentinel.+switch-master":
            event["detail"]["new_primary"] = event["detail"]["old_primary"]


def drop_detection(data: Data, draw) -> None:
    data["events"] = [e for e in data["events"] if e["kind"] != "sentinel.+odown"]


def unprove_effect(data: Data, draw) -> None:
    for fault in data["faults"]:
        fault["effect_proven"] = draw(st.sampled_from([None, False]))


def drop_faults(data: Data, draw) -> None:
    data["faults"] = []


def not_undone(data: Data, draw) -> None:
    for fault in data["faults"]:
        fault["undone_at_seconds"] = None


def bad_status(data: Data, draw) -> None:
    data["status"] = draw(st.sampled_from(["aborted", "failed", "interrupted"]))


def no_steady_state(data: Data, draw) -> None:
    data["steady_state_before"] = draw(st.sampled_from([None, False]))


def drop_lag(data: Data, draw) -> None:
    """Drop one replica's marker readings (the probe named both replicas)."""
    replica = draw(st.sampled_from(REPLICAS))
    data["samples"] = [
        s for s in data["samples"] if not (s["probe"] == "replication_lag" and s["region"] == replica)
    ]


def lag_unreachable(data: Data, draw) -> None:
    replica = draw(st.sampled_from(REPLICAS))
    for sample in data["samples"]:
        if (
            sample["probe"] == "replication_lag"
            and sample["region"] == replica
            and sample["at_seconds"] >= FAULT_AT
        ):
            sample.update(ok=False, value=None, error="unreachable: connection refused")


def exporter_disagrees(data: Data, draw) -> None:
    for sample in data["samples"]:
        if sample["probe"] == "replication_lag_exporter":
            sample["value"] = draw(st.floats(8.0, 100.0))


def unverified_writes(data: Data, draw) -> None:
    region = draw(st.sampled_from(REGIONS))
    data["events"] = [
        e for e in data["events"] if not (e["kind"] == "writes.verified" and e["detail"]["region"] == region)
    ]
    data["events"].append(
        {
            "at_seconds": 29.5,
            "kind": "writes.unverified",
            "source": "runner",
            "detail": {"region": region, "kind": "redis", "error": "ConnectionError"},
        }
    )


def drop_verification(data: Data, draw) -> None:
    data["events"] = [e for e in data["events"] if e["kind"] != "writes.verified"]


def drop_canary_started(data: Data, draw) -> None:
    region = draw(st.sampled_from(REGIONS))
    data["events"] = [
        e for e in data["events"] if not (e["kind"] == "canary.started" and e["detail"]["region"] == region)
    ]
    data["samples"] = [s for s in data["samples"] if not (s["probe"] == "canary" and s["region"] == region)]


def action_outside_ledger(data: Data, draw) -> None:
    module = draw(st.sampled_from(["chaosk8s.pod.actions", "chaosaws.ec2.actions"]))
    data["journal"]["run"].append(
        {"activity": {"type": "action", "name": "extra", "provider": {"type": "python", "module": module}}}
    )


def shuffle_samples(data: Data, draw) -> None:
    """Out-of-order samples are the same evidence: any verdict must stay the full record's."""
    random.Random(draw(st.integers(0, 2**32))).shuffle(data["samples"])


# Each of these takes away evidence a pass needs: the run's verdict can no longer be pass. The
# others (a gap before the fault, a fault never undone, shuffled samples) may leave a pass, but
# only with the full record's values (the per-check property).
ESSENTIAL = {
    drop_region,
    drop_promotion,
    same_primary,
    drop_detection,
    unprove_effect,
    drop_faults,
    bad_status,
    no_steady_state,
    drop_lag,
    lag_unreachable,
    exporter_disagrees,
    unverified_writes,
    drop_verification,
    drop_canary_started,
    action_outside_ledger,
}
REMOVALS = [
    drop_region,
    drop_span,
    drop_promotion,
    same_primary,
    drop_detection,
    unprove_effect,
    drop_faults,
    not_undone,
    bad_status,
    no_steady_state,
    drop_lag,
    lag_unreachable,
    exporter_disagrees,
    unverified_writes,
    drop_verification,
    drop_canary_started,
    action_outside_ledger,
    shuffle_samples,
]


def _wrong_type(data: Data, draw) -> str:
    """Make one field of one nested item the wrong type; returns the field path expected in the error."""
    key, field, value = draw(
        st.sampled_from(
            [
                ("samples", "ok", "false"),
                ("samples", "at_seconds", "1.5"),
                ("samples", "value", "0.002"),
                ("samples", "latency_seconds", True),
                ("events", "at_seconds", "11.0"),
                ("events", "detail", "x"),
                ("faults", "effect_proven", "true"),
                ("faults", "applied_at_seconds", None),
            ]
        )
    )
    if not data[key]:  # emptied by a removal: corrupt a top-level field instead
        data["duration_seconds"] = "30"
        return "duration_seconds"
    index = draw(st.integers(0, len(data[key]) - 1))
    data[key][index][field] = value
    return f"{key}[{index}].{field}"


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(st.data())
def test_removing_or_corrupting_evidence_never_passes_what_the_full_record_does_not(data) -> None:
    corrupted = copy.deepcopy(FULL_DATA)
    chosen = data.draw(
        st.lists(st.sampled_from(REMOVALS), min_size=1, max_size=3, unique=True), label="removals"
    )
    for removal in chosen:
        removal(corrupted, data.draw)
    malformed = data.draw(st.booleans(), label="malformed")
    if malformed:
        field = _wrong_type(corrupted, data.draw)
        with pytest.raises(RecordError) as raised:
            RunRecord.from_dict(json.loads(json.dumps(corrupted)))
        assert raised.value.field == field
        return
    graded = grade(RunRecord.from_dict(json.loads(json.dumps(corrupted))), SCENARIO)
    full = {c.target: c for c in FULL_GRADE.checks}
    for check in graded.checks:
        if check.verdict is Verdict.PASS:
            # Less evidence may only look worse: the same value, or a more pessimistic bound (e.g.
            # promotion timed from the fault when the detection event is gone, an upper bound).
            truth = full[check.target]
            assert truth.verdict is Verdict.PASS
            worse_or_same = (
                check.measured >= truth.measured - 1e-9
                if check.comparison is Comparison.AT_MOST
                else check.measured <= truth.measured + 1e-9
            )
            assert worse_or_same, (
                f"{[f.__name__ for f in chosen]}: {check.target} passed with {check.measured}, "
                f"better than the full record's {truth.measured}"
            )
    if any(f in ESSENTIAL for f in chosen):
        assert graded.verdict is not Verdict.PASS, (
            f"{[f.__name__ for f in chosen]} still passes: "
            f"{[(c.target, c.verdict.value, c.measured) for c in graded.checks]}"
        )
    if set(chosen) == {shuffle_samples}:  # the same evidence in another order (ties may name another replica)
        verdicts = [(c.target, c.verdict, c.measured) for c in graded.checks]
        assert verdicts == [(c.target, c.verdict, c.measured) for c in FULL_GRADE.checks]


@pytest.mark.parametrize(("field", "value"), [("ok", "false"), ("at_seconds", "1.5"), ("region", None)])
def test_a_malformed_record_exits_2_with_one_line(tmp_path: Path, run_cli, field: str, value: Any) -> None:
    data = copy.deepcopy(FULL_DATA)
    data["samples"][3][field] = value
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"record": data}))
    scenario = tmp_path / "shop.yaml"
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "redis-primary-failure.yaml").write_text("title: x\nmethod: []\n")
    scenario.write_text(
        "name: shop\nregions: [{name: us-east-1, primary: true}]\n"
        "targets: {failover_time: {measure: failover_seconds, at_most: 30s}}\n"
        "experiments: [{path: experiments/redis-primary-failure.yaml, targets: [failover_time]}]\n"
    )
    for command in (
        ["score", str(path), "-s", str(scenario)],
        ["gate", "-s", str(scenario), "--from-runs", str(path)],
        ["report", str(path), "--out", str(tmp_path / "site")],
    ):
        result = run_cli(*command)
        assert result.exit_code == 2, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"harness: {path}:record.samples[3].{field}: expected")
