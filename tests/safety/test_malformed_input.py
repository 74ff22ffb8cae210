"""Malformed scenarios, experiments and fault-proxy API bodies: one clear error, never a traceback.

Property-based (Hypothesis): random documents, and valid ones with one field replaced by a
random value, go through the loaders (only ConfigError may come out), a few through the CLI
(exit 2, one line, no traceback), and random JSON bodies go to the fault proxy's API (a 4xx
JSON error, and the server keeps answering).
"""

from __future__ import annotations

import copy
import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import ledger, loading
from harness.errors import ConfigError, EnvironmentProblem
from harness.faultproxy import FaultProxy

from .trials import EXPERIMENTS, ROOT, SCENARIO, harness_command

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# JSON-able values, with the kinds of strings the loaders parse (durations, ratios, names).
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["30s", "-1s", "0ms", "5min", "1%", "150%", "abc", "20Hz", "0Hz", "1e400", "", " "])
)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
VALID_SCENARIO = yaml.safe_load(
    SCENARIO
    + """\
links: [{between: [us-east-1, eu-west-1], latency: 50ms}]
guardrails: {max_error_ratio: 20%, window: 2s, max_duration: 10min}
canary: {rate: 20Hz}
experiments: [{path: tests/safety/experiments/pause-replica.yaml, cadence: daily, targets: [rto]}]
"""
)
VALID_EXPERIMENT = yaml.safe_load((EXPERIMENTS / "pause-replica.yaml").read_text())


