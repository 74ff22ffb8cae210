"""Run a scenario's experiments one after another on one target and grade each.

A suite brings the sandbox up once (unless given a running target), runs the experiments
selected by cadence in the scenario's order, grades and stores each run, and brings the
sandbox down whatever happens. One experiment's failure never stops the others; an
interrupt stops the suite after that experiment's rollbacks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import loading, runner, scoring
from harness.errors import ConfigError
from harness.model import ExperimentRef, Grade, RunRecord, Scenario, Verdict, combine

CADENCES = ("daily", "weekly", "biweekly", "monthly", "quarterly")


@dataclass(frozen=True, slots=True)
class SuiteResult:
    scenario: str
    runs: tuple[tuple[RunRecord, Grade], ...]
    interrupted_exit_code: int | None = None

    @property
    def verdict(self) -> Verdict:
        """The worst verdict of the suite's runs."""
        return combine(grade.verdict for _, grade in self.runs)

    @property
    def grades(self) -> tuple[Grade, ...]:
        return tuple(grade for _, grade in self.runs)


def select_experiments(scenario: Scenario, cadences: Sequence[str] | None = None) -> list[ExperimentRef]:
    """The scenario's experiments of the given cadences, in its order; all of them when None."""
    for cadence in cadences or ():
        if cadence not in CADENCES:
            raise ConfigError("--cadence", "", f"expected one of {', '.join(CADENCES)}, got {cadence!r}")
    chosen = [ref for ref in scenario.experiments if cadences is None or ref.cadence in cadences]
    if not chosen:
        which = f"{' or '.join(cadences)} " if cadences else ""
        raise ConfigError(scenario.path, "experiments", f"no {which}experiment listed")
    return chosen


def sandbox_components(scenario: Scenario, refs: Sequence[ExperimentRef]) -> set[str] | None:
    """The sandbox parts the experiments need together; None when one of them needs everything."""
    needed: set[str] = set()
    for ref in refs:
        experiment = loading.load_experiment(loading.resolve_experiment_path(Path(scenario.path), ref.path))
        components = loading.harness_extension(experiment).get("sandbox_components")
        if not components:
            return None
        needed.update(components)
    return runner.with_failover_manager(scenario, needed)


def run_suite(
    scenario: Scenario,
    refs: Sequence[ExperimentRef],
    out_dir: Path,
    *,
    endpoints: Mapping[str, Any] | None = None,
    on_result: Callable[[RunRecord, Grade], None] = lambda record, grade: None,
    progress: runner.Progress = lambda message: None,
    allow_production: bool = False,
) -> SuiteResult:
    """Run each experiment against one target; returns every record with its grade."""
    paths = [loading.resolve_experiment_path(Path(scenario.path), ref.path) for ref in refs]
    for path in paths:
        loading.load_experiment(path)  # every file valid before anything starts
    runs: list[tuple[RunRecord, Grade]] = []
    with ExitStack() as stack:
        if endpoints is None:
            from harness import sandbox

            components = sandbox_components(scenario, refs)
            sb = stack.enter_context(
                sandbox.up(scenario, out_dir / "sandbox", components=components, progress=progress)
            )
            endpoints = sb.endpoints
        context = runner.RunContext(
            scenario=scenario,
            out_dir=out_dir,
            endpoints=endpoints,
            allow_production=allow_production,
            progress=progress,
        )
        for index, path in enumerate(paths, start=1):
            progress(f"[{index}/{len(paths)}] {path.name}")
            record = runner.run_experiment(path, context)
            grade = scoring.grade(record, scenario)
            runs.append((record, grade))
            on_result(record, grade)
            interrupted = runner.interrupted_exit_code(record)
            if interrupted is not None:
                return SuiteResult(scenario.name, tuple(runs), interrupted)
    return SuiteResult(scenario.name, tuple(runs))


def exit_code(result: SuiteResult) -> int:
    return result.interrupted_exit_code or scoring.exit_code(result.verdict)
