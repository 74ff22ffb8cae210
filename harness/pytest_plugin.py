"""pytest plugin (``pytest11`` entry point): chaos experiments as tests.

Options: ``--harness-scenario`` (profile name or path) and ``--harness-endpoints`` (attach to
a running target instead of starting a sandbox); where runs are kept: ``--harness-out`` (default
``harness-reports``), ``--harness-store`` (history URL, default $HARNESS_STORE or the state
folder's SQLite) and ``--harness-state-dir`` (fault ledger, default $HARNESS_STATE_DIR or
``.harness``). Relative defaults are under pytest's rootdir, so the plugin behaves the same from
any directory. Fixtures: ``sandbox`` (the session's target, always brought down),
``chaos_experiment`` (runs an experiment, keeps its run.json, reports and history entry like
`harness run`, fails the test with the measured-vs-target message when a check misses), and the
sandbox factories.

A scenario or experiment given by bare name is looked up under the rootdir (``scenarios/``,
``experiments/``), then the working directory, then among the examples shipped with the package.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.sandbox.fixtures import redis_sandbox, sandbox_factory

__all__ = ["chaos_experiment", "harness_scenario", "redis_sandbox", "sandbox", "sandbox_factory"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "resilience harness")
    group.addoption(
        "--harness-scenario", default=None, help="Target profile: a name in scenarios/ or a path."
    )
    group.addoption(
        "--harness-endpoints",
        default=None,
        help="endpoints.json of a running target (no sandbox is started).",
    )
    group.addoption(
        "--harness-out", default=None, help="Where each run's report folder goes (default: harness-reports)."
    )
    group.addoption(
        "--harness-store", default=None, help="History URL (default: $HARNESS_STORE, else SQLite)."
    )
    group.addoption(
        "--harness-state-dir",
        default=None,
        help="Fault ledger folder (default: $HARNESS_STATE_DIR or .harness).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: a test that injects faults into a target")


@pytest.fixture(scope="session")
def harness_scenario(request: pytest.FixtureRequest):
    """The scenario named by --harness-scenario, or the built-in three-region sandbox scenario."""
    from harness.loading import load_scenario
    from harness.sandbox.examples import example_scenario

    name = request.config.getoption("--harness-scenario")
    if not name:
        return example_scenario(3)
    return load_scenario(_under_rootdir(request.config, name, "scenarios"))


@pytest.fixture(scope="session")
def sandbox(request: pytest.FixtureRequest, harness_scenario, sandbox_factory) -> Iterator[Mapping[str, Any]]:
    """Endpoints of the session's target: attached with --harness-endpoints, else a sandbox started now."""
    if path := request.config.getoption("--harness-endpoints"):
        yield json.loads(Path(path).read_text())  # attached: someone else owns it
        return
    yield sandbox_factory(harness_scenario).endpoints


def _under_rootdir(config: pytest.Config, name: str, folder: str) -> str | Path:
    """`name` as given when it is a file, else <rootdir>/<folder>/<name>[.yaml] when that exists,
    else `name` (the loaders then try the working directory and the packaged examples)."""
    if Path(name).exists():
        return name
    for candidate in (config.rootpath / name, config.rootpath / folder / name):
        for path in (candidate, candidate.with_name(candidate.name + ".yaml")):
            if path.is_file():
                return path
    return name


def _kept_path(config: pytest.Config, option: str, environment: str | None, default: str) -> Path:
    """An output folder: the option, else the environment variable, else `default`; relative
    paths under the rootdir (not the working directory)."""
    chosen = config.getoption(option) or (os.environ.get(environment) if environment else None) or default
    path = Path(chosen)
    return path if path.is_absolute() else config.rootpath / path


def _experiment_path(config: pytest.Config, scenario: Any, experiment: str | Path) -> Path:
    from harness import examples, loading

    found = Path(_under_rootdir(config, str(experiment), "experiments"))
    if found.exists():
        return found
    if scenario.path:
        listed = loading.resolve_experiment_path(Path(scenario.path), str(experiment))
        if listed.exists():
            return listed
    packaged = examples.examples_dir() / "experiments" / found.name
    for path in (packaged, packaged.with_name(packaged.name + ".yaml")):
        if path.is_file():
            return path
    return found  # loading names the missing file


@pytest.fixture
def chaos_experiment(
    request: pytest.FixtureRequest, harness_scenario, sandbox: Mapping[str, Any]
) -> Callable[..., tuple[Any, Any]]:
    """Run an experiment against the session's target; a missed target fails the test.

    Every run is kept like `harness run` keeps it: the history entry, then
    ``<--harness-out>/<run id>/`` (run.json, junit.xml, summary.md, index.html) and the site index.
    Returns ``(record, grade)`` when every check passed, so the test can assert more.
    """
    from harness import runner, scoring, session, store
    from harness.model import Verdict

    config = request.config
    out = _kept_path(config, "--harness-out", None, "harness-reports")
    default_state = _kept_path(config, "--harness-state-dir", "HARNESS_STATE_DIR", ".harness")
    store_url = config.getoption("--harness-store") or os.environ.get("HARNESS_STORE")

    def run(experiment: str | Path, *, state_dir: Path | None = None) -> tuple[Any, Any]:
        state = state_dir or default_state
        context = runner.RunContext(
            scenario=harness_scenario, out_dir=out, endpoints=sandbox, state_dir=state
        )
        record = runner.run_experiment(_experiment_path(config, harness_scenario, experiment), context)
        grade = scoring.grade(record, harness_scenario)
        lines: list[str] = []
        with store.open_store(store_url or f"sqlite:///{state / store.SQLITE_FILE}") as history:
            page = session.keep_run(record, grade, out, history, lines.append, state_dir=state)
        request.node.user_properties.append(("harness_report", str(page)))
        problems = [c.evidence for c in grade.checks if c.verdict is not Verdict.PASS] + list(grade.reasons)
        if grade.verdict is not Verdict.PASS:
            pytest.fail(
                f"{grade.experiment_title}: {grade.verdict} — " + "; ".join(problems) + f" (report: {page})",
                pytrace=False,
            )
        return record, grade

    return run
