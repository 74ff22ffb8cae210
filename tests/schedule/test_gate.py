"""The pre-release gate: verdicts, exit codes, JUnit and summary outputs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from shop_records import make_record

from harness.gate import GatedRun, gate_verdict
from harness.model import Check, Comparison, ExperimentRef, Grade, Verdict
from harness.store import write_json_atomic


def check(target: str, verdict: Verdict, *, critical: bool = False, weight: int | None = None) -> Check:
    return Check(
        target=target,
        measure=f"{target}_seconds",
        verdict=verdict,
        measured=None if verdict is Verdict.UNKNOWN else 1.0,
        limit=2.0,
        unit="seconds",
        comparison=Comparison.AT_MOST,
        weight=weight if weight is not None else (3 if critical else 1),
        critical=critical,
        evidence="",
    )


def grade(*checks: Check, run_id: str = "r1", reasons: tuple[str, ...] = ()) -> Grade:
    total = sum(c.weight for c in checks)
    passed = sum(c.weight for c in checks if c.verdict is Verdict.PASS)
    verdicts = {c.verdict for c in checks}
    verdict = next(
        (v for v in (Verdict.FAIL, Verdict.UNKNOWN, Verdict.PASS) if v in verdicts), Verdict.UNKNOWN
    )
    return Grade(run_id, "shop", "t", verdict, 100.0 * passed / total if total else 0.0, checks, reasons)


# ---------------------------------------------------------------- gate_verdict


def test_every_check_passed_is_exit_0() -> None:
    verdict, code, reasons = gate_verdict(
        [grade(check("failover", Verdict.PASS, critical=True), check("lag", Verdict.PASS))]
    )
    assert (verdict, code) == (Verdict.PASS, 0)
    assert "every critical check passed" in reasons[0]


def test_a_missed_critical_target_is_exit_1_whatever_the_minimum() -> None:
    graded = grade(
        check("failover", Verdict.FAIL, critical=True), *(check(f"t{i}", Verdict.PASS) for i in range(20))
    )
    verdict, code, reasons = gate_verdict([graded], min_score=0)
    assert (verdict, code) == (Verdict.FAIL, 1)
    assert reasons == ["r1: critical target missed: failover"]


def test_an_unknown_critical_target_is_exit_3() -> None:
    graded = grade(
        check("failover", Verdict.UNKNOWN, critical=True), check("lag", Verdict.PASS), reasons=("no proof",)
    )
    verdict, code, reasons = gate_verdict([graded], min_score=0)
    assert (verdict, code) == (Verdict.UNKNOWN, 3)
    assert reasons == ["r1: critical target unknown: failover (no proof)"]


def test_the_minimum_score_decides_non_critical_misses() -> None:
    # failover (3) + lag (1) passed, lost writes (1) missed: 80.
    graded = grade(
        check("failover", Verdict.PASS, critical=True),
        check("lag", Verdict.PASS),
        check("lost", Verdict.FAIL),
    )
    assert gate_verdict([graded])[:2] == (Verdict.FAIL, 1)
    assert gate_verdict([graded], min_score=80)[:2] == (Verdict.PASS, 0)
    assert "tolerated non-critical miss: lost" in gate_verdict([graded], min_score=80)[2][-1]


def test_a_shortfall_unknown_checks_could_make_up_is_exit_3() -> None:
    graded = grade(
        check("failover", Verdict.PASS, critical=True),
        check("lag", Verdict.UNKNOWN),
        check("lost", Verdict.PASS),
    )
    verdict, code, reasons = gate_verdict([graded])
    assert (verdict, code) == (Verdict.UNKNOWN, 3)
    assert "unknown checks could make it up: lag" in reasons[0]
    # With a miss too, the shortfall is certain.
    missed = grade(
        check("failover", Verdict.PASS, critical=True),
        check("lag", Verdict.UNKNOWN),
        check("lost", Verdict.FAIL),
    )
    assert gate_verdict([missed], min_score=90)[:2] == (Verdict.FAIL, 1)


def test_fail_beats_unknown_beats_pass_across_runs() -> None:
    passed = grade(check("failover", Verdict.PASS, critical=True), run_id="a")
    unknown = grade(check("failover", Verdict.UNKNOWN, critical=True), run_id="b")
    failed = grade(check("failover", Verdict.FAIL, critical=True), run_id="c")
    assert gate_verdict([passed, unknown])[:2] == (Verdict.UNKNOWN, 3)
    assert gate_verdict([unknown, failed, passed])[:2] == (Verdict.FAIL, 1)
    assert gate_verdict([passed, passed])[:2] == (Verdict.PASS, 0)


def test_nothing_to_gate_is_unknown() -> None:
    assert gate_verdict([]) == (Verdict.UNKNOWN, 3, ["no runs to gate"])
    assert gate_verdict([grade(reasons=("no target applies",))])[:2] == (Verdict.UNKNOWN, 3)


# ---------------------------------------------------------------- the command


def _run_file(directory: Path, run_id: str, *, age: timedelta = timedelta(hours=1), **changes) -> str:
    """A run.json of the shop's Redis failover (by default) that started `age` ago."""
    started = (datetime.now(UTC) - age).isoformat()
    path = directory / f"{run_id}.json"
    write_json_atomic(path, make_record(run_id, started_at=started, **changes).to_dict())
    return str(path)


