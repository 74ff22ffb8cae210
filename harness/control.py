"""Chaos Toolkit control: a plain `chaos run` measured and graded the way `harness run` is.

Add one entry to any experiment (yours included)::

    controls:
      - name: harness
        provider:
          type: python
          module: harness.control
          arguments:
            scenario: aeon-nova          # a name (./scenarios, then the packaged examples) or a path

and run it with the var-file `harness sandbox up` writes (or give `endpoints:`)::

    chaos run --var-file sandbox/ctk-vars.json experiment.yaml

Before the steady-state hypothesis the control starts the canaries, the watchers and the guardrail
(harness.runner.Observation, the code `harness run` uses) and adds to chaoslib's configuration what
the activities read (the endpoints, ``run_dir``, ``run_id``, ``harness_state_dir``,
``scenario_path``), so every fault is journalled in the ledger (rollbacks and `harness recover`
work). After the rollbacks it undoes what is still open, builds the run record, grades it against
the scenario, keeps it in the history and writes run.json, junit.xml, summary.md and the HTML page
to ``<journal folder>/<run id>/`` (or ``out:``). When the verdict is not a pass (a gated check
failed, or the evidence is missing so the verdict is unknown) it marks the journal ``failed``, so
`chaos run` exits 1: CTK derives its exit code from the journal's status and ``deviated`` only.

Arguments (each may instead be a configuration key ``harness_<name>``): ``scenario`` (required),
``endpoints`` (an endpoints.json; default: the var-file's configuration), ``out``, ``state_dir``,
``store`` (history URL), ``targets`` (target names of the scenario to grade when its
``experiments:`` does not list this experiment's file), ``canary`` (``{kinds: [...], rate: 2/s}``,
overrides the experiment's ``harness`` extension), ``allow_production``, and the verdict metrics
``pushgateway`` (a Pushgateway URL; also ``$HARNESS_PUSHGATEWAY``, as for `harness run`) and
``textfile`` (a node-exporter ``*.prom`` file). With either, the run's verdict, checks and
measurements are published after grading and the fault windows while it runs, by the code of
`harness run --pushgateway/--textfile` (harness.metrics_export). A sink that cannot work (a
malformed URL, a textfile not ending in .prom or in a missing folder) is refused before anything
runs; a push that fails at the end is logged and listed in the journal's
``harness.metrics_problems`` and never changes the verdict.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from chaoslib.exceptions import InterruptExecution, InvalidControl

from harness import (
    ledger,
    leftovers,
    loading,
    locking,
    metrics_export,
    runner,
    scoring,
    session,
    store,
    varfile,
)
from harness.errors import ConfigError, HarnessError
from harness.model import ExperimentRef, Grade, RunRecord, Scenario, Verdict

__all__ = [
    "after_experiment_control",
    "before_experiment_control",
    "cleanup_control",
    "journal_status",
    "validate_control",
]

logger = logging.getLogger("chaostoolkit")
# Every argument, in the order docs/reference.md lists them (harness.reference renders this).
ARGUMENTS = {
    "scenario": "required: a scenario name (./scenarios, then the packaged examples) or a file",
    "targets": "target names of the scenario to grade, when its `experiments:` does not list this file",
    "endpoints": "an endpoints.json describing the target; default: the --var-file's configuration",
    "out": "folder for the run's folder `<run id>/`; default: the folder of the journal",
    "state_dir": "fault ledger folder; default: $HARNESS_STATE_DIR, else .harness",
    "store": "history URL (sqlite:///..., postgresql://...); default: $HARNESS_STORE, else the state folder",
    "canary": "`{kinds: [redis, http], rate: 20/s}`, instead of the experiment's `harness` extension",
    "allow_production": "true to run against a scenario whose environment is production",
    "pushgateway": "Pushgateway URL for the verdict metrics (also $HARNESS_PUSHGATEWAY)",
    "textfile": "node-exporter textfile (*.prom) for the verdict metrics",
}
PUSHGATEWAY_ENV = "HARNESS_PUSHGATEWAY"  # the variable `harness run --pushgateway` reads too


class _Run:
    """One experiment's observation between chaoslib's before- and after-experiment hooks."""

    def __init__(
        self,
        scenario: Scenario,
        observation: runner.Observation,
        out: Path,
        store_url: str | None,
        experiment_path: Path,
        secrets: set[str],
        stack: ExitStack,
        publisher: metrics_export.Publisher | None = None,
        fault_watch: ExitStack | None = None,
    ) -> None:
        self.scenario, self.observation, self.out, self.store_url = scenario, observation, out, store_url
        self.experiment_path, self.secrets, self.stack = experiment_path, secrets, stack
        # the fault watch is closed before the run's metrics are published (as `harness run` does)
        self.publisher, self.fault_watch = publisher, fault_watch or ExitStack()


_current: _Run | None = None


def _setting(name: str, arguments: dict[str, Any], configuration: dict[str, Any] | None) -> Any:
    """A control argument, else the configuration key harness_<name>, else the var-file's."""
    if arguments.get(name) not in (None, ""):
        return arguments[name]
    key = f"harness_{name}"
    if (configuration or {}).get(key) not in (None, ""):
        return configuration[key]
    return varfile.given_configuration().get(key)


