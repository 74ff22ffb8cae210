"""`harness run`, `harness validate`, `harness score`: one experiment, checked and graded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from harness import loading, report, runner, scoring, session, store
from harness.cli import metrics
from harness.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_PASS,
    AllowProductionOption,
    EndpointsOption,
    LocustMasterOption,
    OutOption,
    ScenarioOption,
    StoreOption,
    console,
    ensure_writable_out,
    fail,
    progress,
    use_locust_master,
)
from harness.errors import ConfigError
from harness.model import Grade, RunRecord
from harness.store import Store


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("validate")(validate)
    app.command("score")(score)
    metrics.register(app)  # `harness export metrics`


# Known keys of an endpoints file (sandbox endpoints.json) and what each must be.
_ENDPOINT_STRINGS = ("redis_master_name", "faultproxy_url", "patroni_scope", "prometheus_url", "sandbox_dir")
_ENDPOINT_STRING_LISTS = ("redis_sentinels", "etcd_urls")
_ENDPOINT_MAPPINGS = ("regions", "links")


def load_endpoints(path: Path | None) -> dict | None:
    """The endpoints file of an already running target, or None to start a sandbox."""
    if path is None:
        return None
    document = loading.read_document(path)
    if not isinstance(document, dict):
        raise ConfigError(path, "", "expected a mapping of endpoints (see sandbox endpoints.json)")
    check_endpoints_shape(path, document)
    return document


def check_endpoints_shape(path: Path, document: dict) -> None:
    """Known keys have the types the runner and canaries read them as; every problem named."""
    from harness.errors import raise_all

    problems: list[ConfigError] = []

    def expect(field: str, value: object, kind: type | tuple[type, ...], expected: str) -> bool:
        if isinstance(value, kind) and not isinstance(value, bool):
            return True
        problems.append(
            ConfigError(path, field, f"expected {expected}, got {json.dumps(value, default=str)[:60]}")
        )
        return False

    for key in _ENDPOINT_STRINGS:
        if key in document:
            expect(key, document[key], str, "a string")
    for key in _ENDPOINT_STRING_LISTS:
        if key in document and expect(key, document[key], list, "a list of strings"):
            for index, item in enumerate(document[key]):
                expect(f"{key}.{index}", item, str, "a string")
    for key in _ENDPOINT_MAPPINGS:
        if key in document and expect(key, document[key], dict, "a mapping"):
            for name, entry in document[key].items():
                if expect(f"{key}.{name}", entry, dict, "a mapping") and key == "regions":
                    for field in ("redis_url", "api_url", "postgres_dsn"):
                        if entry.get(field) is not None:
                            expect(f"{key}.{name}.{field}", entry[field], str, "a string")
                    if entry.get("convergence_url") is not None:
                        _check_convergence_url(path, f"{key}.{name}.convergence_url", entry, problems)
    if "components" in document:
        expect("components", document["components"], list, "a list")
    raise_all(problems)


def _check_convergence_url(path: Path, field: str, entry: dict, problems: list[ConfigError]) -> None:
    """A region's HTTP endpoint for the convergence probe, checked as the probe will read it, so a
    bad one is refused before any fault rather than found when the probe starts."""
    from harness.probes._convergence_http import check_url

    try:
        check_url(entry["convergence_url"])
    except ValueError as error:
        problems.append(ConfigError(path, field, str(error)))


def keep_run(record: RunRecord, grade: Grade, out: Path, history: Store, indent: str = "") -> None:
    """Store the run (history first, then its files) and print its verdict and report path."""
    session.keep_run(record, grade, out, history, console.print, indent=indent)


def finish_run(record: RunRecord, grade: Grade, out: Path, store_url: str | None) -> int:
    """Keep the run (history, outputs, verdict line); returns the exit code."""
    with store.open_store(store_url) as history:
        keep_run(record, grade, out, history)
    return runner.interrupted_exit_code(record) or scoring.exit_code(grade.verdict)


def run(
    experiment: Annotated[Path, typer.Argument(help="Experiment file (YAML or JSON).")],
    scenario: ScenarioOption,
    out: OutOption = Path("reports"),
    endpoints: EndpointsOption = None,
    store_url: StoreOption = None,
    allow_production: AllowProductionOption = False,
    locust_master: LocustMasterOption = None,
    pushgateway: metrics.PushgatewayOption = None,
    textfile: metrics.TextfileOption = None,
) -> int:
    """Run one experiment against the scenario's target, grade it and write the report."""
    from harness import locking, metrics_export

    use_locust_master(locust_master)
    profile = loading.load_scenario(scenario)
    target = load_endpoints(endpoints)
    # Refusals before anything starts (run_experiment checks again under the lock).
    loading.load_experiment(experiment)
    ensure_writable_out(out)
    metrics_export.check_sinks(pushgateway, textfile)
    context = runner.RunContext(
        scenario=profile,
        out_dir=out,
        endpoints=target,
        allow_production=allow_production,
        progress=progress,
    )
    runner.ensure_target_allowed(profile, allow_production)
    with (
        locking.target_lock(context.state_dir, profile.name, store_url),
        metrics.publishing(pushgateway, textfile, context.state_dir, profile.name) as publisher,
    ):
        record = runner.run_experiment(experiment, context)
    grade = scoring.grade(record, profile)
    code = finish_run(record, grade, out, store_url)
    if publisher is not None:
        publisher.run_finished(record, grade)
    raise typer.Exit(code)


def validate(files: Annotated[list[Path], typer.Argument(help="Scenario or experiment files.")]) -> None:
    """Check scenario and experiment files; one line per problem."""
    problems = 0
    for path in files:
        try:
            kind = loading.validate_file(path)
        except ConfigError as exc:
            fail(str(exc))
            problems += 1
            continue
        console.print(f"[green]ok[/green] {path} ({kind})")
    raise typer.Exit(EXIT_BAD_INPUT if problems else EXIT_PASS)


def score(
    run_file: Annotated[
        Path, typer.Argument(help="A run.json written by `harness run`, or a Chaos Toolkit journal.json.")
    ],
    scenario: ScenarioOption,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Also write a graded copy (run.json and report) to DIR/<run-id>/."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the grade as JSON.")] = False,
    experiment: Annotated[
        str | None,
        typer.Option(help="Journals only: the scenario's experiment it ran (default: by title)."),
    ] = None,
) -> None:
    """Grade a stored run, or any Chaos Toolkit journal, against (possibly new) targets, offline.

    The stored run.json and its report are never rewritten: the grade is printed, and a graded
    copy is written only with --out, to a folder other than the stored run's own. A journal is
    graded from what it holds (docs/journals.md); what it cannot evidence is unknown.
    """
    from harness.cli.scoring_input import load_scorable

    if out is not None:
        ensure_writable_out(out)
    profile = loading.load_scenario(scenario)
    record, notes = load_scorable(run_file, profile, experiment)
    grade = scoring.grade(record, profile)
    if out is not None:
        copy = out / record.run_id / "run.json"
        if copy.resolve() == run_file.resolve():
            raise ConfigError(
                "--out", "", f"{out} would overwrite the stored run {run_file}; give another folder"
            )
        paths = report.write_run(record, grade, out)
        console.print(f"graded copy: {paths.run_dir} (report {paths.html})")
    if as_json:
        print(json.dumps(grade.to_dict(), indent=2))
    else:
        console.print(report.summary_line(grade))
        for reason in grade.reasons:
            console.print(f"  [yellow]![/yellow] {reason}")
        for note in notes:
            console.print(f"  [dim]·[/dim] {note}")
    raise typer.Exit(scoring.exit_code(grade.verdict))
