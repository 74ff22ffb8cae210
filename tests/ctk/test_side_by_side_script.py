"""scripts/side-by-side's comparison of two grades, on synthetic grades (the script itself runs
every shipped experiment twice and takes many minutes: `make side-by-side`, not `make test`)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "side-by-side"


@pytest.fixture(scope="module")
def script() -> Iterator[ModuleType]:
    loader = importlib.machinery.SourceFileLoader("side_by_side", str(SCRIPT))
    spec = importlib.util.spec_from_loader("side_by_side", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["side_by_side"] = module  # dataclasses look their module up while building
    try:
        loader.exec_module(module)
        yield module
    finally:
        del sys.modules["side_by_side"]


def _check(
    target: str, verdict: str, measured: float | None, limit: float = 30.0, unit: str = "seconds"
) -> dict:
    return {
        "target": target,
        "verdict": verdict,
        "measured": measured,
        "limit": limit,
        "unit": unit,
        "evidence": "",
    }


def _grade(verdict: str, *checks: dict) -> dict:
    return {"verdict": verdict, "checks": list(checks)}


def test_same_verdicts_far_from_the_limit_agree(script: ModuleType) -> None:
    rows = script.compare(
        "e", _grade("pass", _check("a", "pass", 6.0)), _grade("pass", _check("a", "pass", 7.0))
    )
    assert [(r.check, r.outcome) for r in rows] == [("a", "agree"), ("(verdict)", "agree")]


def test_a_different_verdict_far_from_the_limit_is_a_disagreement(script: ModuleType) -> None:
    rows = script.compare(
        "e", _grade("pass", _check("a", "pass", 5.0)), _grade("fail", _check("a", "fail", 50.0))
    )
    assert [r.outcome for r in rows] == ["DISAGREE", "DISAGREE"]
    missing = script.compare("e", _grade("pass", _check("a", "pass", 5.0)), _grade("pass"))
    assert missing[0].outcome == "DISAGREE" and missing[0].why == "graded by one run only"
    unknown = script.compare(
        "e", _grade("pass", _check("a", "pass", 5.0)), _grade("unknown", _check("a", "unknown", None))
    )
    assert unknown[0].outcome == "DISAGREE"  # missing evidence in one run only is not timing


def test_a_value_near_the_limit_is_not_compared_and_says_why(script: ModuleType) -> None:
    # 28 s against 30 s: within max(0.05 s, 25 % of 30 s) = 7.5 s of the limit
    rows = script.compare(
        "e", _grade("pass", _check("a", "pass", 28.0)), _grade("fail", _check("a", "fail", 31.0))
    )
    assert rows[0].outcome == "not compared" and "harness and chaos value within 7.5 seconds" in rows[0].why
    assert rows[1].outcome == "not compared"  # the overall verdict follows the uncompared check
    assert script.tolerance(0.01, "ratio") == 0.005  # the floor where the limit is small
    exact = script.compare(
        "e",
        _grade("pass", _check("a", "pass", 0, 0, "count")),
        _grade("fail", _check("a", "fail", 2, 0, "count")),
    )
    assert exact[0].outcome == "DISAGREE"  # no tolerance on a count at most 0: 0 lost writes is exact
    contradicted = _check("a", "unknown", 0.5, 0.01, "ratio") | {
        "evidence": "x 0.5 and y 0 differ by more than 5 percentage points"
    }
    rows = script.compare(
        "e", _grade("pass", _check("a", "pass", 0.0, 1.0, "ratio")), _grade("unknown", contradicted)
    )
    assert rows[0].outcome == "not compared" and "witnesses" in rows[0].why


def test_cloud_and_cluster_experiments_are_skipped_with_the_reason(script: ModuleType) -> None:
    experiments = Path(SCRIPT).parents[1] / "experiments"
    reasons = {
        p.stem: script.remote_reason(yaml.safe_load(p.read_text())) for p in experiments.glob("*.yaml")
    }
    skipped = {name for name, reason in reasons.items() if reason}
    assert skipped == {n for n in reasons if n.startswith(("aws-", "k8s-"))}
    assert "Kubernetes" in str(reasons["k8s-pod-kill"]) and "AWS" in str(reasons["aws-az-failure"])
    assert all(script.scenario_for(experiments / f"{n}.yaml") for n in reasons if n not in skipped)