def _endpoints(arguments: dict[str, Any], configuration: dict[str, Any] | None) -> dict[str, Any]:
    """The target: an endpoints file, else the var-file's configuration, else the experiment's own
    configuration when it holds the endpoints (a user who declared them)."""
    from harness.cli.core import check_endpoints_shape, load_endpoints

    path = _setting("endpoints", arguments, configuration)
    if path:
        return load_endpoints(Path(path)) or {}
    given = varfile.given_configuration()
    if "regions" in given:
        check_endpoints_shape(Path(varfile.given_paths()[0]), given)
        return {k: v for k, v in given.items() if not k.startswith("harness_")}
    if "regions" in (configuration or {}):
        return dict(configuration)
    raise ConfigError(
        "harness control",
        "endpoints",
        "no target: give the control `endpoints: <endpoints.json>` or run chaos with "
        "--var-file <sandbox dir>/ctk-vars.json (written by `harness sandbox up`)",
    )


def _out_dir(arguments: dict[str, Any], configuration: dict[str, Any] | None) -> Path:
    """Where the run's folder goes: `out`, else the folder of the journal chaos writes."""
    if out := _setting("out", arguments, configuration):
        return Path(out)
    journal = varfile.chaos_parameter("journal_path") or "./journal.json"
    return Path(journal).absolute().parent


def _sinks(arguments: dict[str, Any], configuration: dict[str, Any] | None) -> tuple[str | None, Path | None]:
    """The metrics sinks asked for (pushgateway URL, textfile path), checked: ConfigError if one
    cannot work, so a bad sink refuses the run before any fault rather than losing its verdict."""
    pushgateway = _setting("pushgateway", arguments, configuration) or os.environ.get(PUSHGATEWAY_ENV) or None
    textfile = _setting("textfile", arguments, configuration)
    sinks = (str(pushgateway) if pushgateway else None, Path(textfile) if textfile else None)
    try:
        metrics_export.check_sinks(sinks[0], None)
    except ConfigError as error:  # it names the CLI option; here the control argument is meant
        raise ConfigError("harness control", "pushgateway", error.problem) from None
    metrics_export.check_sinks(None, sinks[1])  # names the textfile itself
    return sinks


def _state_dir(arguments: dict[str, Any], configuration: dict[str, Any] | None) -> Path:
    configured = (configuration or {}).get("harness_state_dir") or _setting("state_dir", arguments, None)
    return Path(configured) if configured else ledger.state_dir()


def _experiment_path(experiment: dict[str, Any]) -> Path:
    source = varfile.chaos_parameter("source")
    return Path(source) if source else Path(str(experiment.get("title", "experiment")).replace("/", "-"))