def test_gate_passes_writes_junit_and_summary(project: Path, run_cli) -> None:
    run = _run_file(project, "run-ok")
    result = run_cli("gate", "--scenario", "shop", "--from-runs", run)
    assert result.exit_code == 0, result
    assert "gate PASS (exit 0)" in result.stdout
    suites = ET.parse(project / "reports/gate/shop/junit.xml").getroot()
    cases = suites.findall(".//testcase")
    assert len(cases) == 3 and not suites.findall(".//failure")
    assert "run-ok" in (project / "reports/gate/shop/summary.md").read_text()


def test_gate_exit_codes_for_miss_and_unknown(project: Path, run_cli) -> None:
    ok = _run_file(project, "run-ok")
    slow = _run_file(project, "run-slow", measured={"failover_seconds": 45.0})
    unproven = _run_file(project, "run-unproven", effect_proven=None)
    lag = _run_file(project, "run-lag", measured={"replication_lag_seconds": 8.0})
    junit = project / "out" / "gate.xml"

    missed = run_cli("gate", "-s", "shop", "--from-runs", ok, "--from-runs", slow, "--junit", str(junit))
    assert missed.exit_code == 1, missed
    assert "run-slow: critical target missed: failover_time" in missed.stdout
    assert ET.parse(junit).getroot().findall(".//failure")

    unknown = run_cli("gate", "-s", "shop", "--from-runs", ok, "--from-runs", unproven)
    assert unknown.exit_code == 3, unknown
    assert "critical target unknown: failover_time" in unknown.stdout

    assert run_cli("gate", "-s", "shop", "--from-runs", lag).exit_code == 1
    assert run_cli("gate", "-s", "shop", "--from-runs", lag, "--min-score", "60").exit_code == 0


def test_gate_refuses_bad_input_with_one_line(project: Path, run_cli) -> None:
    # Without --from-runs the gate runs the suite: every experiment file is validated first.
    no_runs = run_cli("gate", "-s", "shop")
    assert no_runs.exit_code == 2 and "redis-failover.json: invalid experiment" in no_runs.stderr

    other = _run_file(project, "run-other", scenario="bank")
    wrong = run_cli("gate", "-s", "shop", "--from-runs", other)
    assert wrong.exit_code == 2
    assert wrong.stderr.strip() == f"harness: {other}:record.scenario: expected a run of 'shop', got 'bank'"

    broken = project / "broken.json"
    broken.write_text('{"run_id": ')
    result = run_cli("gate", "-s", "shop", "--from-runs", str(broken))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"harness: {broken}:") and len(result.stderr.strip().splitlines()) == 1

    assert run_cli("gate", "-s", "nowhere", "--from-runs", other).exit_code == 2


@pytest.mark.parametrize("score", ["-1", "101", "high"])
def test_gate_rejects_a_bad_minimum(project: Path, run_cli, score: str) -> None:
    result = run_cli("gate", "-s", "shop", "--from-runs", "x.json", "--min-score", score)
    assert result.exit_code == 2
    assert "min-score" in result.stderr


# ---------------------------------------------------------------- experiment weight and critical


def test_a_critical_experiment_that_failed_fails_the_gate_whatever_the_minimum() -> None:
    # Only a non-critical target missed: min-score 0 would let it through, the experiment's
    # `critical: true` does not.
    graded = grade(check("failover", Verdict.PASS, critical=True), check("lag", Verdict.FAIL))
    drill = ExperimentRef("experiments/region-drill.json", "quarterly", weight=3, critical=True)
    verdict, code, reasons = gate_verdict([GatedRun(graded, drill)], min_score=0)
    assert (verdict, code) == (Verdict.FAIL, 1)
    assert "r1: critical experiment experiments/region-drill.json failed: lag" in reasons
    # The same run of a non-critical experiment is tolerated.
    partition = ExperimentRef("experiments/partition.json", "weekly")
    assert gate_verdict([GatedRun(graded, partition)], min_score=0)[:2] == (Verdict.PASS, 0)


