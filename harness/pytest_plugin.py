"""pytest plugin (``pytest11`` entry point): chaos experiments as tests.

Options: ``--harness-scenario`` (profile name or path) and ``--harness-endpoints`` (attach to
a running target instead of starting a sandbox). Fixtures: ``sandbox`` (the session's target,
always brought down), ``chaos_experiment`` (runs an experiment, fails the test with the
measured-vs-target message when a check misses), and the sandbox factories.
"""

from __future__ import annotations

import json
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: a test that injects faults into a target")


@pytest.fixture(scope="session")
def harness_scenario(request: pytest.FixtureRequest):
    """The scenario named by --harness-scenario, or the built-in three-region sandbox scenario."""
    from harness.loading import load_scenario
    from harness.sandbox.examples import example_scenario

    name = request.config.getoption("--harness-scenario")
    return load_scenario(name) if name else example_scenario(3)


@pytest.fixture(scope="session")
def sandbox(request: pytest.FixtureRequest, harness_scenario, sandbox_factory) -> Iterator[Mapping[str, Any]]:
    """Endpoints of the session's target: attached with --harness-endpoints, else a sandbox started now."""
    if path := request.config.getoption("--harness-endpoints"):
        yield json.loads(Path(path).read_text())  # attached: someone else owns it
        return
    yield sandbox_factory(harness_scenario).endpoints


@pytest.fixture
def chaos_experiment(
    harness_scenario, sandbox: Mapping[str, Any], tmp_path: Path
) -> Callable[..., tuple[Any, Any]]:
    """Run an experiment against the session's target; a missed target fails the test.

    Returns ``(record, grade)`` when every check passed, so the test can assert more.
    """
    from harness import runner, scoring
    from harness.model import Verdict

    def run(experiment: str | Path, *, state_dir: Path | None = None) -> tuple[Any, Any]:
        context = runner.RunContext(
            scenario=harness_scenario,
            out_dir=tmp_path / "reports",
            endpoints=sandbox,
            state_dir=state_dir or tmp_path / "state",
        )
        record = runner.run_experiment(Path(experiment), context)
        grade = scoring.grade(record, harness_scenario)
        problems = [c.evidence for c in grade.checks if c.verdict is not Verdict.PASS] + list(grade.reasons)
        if grade.verdict is not Verdict.PASS:
            pytest.fail(f"{grade.experiment_title}: {grade.verdict} — " + "; ".join(problems), pytrace=False)
        return record, grade

    return run