def _paths(document: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside a nested document."""
    found = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any]) -> Any:
    """`valid` with one value replaced by a random one, one key dropped, or one unknown key added."""
    document = copy.deepcopy(valid)
    path = draw(st.sampled_from(_paths(document)))
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    how = draw(st.sampled_from(["replace", "drop", "add"]))
    if how == "drop" and isinstance(parent, dict):
        del parent[path[-1]]
    elif how == "add" and isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=8))] = draw(VALUES)
    else:
        parent[path[-1]] = draw(VALUES)
    return document


def _check_loader(path: Path, text: str) -> None:
    path.write_text(text)
    try:
        loading.validate_file(path)
    except ConfigError as error:
        assert str(error).startswith(str(path)), str(error)


def _dump(document: Any) -> str:
    return yaml.safe_dump(document, allow_unicode=True)


@SETTINGS
@given(document=mutated(VALID_SCENARIO) | VALUES)
def test_malformed_scenarios_raise_only_config_errors(tmp_path: Path, document: Any) -> None:
    _check_loader(tmp_path / "scenario.yaml", _dump(document))


@SETTINGS
@given(document=mutated(VALID_EXPERIMENT))
def test_malformed_experiments_raise_only_config_errors(tmp_path: Path, document: Any) -> None:
    _check_loader(tmp_path / "experiment.yaml", _dump(document))


@SETTINGS
@given(text=st.text(max_size=200))
def test_arbitrary_text_raises_only_config_errors(tmp_path: Path, text: str) -> None:
    _check_loader(tmp_path / "scenario.yaml", text)
    _check_loader(tmp_path / "experiment.json", text)


BAD_FILES = {
    "not-yaml.yaml": "name: [unclosed\n",
    "not-json.json": '{"title": ',
    "list.yaml": "- 1\n- 2\n",
    "bad-duration.yaml": SCENARIO.replace("at_most: 60s", "at_most: fast"),
    "bad-guardrail.yaml": SCENARIO + "guardrails: {max_error_ratio: lots}\n",
    "bad-environment.yaml": SCENARIO.replace("environment: sandbox", "environment: prod"),
    "experiment-no-method.yaml": "title: t\ndescription: d\n",
    "binary.yaml": "\udcff",
}


def test_cli_validate_gives_one_line_per_bad_file_and_exit_2(tmp_path: Path) -> None:
    paths = []
    for name, text in sorted(BAD_FILES.items()):
        paths.append(tmp_path / name)
        paths[-1].write_bytes(text.encode("utf-8", "surrogateescape"))
    result = subprocess.run(
        harness_command("validate", *map(str, paths)), cwd=ROOT, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert [line.split(":")[1].strip() for line in lines] == [str(path) for path in paths], result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("run", "missing.yaml", "--scenario", "missing-scenario"),
        ("run", str(EXPERIMENTS / "pause-replica.yaml"), "--scenario", "{bad}"),
        ("score", "missing-run.json", "--scenario", "aeon-nova"),
    ],
    ids=["run-missing-files", "run-bad-scenario-name", "score-missing-run"],
)
def test_cli_bad_arguments_give_one_clear_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = subprocess.run(
        harness_command(*args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"HARNESS_STATE_DIR": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode in (2, 3), result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip(), "no error message"


# ---------------------------------------------------------------- the fault ledger

LEDGER_LINES = st.lists(
    st.builds(json.dumps, VALUES | st.fixed_dictionaries({"event": st.sampled_from(["applied", "undone"])},
                                                         optional={"fault_id": VALUES, "undo": VALUES}))
    | st.text(max_size=30).filter(lambda line: "\n" not in line and "\r" not in line),
    max_size=5,
)  # fmt: skip


@SETTINGS
@given(lines=LEDGER_LINES)
def test_a_corrupt_ledger_is_one_clear_error_never_a_crash(tmp_path: Path, lines: list[str]) -> None:
    (tmp_path / ledger.LEDGER_FILE).write_text("\n".join(lines) + "\n")
    try:
        faults = ledger.open_faults(tmp_path)
    except EnvironmentProblem as error:
        assert str(tmp_path / ledger.LEDGER_FILE) in str(error)
    else:
        assert all(isinstance(f, ledger.OpenFault) for f in faults)


@pytest.mark.parametrize("corruption", ["directory", "applied-without-undo"])
def test_recover_on_a_corrupt_ledger_exits_3_with_one_line(tmp_path: Path, corruption: str) -> None:
    path = tmp_path / ledger.LEDGER_FILE
    if corruption == "directory":
        path.mkdir()
    else:
        path.write_text('{"event": "applied", "fault_id": "f1", "action": "x", "target": "y"}\n')
    result = subprocess.run(
        harness_command("recover", "--dir", str(tmp_path)), cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and str(path) in result.stderr


# ---------------------------------------------------------------- the fault proxy's API

# Only loopback or unparseable addresses: a random body must never make the proxy bind or dial
# anything else (and never look a name up in DNS).
ADDRESSES = st.sampled_from(
    ["127.0.0.1:0", "127.0.0.1:1", "[::1]:0", "localhost:0", "127.0.0.1:99999", "127.0.0.1:-1",
     "127.0.0.1", "127.0.0.1:abc", "[::1", "", ":", "127.0.0.1:0:0"]
) | st.integers() | st.none() | st.lists(st.integers(), max_size=2)  # fmt: skip
NAMES = st.text(max_size=12) | st.integers() | st.none()
TOXIC_TYPES = st.sampled_from(
    [
        "latency",
        "bandwidth",
        "slow_close",
        "timeout",
        "reset_peer",
        "slicer",
        "limit_data",
        "noop",
        "nope",
        "",
    ]
)
PROXY_BODY = st.fixed_dictionaries(
    {},
    optional={
        "name": NAMES,
        "listen": ADDRESSES,
        "upstream": ADDRESSES,
        "enabled": VALUES,
        "rand_key": VALUES,
    },
)
TOXIC_BODY = st.fixed_dictionaries(
    {},
    optional={
        "name": NAMES,
        "type": TOXIC_TYPES | NAMES,
        "stream": st.sampled_from(["upstream", "downstream", "sideways"]) | NAMES,
        "toxicity": VALUES,
        "attributes": st.dictionaries(
            st.sampled_from(["latency", "jitter", "rate", "delay", "timeout", "bytes", "average_size", "x"]),
            VALUES,
            max_size=3,
        )
        | VALUES,
    },
)
BODIES = {
    "/proxies": PROXY_BODY | VALUES,
    "/populate": st.lists(PROXY_BODY, max_size=3) | VALUES,
    "/proxies/safety": PROXY_BODY | VALUES,
    "/proxies/safety/toxics": TOXIC_BODY | VALUES,
    "/proxies/safety/toxics/existing": TOXIC_BODY | VALUES,
}


@pytest.fixture(scope="module")
def proxy_server() -> Iterator[FaultProxy]:
    server = FaultProxy()
    try:
        yield server.start()
    finally:
        server.stop()


def _request(url: str, method: str, data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _reset(api: str) -> None:
    """Back to one known proxy with one known toxic, nothing else."""
    status, body = _request(f"{api}/proxies", "GET")
    assert status == 200
    for name in json.loads(body):
        _request(f"{api}/proxies/{urllib.request.quote(name, safe='')}", "DELETE")
    proxy = {"name": "safety", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}
    assert _request(f"{api}/proxies", "POST", json.dumps(proxy).encode())[0] == 201
    toxic = {"name": "existing", "type": "latency", "attributes": {"latency": 1}}
    assert _request(f"{api}/proxies/safety/toxics", "POST", json.dumps(toxic).encode())[0] == 200


@SETTINGS
@given(route=st.sampled_from(sorted(BODIES)), data=st.data())
def test_random_api_bodies_get_a_json_client_error_and_the_proxy_keeps_serving(
    proxy_server: FaultProxy, route: str, data: st.DataObject
) -> None:
    api = proxy_server.api_url
    _reset(api)
    body = data.draw(BODIES[route])
    raw = json.dumps(body).encode() if data.draw(st.booleans()) else data.draw(st.binary(max_size=40))
    status, answer = _request(api + route, "POST", raw)
    assert status < 500, (route, raw, status, answer)
    if status >= 400:
        assert status in (400, 404, 409), (route, raw, status, answer)
        assert isinstance(json.loads(answer), dict), answer
    version_status, _ = _request(f"{api}/version", "GET")
    assert version_status == 200


# ---------------------------------------------------------------- issue 20: bad input
# Each: exit 2, one line per problem naming the file (and field), never a traceback.

DEEP_YAML = "[" * 3000 + "]" * 3000 + "\n"
DEEP_MAPPING_YAML = "".join(" " * i + "a:\n" for i in range(3000)) + " " * 3000 + "a: 1\n"
DEEP_JSON = "[" * 3000 + "]" * 3000


@pytest.fixture(autouse=True)
def _own_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Locks and ledgers of these runs stay in the test's folder (never the real target's)."""
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))