def _listing(scenario: Scenario, experiment_path: Path, targets: Any) -> Scenario:
    """The scenario, listing this experiment with `targets` when given (a user's experiment the
    scenario file does not name); the targets must be the scenario's own."""
    if not targets:
        return scenario
    if not (isinstance(targets, list) and all(isinstance(t, str) for t in targets)):
        raise ConfigError("harness control", "targets", "expected a list of target names")
    unknown = [t for t in targets if scenario.target(t) is None]
    if unknown:
        known = ", ".join(t.name for t in scenario.targets)
        raise ConfigError(
            "harness control", "targets", f"{', '.join(unknown)} not in scenario {scenario.name} ({known})"
        )
    path = str(experiment_path)
    others = tuple(r for r in scenario.experiments if not scoring.same_experiment(r.path, path))
    ref = ExperimentRef(path=path, targets=tuple(targets))
    return dataclasses.replace(scenario, experiments=(*others, ref))


def journal_status(status: str, verdict: Verdict) -> str:
    """The journal status CTK's exit code should follow: `failed` when the harness's verdict is not
    a pass (a missed target, or evidence missing: never a false pass), else chaoslib's own. A status
    that already makes CTK exit 1 (failed, aborted, interrupted) is kept: it says more."""
    if verdict is Verdict.PASS or status in ("failed", "aborted", "interrupted"):
        return status
    return "failed"


def validate_control(control: dict[str, Any]) -> None:
    """chaoslib's validation: unknown arguments and a scenario that does not load are refused
    before anything runs, in one line."""
    arguments = (control.get("provider") or {}).get("arguments") or {}
    unknown = sorted(set(arguments) - set(ARGUMENTS))
    if unknown:
        raise InvalidControl(
            f"control {control.get('name')!r}: unknown argument(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(ARGUMENTS)}"
        )
    scenario = arguments.get("scenario")
    if isinstance(scenario, str) and scenario and "${" not in scenario:
        try:
            loading.load_scenario(scenario)
        except ConfigError as error:
            raise InvalidControl(str(error)) from None


def before_experiment_control(
    context: dict[str, Any],
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
    **arguments: Any,
) -> None:
    """Start measuring before the steady-state hypothesis; refuse (interrupting the run, before any
    fault) on bad input, a production target without consent, or faults left open."""
    global _current
    experiment = context
    stack = ExitStack()
    try:
        name = _setting("scenario", arguments, configuration)
        if not name:
            raise ConfigError("harness control", "scenario", "expected a scenario name or file")
        scenario = loading.load_scenario(name)
        sinks = _sinks(arguments, configuration)
        endpoints = _endpoints(arguments, configuration)
        out = _out_dir(arguments, configuration)
        state_dir = _state_dir(arguments, configuration)
        store_url = _setting("store", arguments, configuration)
        runner.ensure_target_allowed(scenario, bool(_setting("allow_production", arguments, configuration)))
        runner.ensure_no_open_faults(state_dir)
        extension = dict(loading.harness_extension(experiment))
        if canary := _setting("canary", arguments, configuration):
            extension["canary"] = canary
        experiment_path = _experiment_path(experiment)
        scenario = _listing(scenario, experiment_path, _setting("targets", arguments, configuration))
        run_id = runner.new_run_id(scenario.name, experiment_path)
        stack.enter_context(locking.target_lock(state_dir, scenario.name, store_url))
        out.mkdir(parents=True, exist_ok=True)
        leftovers.running_run(state_dir, run_id, out)
        observation = runner.Observation(
            scenario=scenario,
            extension=extension,
            endpoints=endpoints,
            run_id=run_id,
            run_dir=out / run_id,
            state_dir=state_dir,
            say=lambda message: logger.info(f"harness: {message}"),
        )
        hidden = runner.secret_values(secrets) | runner.environment_credentials(
            experiment.get("configuration"), configuration
        )
        fault_watch = ExitStack()
        stack.callback(fault_watch.close)  # also closed when the run is abandoned
        publisher = fault_watch.enter_context(
            metrics_export.publishing(
                *sinks, state_dir, scenario.name, say=lambda message: logger.warning(f"harness: {message}")
            )
        )
        _current = _Run(
            scenario, observation, out, store_url, experiment_path, hidden, stack, publisher, fault_watch
        )
        observation.start()
    except (HarnessError, OSError) as error:
        _abandon(stack)
        raise InterruptExecution(f"harness control: {error}") from None
    except Exception as error:
        # chaoslib logs any other exception of a control at debug level and runs on: the run would
        # go unmeasured and could end `completed`. Interrupting it is the honest outcome.
        _abandon(stack)
        logger.error("harness control: could not start measuring", exc_info=True)
        raise InterruptExecution(f"harness control: {type(error).__name__}: {error}") from None
    except BaseException:
        _abandon(stack)
        raise
    # chaoslib hands every activity a copy of this very mapping: what is added here reaches them,
    # declared by the experiment or not.
    if configuration is not None:
        configuration.update(observation.configuration())
    logger.info(f"harness: measuring run {run_id} against scenario {scenario.name}")


