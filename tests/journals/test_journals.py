"""Grading Chaos Toolkit journals: the golden journals (real `chaos run` output, see
golden/regenerate.py), the measure mapping, and bad input."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from harness import journals, loading, scoring
from harness.model import RecordError, Verdict

GOLDEN = Path(__file__).parent / "golden"
SCENARIO = GOLDEN / "scenario.yaml"

# golden -> (CTK status, deviated, `chaos run` exit, our verdict, `harness score` exit).
# docs/journals.md shows the same table; keep the two in step.
TABLE: dict[str, tuple[str, bool, int, Verdict, int]] = {
    "completed": ("completed", False, 0, Verdict.UNKNOWN, 3),
    "deviated": ("completed", True, 1, Verdict.UNKNOWN, 3),
    "failed": ("failed", True, 1, Verdict.UNKNOWN, 3),
    "aborted": ("aborted", False, 1, Verdict.UNKNOWN, 3),
    "interrupted": ("interrupted", False, 1, Verdict.UNKNOWN, 3),
    "hypothesis-not-met-before": ("completed", False, 0, Verdict.UNKNOWN, 3),
    "action-failed": ("completed", False, 0, Verdict.UNKNOWN, 3),
    "continuous-hypothesis": ("completed", False, 0, Verdict.UNKNOWN, 3),
    "harness-fault-met": ("completed", False, 0, Verdict.PASS, 0),
    "harness-fault-missed": ("completed", False, 0, Verdict.FAIL, 1),
}


def _journal(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{name}.journal.json").read_text())


@pytest.fixture(scope="module")
def scenario():
    return loading.load_scenario(SCENARIO)


def _grade(journal: dict[str, Any], scenario, name: str = "harness-fault-met"):
    reading = journals.read_journal(
        journal, scenario=scenario.name, experiment_path=f"{name}.json", harness_version="test"
    )
    return scoring.grade(reading.record, scenario), reading


@pytest.mark.parametrize("name", list(TABLE))
def test_golden_journal_exit_codes(name: str, run_cli) -> None:
    status, deviated, chaos_exit, verdict, ours = TABLE[name]
    journal = _journal(name)
    assert (journal["status"], journal["deviated"]) == (status, deviated)
    assert int((GOLDEN / f"{name}.chaos-exit").read_text()) == chaos_exit
    result = run_cli("score", str(GOLDEN / f"{name}.journal.json"), "--scenario", str(SCENARIO), "--json")
    assert result.exit_code == ours, result.stderr
    grade = json.loads(result.stdout)
    assert grade["verdict"] == verdict
    assert len(grade["checks"]) == 2  # both targets graded (or unknown with a reason), none dropped
    for check in grade["checks"]:
        if check["verdict"] == "unknown":
            assert check["missing"], check


# Regenerated in the test: the goldens whose CTK mechanics are the least obvious (a real SIGINT, the
# continuous hypothesis, a harness fault on a real fault proxy). The others are stored the same way;
# regenerate.py rewrites them all.
REGENERATED = ("interrupted", "continuous-hypothesis", "harness-fault-met")


def test_goldens_are_what_chaos_run_writes(tmp_path: Path) -> None:
    """Regenerating goldens with a real `chaos run` gives the stored statuses and outcomes."""
    from tests.journals.golden import regenerate

    for name in REGENERATED:
        fresh = json.loads(regenerate.regenerate(name, tmp_path).read_text())
        stored = _journal(name)
        assert (fresh["status"], fresh["deviated"]) == (stored["status"], stored["deviated"]), name
        for key in ("run", "rollbacks"):
            assert [e.get("status") for e in fresh[key]] == [e.get("status") for e in stored[key]], (
                name,
                key,
            )
        during = [s["steady_state_met"] for s in fresh["steady_states"]["during"]]
        assert (False in during) == (name == "continuous-hypothesis")
        assert (tmp_path / f"{name}.chaos-exit").read_text() == (GOLDEN / f"{name}.chaos-exit").read_text()


def test_plain_journal_reasons_name_what_is_missing(scenario) -> None:
    grade, reading = _grade(_journal("action-failed"), scenario, "action-failed")
    assert any("inject-fault" in r and "RuntimeError" in r for r in grade.reasons)
    assert any("outside the fault ledger" in r for r in grade.reasons)
    grade, reading = _grade(_journal("hypothesis-not-met-before"), scenario, "hypothesis-not-met-before")
    assert any("steady state did not hold before" in r for r in grade.reasons)
    _, reading = _grade(_journal("continuous-hypothesis"), scenario, "continuous-hypothesis")
    assert any("not met in 3 of 4" in n or "not met in" in n for n in reading.notes)
    _, reading = _grade(_journal("interrupted"), scenario, "interrupted")
    assert any("rollbacks did not run" in n for n in reading.notes)


def test_a_proven_harness_fault_is_read_from_the_action_result(scenario) -> None:
    _, reading = _grade(_journal("harness-fault-met"), scenario)
    (fault,) = reading.record.faults
    assert fault.action == "harness.actions.network.partition_regions"
    assert fault.effect_proven is True and "refused" in fault.effect_evidence
    assert fault.target == "us-east-1<->eu-west-1"
    found = {m.name: m.value for m in reading.record.measurements}
    assert found == {"failover_seconds": 1.5, "replication_lag_seconds": 0.25}


def _with_partition(journal: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(journal)
    changed["run"][0].update(changes)
    return changed


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(
            lambda j: _with_partition(j, status="failed", output=None, exception=["boom"]), id="action-failed"
        ),
        pytest.param(
            lambda j: _with_partition(j, output={**j["run"][0]["output"], "effect_proven": False}),
            id="unproven",
        ),
        pytest.param(lambda j: {**j, "status": "interrupted"}, id="interrupted"),
        pytest.param(lambda j: {**j, "status": "aborted"}, id="aborted"),
        pytest.param(lambda j: {**j, "status": None}, id="no-status"),
        pytest.param(lambda j: _with_partition(j, status=None), id="action-unfinished"),
        pytest.param(lambda j: {**j, "run": j["run"][:1]}, id="method-cut-short"),
        pytest.param(lambda j: {**j, "deviated": True}, id="deviated-but-after-met"),
        pytest.param(
            lambda j: {
                **j,
                "steady_states": {**j["steady_states"], "before": {"steady_state_met": False, "probes": []}},
            },
            id="hypothesis-not-met-before",
        ),
        pytest.param(
            lambda j: {**j, "steady_states": {**j["steady_states"], "before": None}}, id="no-hypothesis"
        ),
    ],
)
def test_a_passing_journal_spoiled_is_never_a_pass(spoil, scenario) -> None:
    """Every spoilt copy of the passing golden loses its pass, with a reason."""
    grade, _ = _grade(spoil(_journal("harness-fault-met")), scenario)
    assert grade.verdict is Verdict.UNKNOWN
    assert grade.reasons


def test_all_actions_failed_is_never_a_pass_even_with_perfect_measures(scenario) -> None:
    journal = copy.deepcopy(_journal("harness-fault-met"))
    for entry in journal["run"]:
        if entry["activity"]["type"] == "action":
            entry.update(status="failed", output=None, exception=["RuntimeError: refused"])
    assert journal["status"] == "completed"  # what CTK reports for such a run
    grade, _ = _grade(journal, scenario)
    assert grade.verdict is Verdict.UNKNOWN


def _probe(
    name: str, output: Any, status: str = "succeeded", phase_start: str = "2026-01-01T00:00:01+00:00"
) -> dict:
    return {
        "activity": {
            "type": "probe",
            "name": name,
            "provider": {"type": "python", "module": "m", "func": "f"},
        },
        "output": output,
        "status": status,
        "start": phase_start,
        "end": phase_start,
        "duration": 0.0,
        **({"exception": ["ConnectionError: down"]} if status == "failed" else {}),
    }


def _measures(*entries: dict, before: list[dict] | None = None) -> dict[str, Any]:
    journal = {
        "chaoslib-version": "1.44.0",
        "experiment": {"title": "t", "method": list(range(len(entries)))},
        "start": "2026-01-01T00:00:00+00:00",
        "status": "completed",
        "deviated": False,
        "steady_states": {
            "before": {"steady_state_met": True, "probes": before or []},
            "after": None,
            "during": [],
        },
        "run": list(entries),
        "rollbacks": [],
    }
    record = journals.read_journal(journal, scenario="s", experiment_path="e", harness_version="t").record
    return {m.name: m for m in record.measurements}


def test_measure_mapping_rules() -> None:
    found = _measures(
        _probe("failover_seconds", 2), _probe("lag", {"replication_lag_seconds": 0.5, "other": 1})
    )
    assert found["failover_seconds"].value == 2.0 and found["failover_seconds"].unit == "seconds"
    assert found["replication_lag_seconds"].value == 0.5
    assert "other" not in found
    # A steady-state probe is before the fault window: not mapped by name.
    assert _measures(before=[_probe("failover_seconds", 1)]) == {}
    # A probe named like a measure that failed, or returned no number: the measure without a value.
    failed = _measures(_probe("failover_seconds", None, status="failed"))["failover_seconds"]
    assert failed.value is None and "ConnectionError" in failed.evidence
    assert _measures(_probe("failover_seconds", "fast"))["failover_seconds"].value is None
    assert _measures(_probe("failover_seconds", True))["failover_seconds"].value is None
    assert _measures(_probe("x", {"error_ratio": "1%"}))["error_ratio"].value is None
    # Two readings that differ: ambiguous, no value; two equal readings: that value.
    twice = _measures(_probe("failover_seconds", 1), _probe("failover_seconds", 40))["failover_seconds"]
    assert twice.value is None and "ambiguous" in twice.evidence
    assert (
        _measures(_probe("failover_seconds", 3), _probe("failover_seconds", 3))["failover_seconds"].value == 3
    )
    # The harness probes' own list, in any phase, with its censoring flag.
    reported = {"measurements": [{"name": "rto_seconds", "value": 7, "unit": "seconds", "lower_bound": True}]}
    rto = _measures(_probe("recovery", reported))["rto_seconds"]
    assert rto.value == 7 and rto.lower_bound and rto.source == "recovery"


def test_a_journal_graded_copy_rescored_as_run_json_gives_the_same_verdict(run_cli, tmp_path: Path) -> None:
    journal = GOLDEN / "harness-fault-missed.journal.json"
    first = run_cli("score", str(journal), "--scenario", str(SCENARIO), "--out", str(tmp_path))
    assert first.exit_code == 1, first.stderr
    (copy_file,) = tmp_path.glob("*/run.json")
    again = run_cli("score", str(copy_file), "--scenario", str(SCENARIO))
    assert again.exit_code == 1 and "failover_time" in again.stderr


def test_experiment_found_by_title_or_named(run_cli, tmp_path: Path) -> None:
    journal = _journal("harness-fault-met")
    journal["experiment"]["title"] = "someone else's experiment"
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(journal))
    unlisted = run_cli("score", str(path), "--scenario", str(SCENARIO))
    assert unlisted.exit_code == 3 and "--experiment" in unlisted.stderr
    named = run_cli("score", str(path), "--scenario", str(SCENARIO), "--experiment", "harness-fault-met.json")
    assert named.exit_code == 0, named.stderr
    wrong = run_cli("score", str(path), "--scenario", str(SCENARIO), "--experiment", "nope.yaml")
    assert wrong.exit_code == 2 and "--experiment" in wrong.stderr


def _edit(journal: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(journal)
    *path, last = dotted.split(".")
    node: Any = changed
    for key in path:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if isinstance(node, list) else last] = value
    return changed


_DELETE = object()


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("{not json", "expected JSON"),
        ("[1, 2]", "expected a run.json"),
        ('{"hello": 1}', "expected a run.json"),
        (_edit(_journal("completed"), "run.1.status", 5), "run[1].status"),
        (
            _edit(_journal("completed"), "steady_states.before.steady_state_met", "yes"),
            "steady_states.before.steady_state_met",
        ),
        (_edit(_journal("completed"), "start", _DELETE), ":start:"),
        (_edit(_journal("completed"), "start", "yesterday"), ":start:"),
        (_edit(_journal("completed"), "experiment.title", 3), "experiment.title"),
        (_edit(_journal("completed"), "run", {"a": 1}), ":run:"),
        (_edit(_journal("completed"), "run.0.activity", "x"), "run[0].activity"),
        (_edit(_journal("completed"), "deviated", "no"), ":deviated:"),
        (
            _edit(_journal("harness-fault-met"), "run.0.output.effect_proven", "true"),
            "run[0].output.effect_proven",
        ),
        (
            _edit(
                _journal("completed"),
                "run.1.output",
                {"measurements": [{"name": "x", "value": "1", "unit": "s"}]},
            ),
            "run[1].output.measurements[0].value",
        ),
    ],
)
def test_bad_input_is_one_line_naming_file_and_field(
    content: Any, field: str, run_cli, tmp_path: Path
) -> None:
    path = tmp_path / "journal.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    result = run_cli("score", str(path), "--scenario", str(SCENARIO))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and field in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_run_file_and_journal_are_told_apart() -> None:
    assert journals.is_journal(_journal("completed"))
    assert not journals.is_run_file(_journal("completed"))
    assert journals.is_run_file({"record": {}, "grade": {}})
    assert not journals.is_journal({"record": {}, "experiment": {}})
    with pytest.raises(RecordError) as error:
        journals.read_journal([], scenario="s", experiment_path="e", harness_version="t")
    assert "journal" in str(error.value)


def test_a_journal_of_the_harness_control_is_graded_from_its_run_json(run_cli, tmp_path: Path) -> None:
    """The control marks a journal `failed` when the verdict is not a pass and names the run.json it
    wrote: that record (the full evidence) is graded, as `harness run` would."""
    first = run_cli("score", str(GOLDEN / "harness-fault-missed.journal.json"), "--scenario", str(SCENARIO),
                    "--out", str(tmp_path / "out"))  # fmt: skip
    assert first.exit_code == 1
    (run_json,) = (tmp_path / "out").glob("*/run.json")
    journal = {**_journal("harness-fault-missed"), "status": "failed"}
    journal["harness"] = {"verdict": "fail", "run_json": str(run_json)}
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(journal))
    kept = run_cli("score", str(path), "--scenario", str(SCENARIO))
    assert kept.exit_code == 1 and "graded from the run.json" in kept.stderr, kept.stderr
    journal["harness"]["run_json"] = str(tmp_path / "gone" / "run.json")
    path.write_text(json.dumps(journal))
    alone = run_cli("score", str(path), "--scenario", str(SCENARIO))
    assert alone.exit_code == 3 and "missing" in alone.stderr  # status failed: never better than unknown


def test_a_censored_reading_in_a_probe_mapping_never_passes_an_upper_limit(scenario) -> None:
    """harness.probes.failover.failover_time returns {"failover_seconds": x, "lower_bound": true}
    when the canary had not recovered: x is only a lower bound, whatever the key says."""
    journal = copy.deepcopy(_journal("harness-fault-met"))
    probe = next(e for e in journal["run"] if e["activity"]["name"] == "failover_seconds")
    probe["activity"]["name"] = "failover-time"
    probe["output"] = {"failover_seconds": 1.5, "evidence": "not recovered yet", "lower_bound": True}
    grade, reading = _grade(journal, scenario)
    failover = next(c for c in grade.checks if c.target == "failover_time")
    assert failover.verdict is Verdict.UNKNOWN and failover.lower_bound
    assert "not recovered yet" in reading.record.measurement("failover_seconds").evidence
    probe["output"]["lower_bound"] = "yes"
    with pytest.raises(RecordError) as error:
        _grade(journal, scenario)
    assert error.value.field == "run[1].output.lower_bound"


def test_a_harness_probe_maps_only_what_it_grades(scenario) -> None:
    """harness.probes.replication.replication_lag_seconds is one marker reading (its doc: not graded,
    a steady-state check): it must not stand for the worst lag over the fault window. The harness's
    failover_time returns the canary's failover over the fault window: that one grades."""
    journal = copy.deepcopy(_journal("harness-fault-met"))
    lag = next(e for e in journal["run"] if e["activity"]["name"] == "replication-lag")
    lag["activity"]["provider"] = {
        "type": "python",
        "module": "harness.probes.replication",
        "func": "replication_lag_seconds",
    }
    lag["output"] = {
        "replication_lag_seconds": 0.01,
        "replicas": {"eu-west-1": 0.01},
        "evidence": "one marker",
    }
    failover = next(e for e in journal["run"] if e["activity"]["name"] == "failover_seconds")
    failover["activity"]["name"] = "failover-time"
    failover["activity"]["provider"] = {
        "type": "python",
        "module": "harness.probes.failover",
        "func": "failover_time",
    }
    failover["output"] = {"failover_seconds": 1.5, "evidence": "canary", "lower_bound": False}
    grade, reading = _grade(journal, scenario)
    assert reading.record.measurement("replication_lag_seconds") is None
    verdicts = {c.target: c.verdict for c in grade.checks}
    assert verdicts == {"failover_time": Verdict.PASS, "replication_lag": Verdict.UNKNOWN}