def _one_error_line(result: Any, path: Path | str) -> str:
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"harness: {path}"), lines[0]
    return lines[0]


@pytest.mark.parametrize("text", [DEEP_YAML, DEEP_MAPPING_YAML], ids=["lists", "mappings"])
@pytest.mark.parametrize("kind", ["scenario", "experiment"])
def test_deeply_nested_yaml_is_bad_input_with_the_nesting_limit(
    tmp_path: Path, run_cli: Any, text: str, kind: str
) -> None:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="nest"):
        loading.validate_file(path)
    line = _one_error_line(run_cli("validate", str(path)), path)
    assert "at most" in line, line


def test_deeply_nested_scenario_for_run_is_bad_input(tmp_path: Path, run_cli: Any) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(DEEP_YAML)
    experiment = str(EXPERIMENTS / "pause-replica.yaml")
    _one_error_line(run_cli("run", experiment, "--scenario", str(path), "--out", str(tmp_path / "o")), path)
    _one_error_line(run_cli("run", str(path), "--scenario", str(ROOT / "scenarios" / "aeon-nova.yaml"),
                            "--out", str(tmp_path / "o")), path)  # fmt: skip


def test_deeply_nested_json_in_every_user_file_is_bad_input(tmp_path: Path, run_cli: Any) -> None:
    from harness.faultproxy import load_config

    path = tmp_path / "deep.json"
    path.write_text(DEEP_JSON)
    with pytest.raises(ConfigError, match="nest"):
        loading.read_document(path)
    with pytest.raises(ConfigError, match="nest"):
        load_config(path)
    experiment = str(EXPERIMENTS / "pause-replica.yaml")
    scenario = str(ROOT / "scenarios" / "aeon-nova.yaml")
    result = run_cli(
        "run", experiment, "--scenario", scenario, "--endpoints", str(path), "--out", str(tmp_path)
    )
    _one_error_line(result, path)


def test_proxy_serve_with_a_deeply_nested_config_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "proxies.json"
    path.write_text(DEEP_JSON)
    result = subprocess.run(
        harness_command("proxy", "serve", "--port", "0", "--config", str(path)), cwd=ROOT,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert str(path) in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "text", "key"),
    [
        ("scenario.yaml", SCENARIO + "name: again\n", "name"),
        ("nested.yaml", "title: t\nmethod:\n  - type: action\n    name: a\n    name: b\n", "name"),
        ("doc.json", '{"title": "t", "title": "u"}', "title"),
    ],
)
def test_duplicate_keys_are_bad_input_naming_the_key(
    tmp_path: Path, run_cli: Any, name: str, text: str, key: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"duplicate key '{key}'"):
        loading.read_document(path)
    line = _one_error_line(run_cli("validate", str(path)), path)
    assert f"duplicate key '{key}'" in line


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\n")
    assert loading.read_document(path)["other"] == {"x": 3, "y": 2}


