"""Run a scenario's experiments one after another on one target and grade each.

A suite refuses first (bad experiment files, production without consent, faults left open),
then brings the sandbox up once (unless given a running target), runs the experiments
selected by cadence in the scenario's order, grades and stores each run, and brings the
sandbox down whatever happens. One experiment's failure never stops the others; an
interrupt undoes the faults at once and stops the suite (harness.interrupts). Before each
experiment it prints the elapsed time and the expected remaining time (harness.progress).

On its own sandbox, before every experiment after the first, the suite puts each primary an
earlier failover moved back in the scenario's primary region (harness.sandbox.failback), so each
experiment starts from the declared estate; each run's record says whether it was
(environment.estate). A user's target (`endpoints`) keeps its primaries where they are.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import ledger, leftovers, loading, runner, scoring
from harness.errors import ConfigError
from harness.interrupts import CONTROLLER
from harness.model import ExperimentRef, Grade, RunRecord, Scenario, Verdict, combine
from harness.progress import WaitNotice, expected_seconds, format_duration
from harness.sandbox import failback

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
        listed = sorted({ref.cadence for ref in scenario.experiments}, key=CADENCES.index)
        hint = f" (it lists {', '.join(listed)}: pass --cadence for those, or --all)" if listed else ""
        raise ConfigError(scenario.path, "experiments", f"no {which}experiment listed{hint}")
    return chosen


def own_sandbox(scenario: Scenario, experiment: Mapping[str, Any]) -> bool:
    """Whether the experiment needs a sandbox of its own: it asks for another PostgreSQL topology
    than the scenario's (an active-active store next to the scenario's primary-standby one)."""
    wanted = loading.harness_extension(experiment).get("postgres_topology")
    return bool(wanted) and wanted != scenario.postgres.topology


def sandbox_components(scenario: Scenario, refs: Sequence[ExperimentRef]) -> set[str] | None:
    """The sandbox parts the experiments need together; None when one of them needs everything."""
    needed: set[str] = set()
    for ref in refs:
        experiment = loading.load_experiment(experiment_path(scenario, ref))
        components = loading.harness_extension(experiment).get("sandbox_components")
        if not components:
            return None
        needed.update(components)
    return runner.with_failover_manager(scenario, needed)


def experiment_path(scenario: Scenario, ref: ExperimentRef) -> Path:
    """Where the scenario's experiment file is (the path runs are stored under)."""
    return loading.resolve_experiment_path(Path(scenario.path), ref.path)


def check_suite(
    scenario: Scenario, refs: Sequence[ExperimentRef], allow_production: bool, state_dir: Path
) -> list[dict[str, Any]]:
    """Every refusal a suite can meet, before anything starts; returns the loaded experiments."""
    experiments = [loading.load_experiment(experiment_path(scenario, ref)) for ref in refs]
    runner.ensure_target_allowed(scenario, allow_production)
    runner.ensure_no_open_faults(state_dir)
    return experiments


