"""The harness control's decisions without a run: refusals, the journal status CTK's exit code
follows, a user's experiment graded by named targets, and `harness run` not observing twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chaoslib.exceptions import InterruptExecution, InvalidControl

from harness import control, loading, runner, scoring, varfile
from harness.errors import ConfigError
from harness.model import Verdict


def _control(**arguments: object) -> dict:
    provider = {"type": "python", "module": "harness.control", "arguments": arguments}
    return {"name": "harness", "provider": provider}


def test_unknown_argument_and_bad_scenario_are_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidControl, match=r"unknown argument\(s\) scenary; expected some of scenario"):
        control.validate_control(_control(scenary="aeon-nova"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nregions: 3\n")
    with pytest.raises(InvalidControl) as raised:
        control.validate_control(_control(scenario=str(bad)))
    lines = str(raised.value).splitlines()  # one line per problem, each naming file and field
    assert lines and all(line.startswith(f"{bad}:") for line in lines)
    assert any(line.endswith("regions: expected a list, got 3") for line in lines)


def test_missing_scenario_interrupts_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(InterruptExecution, match=r"harness control.*scenario"):
        control.before_experiment_control({"title": "mine"}, configuration={}, secrets={})
    assert control._current is None


@pytest.mark.parametrize(
    ("status", "verdict", "expected"),
    [
        ("completed", Verdict.PASS, "completed"),
        ("completed", Verdict.FAIL, "failed"),
        ("completed", Verdict.UNKNOWN, "failed"),  # missing evidence is never a pass
        ("interrupted", Verdict.FAIL, "interrupted"),
        ("aborted", Verdict.UNKNOWN, "aborted"),
        ("failed", Verdict.PASS, "failed"),  # CTK's own failure stands
    ],
)
def test_journal_status_follows_the_verdict(status: str, verdict: Verdict, expected: str) -> None:
    assert control.journal_status(status, verdict) == expected


def test_named_targets_list_a_users_experiment_in_the_scenario() -> None:
    scenario = loading.load_scenario(Path(__file__).resolve().parents[2] / "scenarios" / "aeon-nova.yaml")
    name = scenario.targets[0].name
    listed = control._listing(scenario, Path("mine/exp.yaml"), [name])
    ref = scoring.experiment_ref(listed, "elsewhere/exp.yaml")
    assert ref is not None and ref.targets == (name,)
    with pytest.raises(ConfigError, match="targets: nope not in scenario"):
        control._listing(scenario, Path("exp.yaml"), ["nope"])
    assert control._listing(scenario, Path("exp.yaml"), None) is scenario


def test_harness_run_drops_the_control_it_would_duplicate() -> None:
    experiment = {"title": "t", "controls": [_control(scenario="s"), {"name": "other", "provider": {}}]}
    merged = runner.chaoslib_configuration(experiment, {"run_id": "r"})
    assert [c["name"] for c in merged["controls"]] == ["other"]
    assert merged["configuration"] == {"run_id": "r"}
    assert [c["name"] for c in experiment["controls"]] == ["harness", "other"]  # the input is untouched


def test_var_file_is_chaos_toolkit_shaped(tmp_path: Path) -> None:
    endpoints = {"regions": {"us-east-1": {"redis_url": "redis://127.0.0.1:1/0"}}}
    path = varfile.write_var_file(tmp_path, endpoints, tmp_path / "endpoints.json")
    document = json.loads(path.read_text())
    assert set(document) == {"configuration"}
    assert document["configuration"]["regions"] == endpoints["regions"]
    assert document["configuration"]["harness_endpoints"] == str((tmp_path / "endpoints.json").absolute())
    assert varfile.given_configuration() == {}  # outside a `chaos run`: no var-files


def test_metrics_arguments_are_accepted_and_a_sink_that_cannot_work_refuses_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    control.validate_control(
        _control(scenario="aeon-nova", pushgateway="http://127.0.0.1:9091", textfile="m.prom")
    )
    scenario = str(Path(__file__).resolve().parents[2] / "scenarios" / "aeon-nova.yaml")
    monkeypatch.delenv("HARNESS_PUSHGATEWAY", raising=False)
    with pytest.raises(InterruptExecution, match=r"m\.txt: expected a file name ending in \.prom"):
        control.before_experiment_control(
            {"title": "t"}, configuration={}, secrets={}, scenario=scenario, textfile=str(tmp_path / "m.txt")
        )
    with pytest.raises(InterruptExecution, match=r"no folder"):
        control.before_experiment_control(
            {"title": "t"},
            configuration={},
            secrets={},
            scenario=scenario,
            textfile=str(tmp_path / "no" / "m.prom"),
        )
    monkeypatch.setenv("HARNESS_PUSHGATEWAY", "not a url")  # the variable `harness run` reads too
    with pytest.raises(InterruptExecution, match=r"harness control:pushgateway: expected a URL"):
        control.before_experiment_control({"title": "t"}, configuration={}, secrets={}, scenario=scenario)
    assert control._current is None
