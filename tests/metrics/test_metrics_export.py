"""Verdicts as Prometheus metrics: the families (pure), promtool, the textfile, the fault-ledger
watch, and the whole path through a real Pushgateway scraped by a real Prometheus."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import journals, ledger, loading, metrics_export, scoring, store
from harness.model import Grade, Measurement, RunRecord
from harness.sandbox.components import spawn, stop_component, wait_until_listening
from harness.sandbox.monitoring import wait_until_ready
from harness.sandbox.ports import free_ports

GOLDEN = Path(__file__).parents[1] / "journals" / "golden"
SCENARIO = GOLDEN / "scenario.yaml"


def _graded(name: str) -> tuple[RunRecord, Grade]:
    """A record and grade from a golden journal (a real `chaos run`), as `harness score` makes them."""
    scenario = loading.load_scenario(SCENARIO)
    journal = json.loads((GOLDEN / f"{name}.journal.json").read_text())
    record = journals.read_journal(
        journal, scenario=scenario.name, experiment_path=f"{name}.json", harness_version="test"
    ).record
    return record, scoring.grade(record, scenario)


@pytest.fixture(scope="module")
def runs() -> list[tuple[RunRecord, Grade]]:
    met, missed, unknown = (
        _graded("harness-fault-met"),
        _graded("harness-fault-missed"),
        _graded("action-failed"),
    )
    # A censored measurement (the system had not recovered) and one that could not be taken.
    record, grade = unknown
    censored = replace(
        record,
        measurements=(
            *record.measurements,
            Measurement("rto_seconds", 42.0, "seconds", lower_bound=True),
            Measurement("error_ratio", None, "ratio", evidence="no canary"),
        ),
    )
    return [met, missed, (censored, grade)]


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def _value(samples: dict, name: str, **labels: str) -> float:
    matching = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(matching) == 1, (name, labels, matching)
    return matching[0]


def test_families_hold_verdicts_measurements_and_times(runs) -> None:
    samples = _samples(metrics_export.exposition(metrics_export.run_families(runs)).decode())
    met = {"scenario": "golden-journals", "experiment": "harness-fault-met"}
    missed = {**met, "experiment": "harness-fault-missed"}
    unknown = {**met, "experiment": "action-failed"}
    for labels, verdict in ((met, "pass"), (missed, "fail"), (unknown, "unknown")):
        for value in ("pass", "fail", "unknown"):
            assert _value(samples, "harness_run_verdict", **labels, verdict=value) == (value == verdict)
    assert _value(samples, "harness_run_score_ratio", **missed) == pytest.approx(0.25)
    assert _value(samples, "harness_check_verdict", **missed, target="failover_time", verdict="fail") == 1
    assert _value(samples, "harness_target_limit", **missed, target="failover_time", unit="seconds") == 5
    assert _value(samples, "harness_measurement", **missed, measure="failover_seconds", bound="exact") == 9
    # Censored values say so; a measure without a value has no series at all.
    assert _value(samples, "harness_measurement", **unknown, measure="rto_seconds", bound="lower") == 42
    assert not [k for k in samples if k[0] == "harness_measurement" and ("measure", "error_ratio") in k[1]]
    record = runs[1][0]
    start = _value(samples, "harness_run_start_timestamp_seconds", **missed)
    assert _value(samples, "harness_run_end_timestamp_seconds", **missed) == pytest.approx(
        start + record.duration_seconds
    )
    assert _value(samples, "harness_run_info", **missed, run_id=record.run_id) == 1


def test_promtool_finds_nothing_to_lint(runs, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    publisher = metrics_export.Publisher(textfile=tmp_path / "harness.prom")
    publisher.fault_changed(
        ("golden-journals", "harness-fault-met", "network.partition_regions", "a<->b"), True
    )
    for record, grade in runs:
        publisher.run_finished(record, grade)
    text = (tmp_path / "harness.prom").read_bytes()
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), checked
    assert [p.name for p in tmp_path.iterdir()] == ["harness.prom"]  # the temporary file was renamed
    # The fault stays active: nothing in the ledger said it was undone.
    assert _value(_samples(text.decode()), "harness_fault_active", target="a<->b") == 1


def test_fault_changes_follow_this_scenarios_runs_from_the_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    undo = ledger.Undo("harness.actions.instances", "start_instance", {})
    old = ledger.record_applied(
        state,
        "harness.actions.instances.stop_instance",
        "redis-primary",
        undo,
        "20260101T000000Z-s-old-abcdef",
    )
    since = time.time()
    ours = ledger.record_applied(
        state,
        "harness.actions.instances.stop_instance",
        "redis-primary",
        undo,
        "20260101T000000Z-s-redis-primary-failure-0a1b2c",
    )
    ledger.record_applied(
        state, "harness.actions.instances.stop_instance", "x", undo, "20260101T000000Z-other-e-0a1b2c"
    )
    keys: dict = {}
    first = list(metrics_export.fault_changes(ledger.read_entries(state), "s", since, keys))
    assert first == [(("s", "redis-primary-failure", "instances.stop_instance", "redis-primary"), True)]
    ledger.record_undone(state, ours)
    ledger.record_undone(state, old)
    changes = list(metrics_export.fault_changes(ledger.read_entries(state), "s", since, keys))
    assert changes[-1] == (("s", "redis-primary-failure", "instances.stop_instance", "redis-primary"), False)
    assert len(changes) == 2


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--textfile", "metrics.txt", "ending in .prom"),
        ("--textfile", "missing/harness.prom", "not writable"),
        ("--pushgateway", "http://a b", "--pushgateway"),
    ],
)
def test_a_sink_that_cannot_work_is_bad_input(
    option, value, says, run_cli, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("export", "metrics", "--store", f"sqlite:///{tmp_path}/h.db", option, value)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and says in result.stderr, result.stderr


def test_a_pushgateway_that_is_down_is_reported_not_raised(runs) -> None:
    (port,) = free_ports(1)
    said: list[str] = []
    publisher = metrics_export.Publisher(f"http://127.0.0.1:{port}", say=said.append, timeout_seconds=1)
    publisher.run_finished(*runs[0])
    assert said and "not pushed" in said[0]


# ---------------------------------------------------------------- through a real Pushgateway and Prometheus


@dataclass(frozen=True)
class Monitoring:
    pushgateway: str
    prometheus: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)["data"]["result"]

    def eventually(self, promql: str, timeout_seconds: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_seconds
        while True:
            found = self.query(promql)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


@pytest.fixture(scope="module")
def monitoring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitoring]:
    """A Pushgateway, and a Prometheus scraping it every 200 ms (honor_labels), on free ports."""
    if not (shutil.which("prometheus-pushgateway") and shutil.which("prometheus")):
        pytest.skip("prometheus and prometheus-pushgateway are not installed")
    directory = tmp_path_factory.mktemp("monitoring")
    gateway_port, prometheus_port = free_ports(2)
    config = directory / "prometheus.yml"
    scrape = {
        "job_name": "pushgateway",
        "honor_labels": True,  # keep the pushed job, scenario and experiment labels
        "scrape_interval": "200ms",
        "scrape_timeout": "150ms",
        "static_configs": [{"targets": [f"127.0.0.1:{gateway_port}"]}],
    }
    config.write_text(json.dumps({"global": {"scrape_interval": "200ms"}, "scrape_configs": [scrape]}))
    started = []
    try:
        gateway = spawn(
            directory, name="pushgateway", kind="pushgateway", region="", role="", port=gateway_port,
            command=("prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{gateway_port}"),
        )  # fmt: skip
        started.append("pushgateway")
        prometheus = spawn(
            directory, name="prometheus", kind="prometheus", region="", role="", port=prometheus_port,
            command=("prometheus", f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
                     f"--web.listen-address=127.0.0.1:{prometheus_port}", "--log.level=warn",
                     # Apply the scrape targets at once (default: 5 s after start).
                     "--scrape.discovery-reload-interval=100ms"),
            cwd=directory,
        )  # fmt: skip
        started.append("prometheus")
        wait_until_listening(gateway, 10)
        wait_until_ready(prometheus, 20)
        yield Monitoring(f"http://127.0.0.1:{gateway_port}", f"http://127.0.0.1:{prometheus_port}")
    finally:
        for name in reversed(started):
            stop_component(directory, name, signal.SIGKILL)


def test_pushed_verdicts_and_fault_windows_read_back_through_prometheus(
    monitoring: Monitoring, runs, tmp_path: Path
) -> None:
    publisher = metrics_export.Publisher(monitoring.pushgateway)
    state = tmp_path / "state"
    record, grade = runs[1]  # harness-fault-missed
    undo = ledger.Undo("harness.actions.network", "heal_regions", {})
    with metrics_export.FaultWatch(publisher, state, "golden-journals", interval_seconds=0.05):
        run_id = "20260101T000000Z-golden-journals-harness-fault-missed-0a1b2c"
        fault = ledger.record_applied(
            state, "harness.actions.network.partition_regions", "a<->b", undo, run_id
        )
        active = monitoring.eventually('harness_fault_active{target="a<->b"} == 1')
        assert active and active[0]["metric"]["experiment"] == "harness-fault-missed"
        assert active[0]["metric"]["job"] == metrics_export.FAULT_JOB
        ledger.record_undone(state, fault)
    publisher.run_finished(record, grade)
    assert not publisher.problems
    assert monitoring.eventually('harness_fault_active{target="a<->b"} == 0')
    failed = monitoring.eventually('harness_run_verdict{verdict="fail"} == 1')
    assert [r["metric"]["experiment"] for r in failed] == ["harness-fault-missed"]
    assert (
        failed[0]["metric"]["job"] == metrics_export.JOB
        and failed[0]["metric"]["scenario"] == "golden-journals"
    )
    measured = monitoring.eventually('harness_measurement{measure="failover_seconds"}')
    assert float(measured[0]["value"][1]) == 9.0 and measured[0]["metric"]["unit"] == "seconds"
    # The window Grafana annotates: the fault was active in the last minute, and is not now.
    window = monitoring.query('max_over_time(harness_fault_active{target="a<->b"}[1m])')
    assert float(window[0]["value"][1]) == 1.0


def test_export_metrics_pushes_the_latest_stored_runs(
    monitoring: Monitoring, runs, run_cli, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/history.db"
    with store.open_store(url) as history:
        for record, grade in runs:
            history.save(record, grade)
    printed = run_cli("export", "metrics", "--store", url)
    assert printed.exit_code == 0, printed.stderr
    assert (
        _value(_samples(printed.stdout), "harness_run_verdict", experiment="action-failed", verdict="unknown")
        == 1
    )
    pushed = run_cli("export", "metrics", "--store", url, "--pushgateway", monitoring.pushgateway)
    assert pushed.exit_code == 0, pushed.stderr
    found = monitoring.eventually('harness_check_verdict{experiment="action-failed", verdict="unknown"} == 1')
    assert {r["metric"]["target"] for r in found} == {"failover_time", "replication_lag"}
    assert monitoring.eventually('harness_run_verdict{experiment="harness-fault-met", verdict="pass"} == 1')


def test_harness_run_pushes_its_fault_window_and_verdict(
    monitoring: Monitoring, run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`harness run --pushgateway --textfile` on a real harness fault (a partition on a fault proxy
    in this process, held 1.2 s: several 200 ms scrapes even on a busy machine): Prometheus sees
    the fault window, then the run's verdict; `harness suite --textfile` publishes it too."""
    from tests.journals.golden import regenerate

    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.syspath_prepend(str(GOLDEN))
    reported = [
        {"name": "failover_seconds", "value": 1.5, "unit": "seconds"},
        {"name": "replication_lag_seconds", "value": 0.25, "unit": "seconds"},
    ]
    experiment = {
        "title": "golden harness-fault-met",
        "description": "A proven partition held 1.2 s, as a run of the golden scenario.",
        "steady-state-hypothesis": regenerate.HEALTHY,
        "method": [
            regenerate.PARTITION | {"pauses": {"after": 1.2}},
            regenerate.probe("measures", "measured_mapping", measurements=reported),
            regenerate.HEAL,
        ],
        "rollbacks": [regenerate.HEAL],
    }
    path = tmp_path / "harness-fault-met.json"  # the name the golden scenario lists
    path.write_text(json.dumps(experiment))
    # The same experiment as a one-experiment suite, publishing to its own textfile.
    suite_scenario = tmp_path / "suite.yaml"
    golden = SCENARIO.read_text()
    suite_scenario.write_text(
        golden[: golden.index("experiments:")]
        + f"experiments:\n  - path: {path}\n    targets: [failover_time, replication_lag]\n"
    )
    with regenerate._partitionable_link() as endpoints:
        (tmp_path / "endpoints.json").write_text(json.dumps(endpoints))
        result = run_cli(
            "run", str(path), "--scenario", str(SCENARIO), "--endpoints", str(tmp_path / "endpoints.json"),
            "--out", str(tmp_path / "out"), "--store", f"sqlite:///{tmp_path}/history.db",
            "--pushgateway", monitoring.pushgateway, "--textfile", str(tmp_path / "harness.prom"),
        )  # fmt: skip
        suite = run_cli(
            "suite", "--scenario", str(suite_scenario), "--endpoints", str(tmp_path / "endpoints.json"),
            "--out", str(tmp_path / "suite"), "--store", f"sqlite:///{tmp_path}/history.db",
            "--textfile", str(tmp_path / "suite.prom"),
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert suite.exit_code == 0, suite.stderr
    from_suite = _samples((tmp_path / "suite.prom").read_text())
    assert _value(from_suite, "harness_run_verdict", experiment="harness-fault-met", verdict="pass") == 1
    assert _value(from_suite, "harness_fault_active", experiment="harness-fault-met") == 0
    (run_file,) = (tmp_path / "out").glob("*/run.json")
    run_id = run_file.parent.name
    assert monitoring.eventually(f'harness_run_info{{run_id="{run_id}"}} == 1')
    assert monitoring.eventually('harness_run_verdict{experiment="harness-fault-met", verdict="pass"} == 1')
    selector = 'harness_fault_active{experiment="harness-fault-met", action="network.partition_regions"}'
    window = monitoring.query(f"max_over_time({selector}[1m])")
    assert [float(r["value"][1]) for r in window] == [1.0]  # seen active during the run
    assert [float(r["value"][1]) for r in monitoring.query(selector)] == [0.0]  # and undone
    textfile = _samples((tmp_path / "harness.prom").read_text())
    assert _value(textfile, "harness_run_verdict", experiment="harness-fault-met", verdict="pass") == 1
    assert _value(textfile, "harness_fault_active", experiment="harness-fault-met") == 0