def run_suite(
    scenario: Scenario,
    refs: Sequence[ExperimentRef],
    out_dir: Path,
    *,
    endpoints: Mapping[str, Any] | None = None,
    on_result: Callable[[RunRecord, Grade], None] = lambda record, grade: None,
    progress: runner.Progress = lambda message: None,
    allow_production: bool = False,
    state_dir: Path | None = None,
    past_durations: Mapping[str, Sequence[float]] | None = None,
    restore_estate: Callable[[Mapping[str, Any]], tuple[failback.Outcome, ...]] = failback.restore_estate,
) -> SuiteResult:
    """Run each experiment against one target; returns every record with its grade.

    `past_durations` (seconds, by experiment path) feed the expected remaining time.
    `restore_estate` moves the primaries of the suite's own sandbox home between experiments."""
    state_dir = state_dir or ledger.state_dir()
    paths = [experiment_path(scenario, ref) for ref in refs]
    experiments = check_suite(scenario, refs, allow_production, state_dir)
    expected = [
        expected_seconds(experiment, (past_durations or {}).get(str(path), ()))
        for experiment, path in zip(experiments, paths, strict=True)
    ]
    runs: list[tuple[RunRecord, Grade]] = []
    started = time.monotonic()
    # Without a target, an experiment asking for another store topology brings up its own sandbox
    # (runner.run_experiment); the others share one.
    separate = [endpoints is None and own_sandbox(scenario, e) for e in experiments]
    shared = [ref for ref, alone in zip(refs, separate, strict=True) if not alone]
    owned = endpoints is None
    with CONTROLLER.installed(), ExitStack() as stack:
        if endpoints is None and shared:
            components = sandbox_components(scenario, shared)
            with WaitNotice(progress) as notice:
                notice.say(
                    f"sandbox: starting {', '.join(sorted(components)) if components else 'all components'}"
                )
                notice.waiting_for("the sandbox to start")
                sb = stack.enter_context(
                    leftovers.owned_sandbox(
                        scenario, out_dir / "sandbox", state_dir, components=components, progress=notice.say
                    )
                )
            endpoints = sb.endpoints
        context = runner.RunContext(
            scenario=scenario,
            out_dir=out_dir,
            endpoints=endpoints,
            state_dir=state_dir,
            allow_production=allow_production,
            progress=progress,
        )
        for index, path in enumerate(paths, start=1):
            left = sum(expected[index - 1 :])
            progress(
                f"[{index}/{len(paths)}] {path.name}: about {format_duration(expected[index - 1])}; "
                f"{format_duration(time.monotonic() - started)} elapsed, about {format_duration(left)} left"
            )
            own = dataclasses.replace(context, endpoints=None) if separate[index - 1] else context
            if separate[index - 1]:
                estate = failback.estate_record(None, "a sandbox of its own, started for this experiment")
            elif not owned:
                estate = failback.estate_record(
                    None, "the user's target: the harness moves no primary unasked"
                )
            elif not any(not alone for alone in separate[: index - 1]):
                estate = failback.estate_record(
                    None, "the suite's sandbox, just started as the scenario declares"
                )
            else:
                estate = _restore(restore_estate, context.endpoints or {}, progress)
            record = runner.run_experiment(path, own)
            record = _with_estate(record, estate)
            grade = scoring.grade(record, scenario)
            runs.append((record, grade))
            on_result(record, grade)
            interrupted = runner.interrupted_exit_code(record) or CONTROLLER.exit_code()
            if interrupted is not None:
                return SuiteResult(scenario.name, tuple(runs), interrupted)
    return SuiteResult(scenario.name, tuple(runs))


def _restore(
    restore_estate: Callable[[Mapping[str, Any]], tuple[failback.Outcome, ...]],
    endpoints: Mapping[str, Any],
    progress: runner.Progress,
) -> dict[str, Any]:
    """Put the shared sandbox's primaries back home and say so; what the next run's record keeps.

    A failback that fails is said and recorded, never raised (the runner's premise check keeps
    the next verdict honest); an interrupt stops the suite."""
    try:
        with WaitNotice(progress) as notice:
            notice.waiting_for("the primaries to move back to the scenario's primary region")
            outcomes = restore_estate(endpoints)
    except Exception as error:  # a failback bug must not cost the remaining experiments
        detail = f"failback failed: {type(error).__name__}: {error}"
        progress(f"estate: {detail}; the next experiment runs from the topology left behind")
        return {**failback.estate_record(None, detail), "checked": True, "restored": False}
    CONTROLLER.checkpoint()  # a signal during a deferred step of the failback stops the suite here
    for outcome in outcomes:
        progress(outcome.line())
    return failback.estate_record(outcomes)


def _with_estate(record: RunRecord, estate: Mapping[str, Any]) -> RunRecord:
    """The record with `environment.estate` (additive: older records simply lack it)."""
    return dataclasses.replace(record, environment={**record.environment, "estate": dict(estate)})


def exit_code(result: SuiteResult) -> int:
    return result.interrupted_exit_code or scoring.exit_code(result.verdict)
