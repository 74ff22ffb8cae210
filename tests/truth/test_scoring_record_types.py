"""RunRecord.from_dict and Grade.from_dict check every field's type: a malformed record is a typed
error naming the field, never a silently wrong verdict (`"ok": "false"` is not true)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from harness.model import (
    Check,
    Comparison,
    Event,
    FaultRecord,
    Grade,
    Measurement,
    RecordError,
    RunRecord,
    Sample,
    Verdict,
)


def _record() -> RunRecord:
    return RunRecord(
        run_id="r1",
        scenario="s",
        experiment_title="t",
        experiment_path="experiments/x.yaml",
        harness_version="0",
        started_at="2026-01-01T00:00:00+00:00",
        duration_seconds=10.0,
        status="completed",
        steady_state_before=True,
        events=(Event(1.0, "fault.applied", "harness", {"target": "redis"}),),
        samples=(Sample("canary", 0.5, 0.002, True, "us-east-1", 0.002),),
        faults=(
            FaultRecord("f1", "harness.actions.instances.stop_instance", "redis", 1.0, 5.0, True, "refused"),
        ),
        measurements=(Measurement("failover_seconds", 3.0, "seconds", "probe"),),
    )


def _grade() -> Grade:
    check = Check(
        "failover_time", "failover_seconds", Verdict.PASS, 3.0, 30.0, "seconds", Comparison.AT_MOST, 1,
        False, "ok", witnesses=(("canary", 3.0),), missing=(),
    )  # fmt: skip
    return Grade("r1", "s", "t", Verdict.PASS, 100.0, (check,))


def test_round_trip_keeps_every_field() -> None:
    record = _record()
    assert RunRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    grade = _grade()
    assert Grade.from_dict(json.loads(json.dumps(grade.to_dict()))) == grade


BAD_RECORDS = [
    ("samples", 0, "ok", "false", "samples[0].ok: expected true or false, got 'false'"),
    ("samples", 0, "at_seconds", "0.5", "samples[0].at_seconds: expected a number, got '0.5'"),
    ("samples", 0, "value", True, "samples[0].value: expected a number or null, got true"),
    ("samples", 0, "region", 3, "samples[0].region: expected a string, got 3"),
    ("events", 0, "at_seconds", None, "events[0].at_seconds: expected a number, got null"),
    ("events", 0, "at_seconds", float("nan"), "events[0].at_seconds: expected a finite number, got NaN"),
    ("events", 0, "detail", [], "events[0].detail: expected an object, got []"),
    (
        "faults",
        0,
        "effect_proven",
        "true",
        "faults[0].effect_proven: expected true, false or null, got 'true'",
    ),
    ("faults", 0, "applied_at_seconds", "1", "faults[0].applied_at_seconds: expected a number, got '1'"),
    ("measurements", 0, "lower_bound", 0, "measurements[0].lower_bound: expected true or false, got 0"),
    ("measurements", 0, "value", "3", "measurements[0].value: expected a number or null, got '3'"),
]


@pytest.mark.parametrize(("key", "index", "field", "value", "message"), BAD_RECORDS)
def test_a_wrong_type_in_a_nested_field_is_named(key, index, field, value, message) -> None:
    data = _record().to_dict()
    data[key][index][field] = value
    with pytest.raises(RecordError) as raised:
        RunRecord.from_dict(data)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("steady_state_before", "yes", "steady_state_before: expected true, false or null, got 'yes'"),
        ("duration_seconds", "10", "duration_seconds: expected a number, got '10'"),
        ("status", 1, "status: expected a string, got 1"),
        ("started_at", "yesterday", "started_at: expected an ISO 8601 time, got 'yesterday'"),
        ("activity_errors", "boom", "activity_errors: expected a list, got 'boom'"),
        ("samples", {"a": 1}, 'samples: expected a list, got {"a": 1}'),
        ("journal", [], "journal: expected an object, got []"),
        ("schema_version", "1", "schema_version: expected 1, got '1'"),
    ],
)
def test_a_wrong_type_at_the_top_is_named(field, value, message) -> None:
    data = _record().to_dict()
    data[field] = value
    with pytest.raises(RecordError) as raised:
        RunRecord.from_dict(data)
    assert str(raised.value) == message


def test_missing_and_unknown_fields_are_named() -> None:
    data = _record().to_dict()
    del data["samples"][0]["at_seconds"]
    with pytest.raises(RecordError, match=r"^samples\[0\]\.at_seconds: missing$"):
        RunRecord.from_dict(data)
    data = _record().to_dict()
    data["faults"][0]["colour"] = "blue"
    with pytest.raises(RecordError, match=r"^faults\[0\]\.colour: unknown field"):
        RunRecord.from_dict(data)
    with pytest.raises(RecordError, match=r"^samples\[0\]: expected an object, got 3"):
        RunRecord.from_dict({**_record().to_dict(), "samples": [3]})


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("verdict",), "passed", "verdict: expected one of pass, fail, unknown, got 'passed'"),
        (("score",), "100", "score: expected a number, got '100'"),
        (("checks", 0, "critical"), "no", "checks[0].critical: expected true or false, got 'no'"),
        (("checks", 0, "weight"), 1.5, "checks[0].weight: expected a whole number, got 1.5"),
        (("checks", 0, "comparison"), "below", "checks[0].comparison: expected one of at_most, at_least"),
        (("checks", 0, "witnesses"), [["canary"]], "checks[0].witnesses[0]: expected a [name, value] pair"),
        (("checks", 0, "missing"), [1], "checks[0].missing[0]: expected a string, got 1"),
    ],
)
def test_grade_fields_are_checked(path, value, message) -> None:
    data = copy.deepcopy(_grade().to_dict())
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(RecordError) as raised:
        Grade.from_dict(data)
    assert str(raised.value).startswith(message)


def test_score_of_a_malformed_record_exits_2_with_one_line(tmp_path: Path, run_cli) -> None:
    data = _record().to_dict()
    data["samples"][0]["at_seconds"] = "0.5"
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"record": data}))
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "name: s\nregions: [{name: us-east-1, primary: true}]\n"
        "targets: {failover_time: {measure: failover_seconds, at_most: 30s}}\n"
    )
    result = run_cli("score", str(path), "--scenario", str(scenario))
    assert result.exit_code == 2, result
    assert result.stderr.strip().splitlines() == [
        f"harness: {path}:record.samples[0].at_seconds: expected a number, got '0.5'"
    ]


def test_numpy_scalars_from_a_live_run_are_read_as_plain_values() -> None:
    import numpy

    data = _record().to_dict()
    data["samples"] = [dict(data["samples"][0], ok=numpy.bool_(False), value=numpy.int64(2))]
    data["measurements"] = [
        dict(data["measurements"][0], value=numpy.float64(3.5), lower_bound=numpy.bool_(True))
    ]
    record = RunRecord.from_dict(data)
    assert record.samples[0].ok is False and type(record.samples[0].value) is float
    assert record.measurements[0].lower_bound is True and record.measurements[0].value == 3.5


def test_a_record_error_is_a_harness_error() -> None:
    from harness.errors import HarnessError

    assert issubclass(RecordError, HarnessError) and issubclass(RecordError, ValueError)
