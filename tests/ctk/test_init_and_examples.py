"""Outside the checkout: the examples ship with the package, `harness init` copies them into a new
project, and bare scenario names resolve from ./scenarios, then the packaged examples."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from harness import examples, loading

ROOT = Path(__file__).resolve().parents[2]


def _harness(*args: str) -> Result:
    """The `harness` command in-process (a subprocess would add an interpreter start per call)."""
    from harness.cli import app

    return CliRunner().invoke(app, list(args))


def test_every_example_ships_as_package_data() -> None:
    """The wheel holds harness/examples/{scenarios,experiments}/* (verified with `pip wheel`): the
    package-data globs cover them and the links reach every top-level example file."""
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert {"examples/scenarios/*", "examples/experiments/*"} <= set(package_data["harness"])
    shipped = {str(p) for p in examples.example_files()}
    for folder in examples.EXAMPLE_FOLDERS:
        for path in (ROOT / folder).glob("*.yaml"):
            assert f"{folder}/{path.name}" in shipped


def test_init_copies_the_examples_then_a_project_validates_from_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    made = _harness("init", str(project))
    assert made.exit_code == 0, made.output
    assert (project / "scenarios" / "aeon-nova.yaml").is_file()
    assert (project / "experiments" / "redis-primary-failure.yaml").is_file()

    again = _harness("init", str(project))  # not empty: refused in one line, exit 2
    assert again.exit_code == 2
    assert again.output.strip().count("\n") == 0 and "not empty" in again.output and "--force" in again.output

    monkeypatch.chdir(project)  # a user's project: names resolve from ./scenarios
    scenario = loading.load_scenario("aeon-nova")
    assert Path(scenario.path) == Path("scenarios/aeon-nova.yaml")
    for ref in scenario.experiments:  # the project's own copies
        path = loading.resolve_experiment_path(Path(scenario.path), ref.path)
        assert path.resolve().is_relative_to(project.resolve()), path
    assert loading.validate_file("experiments/redis-primary-failure.yaml") == "experiment"

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)  # no ./scenarios: the packaged example
    packaged = Path(loading.load_scenario("aeon-nova").path)
    assert packaged.parent == examples.examples_dir() / "scenarios"


def test_init_force_copies_into_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = _harness("init", "--force", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "scenarios" / "novacron.yaml").is_file()
