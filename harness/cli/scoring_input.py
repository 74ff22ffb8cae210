"""What `harness score` grades: a run.json or a Chaos Toolkit journal, told apart by their content."""

from __future__ import annotations

from pathlib import Path

from harness import journals, loading, report, scoring, suite
from harness.errors import ConfigError
from harness.jsonfile import read_json
from harness.model import RecordError, RunRecord, Scenario

__all__ = ["load_scorable"]


def load_scorable(path: Path, scenario: Scenario, experiment: str | None) -> tuple[RunRecord, list[str]]:
    """The record to grade and notes for the reader. A journal is read as a run of the scenario's
    experiment named by `experiment` (a path or file name the scenario lists), else of the one
    whose title it carries. Bad input raises ConfigError naming the file and field."""
    data = read_json(path)
    if journals.is_run_file(data):
        if experiment is not None:
            raise ConfigError("--experiment", "", f"only for a Chaos Toolkit journal; {path} is a run.json")
        record, _ = report.load_run(path)
        return record, []
    if not journals.is_journal(data):
        raise ConfigError(
            path,
            "",
            "expected a run.json (with 'record') or a Chaos Toolkit journal "
            "(with 'experiment', 'status', 'run')",
        )
    kept = _control_run_file(path, data)
    if kept is not None and kept.is_file() and experiment is None:
        # The harness control measured this run and wrote its full record (canary samples, events,
        # the ledger's faults): more evidence than the journal holds, and what `harness run` grades.
        record, _ = report.load_run(kept)
        return record, [f"graded from the run.json the harness control wrote for this journal: {kept}"]
    experiment_path, notes = _experiment_of(data, scenario, experiment)
    if kept is not None and not kept.is_file():
        notes.append(
            f"the harness control's run.json for this journal is missing ({kept}): graded from the journal"
        )
    try:
        reading = journals.read_journal(
            data, scenario=scenario.name, experiment_path=experiment_path, harness_version=_version()
        )
    except RecordError as error:
        raise ConfigError(path, error.field, error.problem) from None
    return reading.record, [*notes, *reading.notes]


def _control_run_file(path: Path, journal: dict) -> Path | None:
    """The run.json the harness control (harness.control) named in the journal, if any."""
    kept = journal.get("harness")
    named = kept.get("run_json") if isinstance(kept, dict) else None
    if not isinstance(named, str) or not named:
        return None
    # Relative: to where chaos ran (the control writes it so), else to the journal's folder.
    candidates = [Path(named)] if Path(named).is_absolute() else [Path(named), path.parent / named]
    return next((c for c in candidates if c.is_file()), candidates[0])


def _experiment_of(journal: dict, scenario: Scenario, named: str | None) -> tuple[str, list[str]]:
    """The scenario's experiment path the journal is a run of, and a note when none is found."""
    if named is not None:
        ref = scoring.experiment_ref(scenario, named)
        if ref is None:
            listed = ", ".join(r.path for r in scenario.experiments) or "none"
            raise ConfigError(
                "--experiment", "", f"scenario {scenario.name} does not list {named} (it lists: {listed})"
            )
        return ref.path, []
    experiment = journal.get("experiment")
    title = experiment.get("title") if isinstance(experiment, dict) else None
    matching = [ref for ref in scenario.experiments if title and _title(scenario, ref) == title]
    if len(matching) == 1:
        return matching[0].path, []
    why = "several" if matching else "no"
    return f"journal: {title}", [
        f"{why} experiment of scenario {scenario.name} has the title {title!r}: name the one this journal "
        "ran with --experiment"
    ]


def _title(scenario: Scenario, ref) -> str | None:
    try:
        document = loading.read_document(suite.experiment_path(scenario, ref))
    except ConfigError:
        return None
    return document.get("title") if isinstance(document, dict) else None


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("resilience-harness")
    except metadata.PackageNotFoundError:
        return "0+unknown"