def test_validate_reports_every_problem_of_a_file(tmp_path: Path, run_cli: Any) -> None:
    path = tmp_path / "scenario.yaml"
    document = copy.deepcopy(VALID_SCENARIO)
    document["environment"] = "prod"
    document["unknown_field"] = 1
    document["guardrails"]["max_error_ratio"] = []
    path.write_text(_dump(document))
    result = run_cli("validate", str(path))
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 3, result.stderr
    assert all(line.startswith(f"harness: {path}:") for line in lines), result.stderr
    fields = {line.split(":")[2] for line in lines}
    assert fields == {"environment", "unknown_field", "guardrails.max_error_ratio"}, result.stderr


def test_validate_reports_every_shape_problem_of_an_experiment(tmp_path: Path, run_cli: Any) -> None:
    path = tmp_path / "experiment.yaml"
    document = copy.deepcopy(VALID_EXPERIMENT)
    document["title"] = 3
    document["tags"] = "x"
    path.write_text(_dump(document))
    lines = [line for line in run_cli("validate", str(path)).stderr.splitlines() if line.strip()]
    assert {line.split(":")[2] for line in lines} == {"title", "tags"}, lines


def _unwritable(tmp_path: Path) -> Path:
    """A folder that cannot be created, even by root: its parent is a regular file."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    return blocker / "out"


@pytest.mark.parametrize("command", ["run", "suite", "score", "report"])
def test_out_that_cannot_be_written_is_bad_input_before_anything_starts(
    tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    from harness import runner, session

    def must_not_start(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("started although --out cannot be written")

    monkeypatch.setattr(runner, "run_experiment", must_not_start)
    monkeypatch.setattr(session, "run_and_report", must_not_start)
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    out = _unwritable(tmp_path)
    scenario = str(ROOT / "scenarios" / "aeon-nova.yaml")
    run_file = tmp_path / "run.json"
    run_file.write_text("{}")
    args = {
        "run": ("run", str(EXPERIMENTS / "pause-replica.yaml"), "--scenario", scenario),
        "suite": ("suite", "--scenario", scenario),
        "score": ("score", str(run_file), "--scenario", scenario),
        "report": ("report", str(run_file)),
    }[command]
    line = _one_error_line(run_cli(*args, "--out", str(out)), out)
    assert line.startswith(f"harness: {out}: not writable: "), line


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[1, 2]", ""),
        ('{"regions": []}', "regions"),
        ('{"regions": {"us": "x"}}', "regions.us"),
        ('{"redis_sentinels": "127.0.0.1:1"}', "redis_sentinels"),
        ('{"redis_master_name": 3}', "redis_master_name"),
        ('{"etcd_urls": [1]}', "etcd_urls.0"),
        ('{"links": ["a"]}', "links"),
        # the convergence probe's HTTP endpoint of a region (issue 19): refused before any fault
        ('{"regions": {"us": {"convergence_url": "ftp://h/x"}}}', "regions.us.convergence_url"),
        ('{"regions": {"us": {"convergence_url": "http://h:99999"}}}', "regions.us.convergence_url"),
        ('{"regions": {"us": {"convergence_url": 5}}}', "regions.us.convergence_url"),
    ],
)
def test_endpoints_in_the_wrong_shape_name_the_file_and_field(
    tmp_path: Path, run_cli: Any, text: str, field: str
) -> None:
    path = tmp_path / "endpoints.json"
    path.write_text(text)
    experiment = str(EXPERIMENTS / "pause-replica.yaml")
    scenario = str(ROOT / "scenarios" / "aeon-nova.yaml")
    result = run_cli(
        "run", experiment, "--scenario", scenario, "--endpoints", str(path), "--out", str(tmp_path)
    )
    line = _one_error_line(result, f"{path}:{field}" if field else path)
    assert "expected" in line, line


def test_validate_reports_every_bad_target_not_only_the_first(tmp_path: Path, run_cli: Any) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(
        SCENARIO.replace("at_most: 60s", "at_most: fast")
        + "  typo: {measure: failover_typo_seconds, at_most: 1s}\n"
        + "  neg: {measure: rto_seconds, at_most: -1s}\n"
    )
    lines = [line for line in run_cli("validate", str(path)).stderr.splitlines() if line.strip()]
    fields = [line.split(":")[2] for line in lines]
    assert fields == ["targets.rto.at_most", "targets.typo.measure", "targets.neg.at_most"], lines


def test_yaml_aliases_that_expand_without_end_are_bad_input(tmp_path: Path) -> None:
    # "Billion laughs": nine levels of nine aliases would be 9**9 values to walk.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="expected at most"):
        loading.read_document(path)
