"""The suite restores its own sandbox's estate between experiments (harness.sandbox.failback is
injected as a fake here; tests/sandbox/test_failback.py runs the real one on Redis)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness import loading, suite
from harness.interrupts import Interrupted
from harness.model import RunRecord
from harness.sandbox.failback import Outcome

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "email-triage.yaml"
SANDBOX = {"sandbox_dir": "/nowhere", "primary_region": "us-east-1", "regions": {}}


class Fakes:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, outcomes: list[Any]) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.outcomes = outcomes
        monkeypatch.setattr(suite, "own_sandbox", lambda scenario, experiment: False)
        monkeypatch.setattr(suite, "sandbox_components", lambda scenario, refs: {"redis"})

        @contextmanager
        def owned_sandbox(*args: Any, **kwargs: Any) -> Iterator[SimpleNamespace]:
            self.calls.append(("up", None))
            yield SimpleNamespace(endpoints=SANDBOX)

        monkeypatch.setattr(suite.leftovers, "owned_sandbox", owned_sandbox)
        monkeypatch.setattr(suite.runner, "run_experiment", self.run_experiment)

    def restore(self, endpoints: Mapping[str, Any]) -> tuple[Outcome, ...]:
        self.calls.append(("restore", endpoints))
        found = self.outcomes.pop(0)
        if isinstance(found, BaseException):
            raise found
        return found

    def run_experiment(self, path: Path, context: Any) -> RunRecord:
        self.calls.append(("run", path.stem))
        return RunRecord(
            run_id=f"run-{path.stem}",
            scenario="email-triage",
            experiment_title=path.stem,
            experiment_path=str(path),
            harness_version="0",
            started_at="2026-12-01T00:00:00+00:00",
            duration_seconds=1.0,
            status="completed",
            environment={"python": "3", "target": {"primary_region": "us-east-1"}},
        )


def _run(fakes: Fakes, tmp_path: Path, endpoints: Mapping[str, Any] | None = None) -> tuple[Any, list[str]]:
    scenario = loading.load_scenario(SCENARIO)
    lines: list[str] = []
    result = suite.run_suite(
        scenario,
        scenario.experiments[:3],
        tmp_path / "out",
        endpoints=endpoints,
        progress=lines.append,
        state_dir=tmp_path / "state",
        restore_estate=fakes.restore,
    )
    return result, lines


def test_the_suite_moves_primaries_home_before_every_experiment_after_the_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    back = Outcome("redis", "us-east-1", "eu-west-1", True, 3.2, "SENTINEL FAILOVER to the home replica")
    stuck = Outcome("postgres", "us-east-1", "eu-west-1", False, 60.0, "a Patroni switchover did not happen")
    fakes = Fakes(monkeypatch, [(back,), (stuck,)])
    result, lines = _run(fakes, tmp_path)

    kinds = [kind for kind, _ in fakes.calls]
    assert kinds == ["up", "run", "restore", "run", "restore", "run"]
    assert all(endpoints == SANDBOX for kind, endpoints in fakes.calls if kind == "restore")
    assert "estate: Redis primary back in us-east-1 after 3.2 s" in lines
    assert any(
        line.startswith("estate: PostgreSQL primary NOT back in us-east-1 (it was in eu-west-1)")
        for line in lines
    )

    first, second, third = (record.environment["estate"] for record, _ in result.runs)
    assert (first["checked"], first["restored"]) == (False, None)
    assert "just started" in first["detail"]
    assert (second["checked"], second["restored"], second["failbacks"]) == (True, True, [back.to_dict()])
    assert (third["checked"], third["restored"]) == (True, False)
    assert third["detail"] == "a Patroni switchover did not happen"
    # Additive: the runner's environment is kept, and the record still round-trips.
    record = result.runs[1][0]
    assert record.environment["target"] == {"primary_region": "us-east-1"}
    assert RunRecord.from_dict(record.to_dict()).environment["estate"] == second


def test_a_failback_that_raises_is_said_and_recorded_and_the_suite_goes_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fakes = Fakes(monkeypatch, [RuntimeError("boom"), ()])
    result, lines = _run(fakes, tmp_path)
    assert [kind for kind, _ in fakes.calls].count("run") == 3
    assert (
        "estate: failback failed: RuntimeError: boom; the next experiment runs from the topology left behind"
        in lines
    )
    estate = result.runs[1][0].environment["estate"]
    assert (estate["checked"], estate["restored"], estate["detail"]) == (
        True,
        False,
        "failback failed: RuntimeError: boom",
    )
    assert result.runs[2][0].environment["estate"]["restored"] is True  # all home: nothing to move


def test_an_interrupt_during_the_failback_stops_the_suite(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fakes = Fakes(monkeypatch, [Interrupted("SIGINT")])
    with pytest.raises(Interrupted):
        _run(fakes, tmp_path)
    assert [kind for kind, _ in fakes.calls] == ["up", "run", "restore"]


def test_a_users_target_keeps_its_primaries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fakes = Fakes(monkeypatch, [])
    result, lines = _run(fakes, tmp_path, endpoints={"primary_region": "us-east-1", "regions": {}})
    assert [kind for kind, _ in fakes.calls] == ["run", "run", "run"]
    assert not any(line.startswith("estate:") for line in lines)
    for record, _ in result.runs:
        assert record.environment["estate"]["checked"] is False
        assert "user's target" in record.environment["estate"]["detail"]