def test_a_critical_experiment_graded_unknown_makes_the_gate_unknown() -> None:
    graded = grade(check("failover", Verdict.PASS, critical=True), check("lag", Verdict.UNKNOWN))
    drill = ExperimentRef("experiments/region-drill.json", "quarterly", critical=True)
    verdict, code, reasons = gate_verdict([GatedRun(graded, drill)], min_score=0)
    assert (verdict, code) == (Verdict.UNKNOWN, 3)
    assert "r1: critical experiment experiments/region-drill.json is unknown: lag" in reasons


def test_the_suite_score_is_weighted_by_experiment_weight() -> None:
    passed = grade(check("failover", Verdict.PASS), run_id="a")
    failed = grade(check("lag", Verdict.FAIL), run_id="b")
    heavy = ExperimentRef("experiments/redis-failover.json", weight=3)
    light = ExperimentRef("experiments/partition.json", "weekly", weight=1)
    reasons = gate_verdict([GatedRun(passed, heavy), GatedRun(failed, light)], min_score=0)[2]
    assert "suite score 75.0/100 (runs weighted by experiment weight: a 100.0 x3, b 0.0 x1)" in reasons


def test_coverage_gaps_make_a_passing_gate_unknown() -> None:
    passed = grade(check("failover", Verdict.PASS, critical=True))
    verdict, code, reasons = gate_verdict([passed], gaps=["experiments/partition.json: no run given"])
    assert (verdict, code) == (Verdict.UNKNOWN, 3)
    assert "not covered: experiments/partition.json: no run given" in reasons
    failed = grade(check("failover", Verdict.FAIL, critical=True))
    assert gate_verdict([failed], gaps=["x: no run given"])[:2] == (Verdict.FAIL, 1)


# ---------------------------------------------------------------- --from-runs: coverage and freshness


def test_from_runs_needs_a_run_of_every_gated_experiment(project: Path, run_cli) -> None:
    ok = _run_file(project, "run-ok")
    result = run_cli("gate", "-s", "shop", "--from-runs", ok, "--cadence", "daily", "--cadence", "weekly")
    assert result.exit_code == 3, result
    assert "not covered: experiments/partition.json: no run given" in result.stdout
    partition = _run_file(project, "run-part", experiment_path="experiments/partition.json")
    both = run_cli(
        "gate",
        "-s",
        "shop",
        "--from-runs",
        ok,
        "--from-runs",
        partition,
        "--cadence",
        "daily",
        "--cadence",
        "weekly",
    )
    assert both.exit_code == 0, both


def test_from_runs_refuses_a_stale_run(project: Path, run_cli) -> None:
    old = _run_file(project, "run-old", age=timedelta(days=10))
    stale = run_cli("gate", "-s", "shop", "--from-runs", old)
    assert stale.exit_code == 3, stale
    assert "not covered: experiments/redis-failover.json: newest run run-old is 10.0 days old" in stale.stdout
    assert run_cli("gate", "-s", "shop", "--from-runs", old, "--max-age", "30d").exit_code == 0


def test_from_runs_ignores_runs_of_experiments_it_does_not_gate(project: Path, run_cli) -> None:
    ok = _run_file(project, "run-ok")
    drill = _run_file(project, "run-drill", experiment_path="experiments/region-drill.json")
    result = run_cli("gate", "-s", "shop", "--from-runs", ok, "--from-runs", drill)
    assert result.exit_code == 0, result
    assert (
        "run-drill: experiments/region-drill.json is not gated here (cadence quarterly); ignored"
        in result.stdout
    )
    only = run_cli("gate", "-s", "shop", "--from-runs", drill)
    assert only.exit_code == 3 and "not covered: experiments/redis-failover.json" in only.stdout


@pytest.mark.parametrize("age", ["soon", "-1d", "7"])
def test_gate_rejects_a_bad_max_age(project: Path, run_cli, age: str) -> None:
    result = run_cli("gate", "-s", "shop", "--from-runs", _run_file(project, "run-ok"), "--max-age", age)
    assert result.exit_code == 2, result
    assert result.stderr.startswith("harness: --max-age") and len(result.stderr.strip().splitlines()) == 1