def after_experiment_control(
    context: dict[str, Any], state: dict[str, Any] | None = None, **arguments: Any
) -> None:
    """Stop measuring, grade, keep and report the run; mark the journal failed unless it passed."""
    global _current
    run, _current = _current, None
    if run is None:  # the before hook refused: the journal says why, nothing was measured
        return
    try:
        journal = state if isinstance(state, dict) else {}
        record = run.observation.finish(
            experiment=context, experiment_path=run.experiment_path, journal=journal, secrets=run.secrets
        )
        grade = scoring.grade(record, run.scenario)
        page = _keep(record, grade, run)
        problems = _publish(run, record, grade)
        if isinstance(state, dict):
            state["status"] = journal_status(str(state.get("status") or ""), grade.verdict)
            state["harness"] = {
                "run_id": record.run_id,
                "scenario": run.scenario.name,
                "verdict": str(grade.verdict),
                "score": grade.score,
                "report": str(page),
                "run_json": str(page.parent / "run.json"),
            }
            if problems:
                state["harness"]["metrics_problems"] = problems
        logger.info(f"harness: verdict {grade.verdict}; report {page}")
    except Exception as error:
        # chaoslib would swallow it (debug log) and exit 0 on a `completed` journal: a run the
        # harness could not grade must not read as a pass.
        logger.error("harness control: the run could not be graded", exc_info=True)
        if isinstance(state, dict):
            state["status"] = "failed"
            state["harness"] = {"run_id": run.observation.run_id, "error": f"{type(error).__name__}: {error}"}
    finally:
        run.stack.close()


def cleanup_control() -> None:
    """chaoslib's last call: if the after hook never ran, stop the canaries and undo the faults."""
    global _current
    run, _current = _current, None
    if run is None:
        return
    try:
        run.observation.finish(
            experiment={}, experiment_path=run.experiment_path, journal={}, secrets=run.secrets
        )
    except Exception:  # cleanup of a run that already failed: its error was logged by chaoslib
        logger.debug("harness control cleanup", exc_info=True)
    finally:
        run.stack.close()


def _keep(record: RunRecord, grade: Grade, run: _Run) -> Path:
    with store.open_store(run.store_url) as history:
        return session.keep_run(
            record,
            grade,
            run.out,
            history,
            lambda line: logger.info(f"harness: {line}"),
            state_dir=run.observation.state_dir,
        )


def _publish(run: _Run, record: RunRecord, grade: Grade) -> list[str]:
    """Publish the graded run's metrics; returns the problems met. Never raises: the verdict is
    already kept, and a metrics sink that failed must not turn it into an error."""
    run.fault_watch.close()  # its last poll publishes the faults the rollbacks undid
    if run.publisher is None:
        return []
    try:
        run.publisher.run_finished(record, grade)
    except Exception as error:  # Publisher reports transport errors itself; anything else lands here
        logger.warning("harness: metrics not published", exc_info=True)
        run.publisher.problems.append(f"metrics not published: {type(error).__name__}: {error}")
    return list(run.publisher.problems)


def _abandon(stack: ExitStack) -> None:
    global _current
    if _current is not None:
        try:
            _current.observation.finish(
                experiment={}, experiment_path=_current.experiment_path, journal={}, secrets=set()
            )
        except BaseException:  # the original error is the one to report
            logger.debug("harness control: stopping after a refused start", exc_info=True)
    _current = None
    stack.close()