def test_steady_state_probes_grade_nothing_even_through_a_measurements_list() -> None:
    """A hypothesis probe runs before (or after) the fault window: its error ratio of 0 says
    nothing about the fault."""
    calm = {"measurements": [{"name": "error_ratio", "value": 0.0, "unit": "ratio"}]}
    assert _measures(before=[_probe("canary", calm)]) == {}
    assert _measures(_probe("canary", calm))["error_ratio"].value == 0.0


def test_a_journal_without_watchers_never_claims_no_promotion(tmp_path: Path) -> None:
    """A journal holds no Sentinel/Patroni events (nothing watched): a killed primary with no
    promotion event is unknown, not a missed target."""
    journal = copy.deepcopy(_journal("harness-fault-met"))
    kill = journal["run"][0]
    kill["activity"]["provider"] = {
        "type": "python",
        "module": "harness.actions.instances",
        "func": "stop_instance",
        "arguments": {"component": "redis-primary"},
    }
    kill["output"] = {
        "fault_id": "f1",
        "effect_proven": True,
        "evidence": "port refuses",
        "component": "redis-us-east-1",
    }
    scenario_file = tmp_path / "s.yaml"
    scenario_file.write_text(
        SCENARIO.read_text().split("targets:")[0]
        + "targets:\n  promotion_time:\n    measure: promotion_seconds\n    at_most: 30s\n"
        + f"experiments:\n  - path: {GOLDEN / 'harness-fault-met.json'}\n    targets: [promotion_time]\n"
    )
    scenario = loading.load_scenario(scenario_file)
    grade, reading = _grade(journal, scenario)
    assert reading.record.environment["event_watchers"] == []
    (check,) = grade.checks
    assert check.verdict is Verdict.UNKNOWN, check.evidence
