"""Run experiments the way the CLI and CI do: refuse first, run, then keep every run.

`keep_run` stores a run (history first, then its files) so an interrupt cannot leave a
run.json the history lacks; `run_and_report` runs a suite under the target's lock, keeping each
run as it lands, and writes the combined report. Every refusal comes before anything starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import interrupts, ledger, leftovers, locking, report, runner, store, suite
from harness.model import ExperimentRef, Grade, RunRecord, Scenario
from harness.store import Store

__all__ = ["keep_run", "run_and_report"]

Say = Callable[[str], None]
# Past runs per experiment used for the suite's expected remaining time.
_PAST_RUNS = 10


def keep_run(
    record: RunRecord,
    grade: Grade,
    out: Path,
    history: Store,
    say: Say,
    indent: str = "",
    state_dir: Path | None = None,
) -> Path:
    """Store the run in the history, then write its files; print its verdict; returns the page.

    A first signal meanwhile is noted, not raised (the faults are undone by then): the run
    reaches the history whole."""
    with interrupts.deferred():
        history.save(record, grade)
        paths = report.write_run(record, grade, out)
        leftovers.run_stored(state_dir or ledger.state_dir(), record.run_id)
    say(f"{indent}{report.summary_line(grade)}")
    for reason in grade.reasons:
        say(f"{indent}  ! {reason}")
    say(f"{indent}report: {paths.html}")
    return paths.html


def _past_durations(
    history: Store, scenario: Scenario, refs: Sequence[ExperimentRef]
) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for ref in refs:
        path = str(suite.experiment_path(scenario, ref))
        try:
            runs = history.runs(scenario.name, _PAST_RUNS, experiment_path=path, full=False)
        except Exception:  # an estimate only: a history that cannot answer gives none
            runs = []
        found[path] = [
            record.duration_seconds for record, _ in runs if not runner.interrupted_exit_code(record)
        ]
    return found


def run_and_report(
    profile: Scenario,
    refs: Sequence[ExperimentRef],
    out: Path,
    endpoints: Mapping[str, Any] | None,
    store_url: str | None,
    allow_production: bool,
    *,
    say: Say = print,
    progress: runner.Progress = lambda message: None,
    on_kept: Callable[[RunRecord, Grade], None] | None = None,
) -> tuple[suite.SuiteResult, Path | None]:
    """Run a suite under the target's lock, keeping each run as it lands; returns the result and
    the combined report's path (None when the suite was interrupted: each run's own page is
    written already). `on_kept` is told of each run once it is stored (e.g. to publish metrics)."""
    state_dir = ledger.state_dir()
    # Refusals before anything starts: bad experiment files, production, faults left open.
    suite.check_suite(profile, refs, allow_production, state_dir)
    names = ", ".join(Path(r.path).stem for r in refs)
    say(f"{profile.name}: {len(refs)} experiment(s): {names}")
    with (
        interrupts.CONTROLLER.installed(),
        store.open_store(store_url) as history,
        locking.target_lock(state_dir, profile.name, store_url),
    ):

        def keep(record: RunRecord, grade: Grade) -> None:
            keep_run(record, grade, out, history, say, indent="  ", state_dir=state_dir)
            if on_kept is not None:
                on_kept(record, grade)

        result = suite.run_suite(
            profile,
            refs,
            out,
            endpoints=endpoints,
            on_result=keep,
            progress=progress,
            allow_production=allow_production,
            state_dir=state_dir,
            past_durations=_past_durations(history, profile, refs),
        )
        if result.interrupted_exit_code is not None:
            return result, None
        index = report.write_site(result.runs, out, history=history.runs(profile.name, limit=200))
    return result, index
