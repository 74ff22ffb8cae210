"""Verdicts as Prometheus metrics: each run's grade and measurements, and the faults a run holds open.

Published to a Pushgateway (``--pushgateway URL``) or written as a node-exporter textfile
(``--textfile PATH.prom``, written atomically: a temporary file renamed over the old one), after
each run of ``harness run`` / ``harness suite`` and by ``harness export metrics`` from the history.
Every metric is a gauge (a run's verdict is a state, not a count); names follow the Prometheus
conventions (``harness_`` prefix, snake_case, base units, ``_timestamp_seconds`` for times):

``harness_run_verdict{scenario,experiment,verdict}``
    1 for the run's verdict, 0 for the two others (``pass``, ``fail``, ``unknown``), so
    ``harness_run_verdict{verdict="fail"} == 1`` selects the failing experiments.
``harness_run_score_ratio{scenario,experiment}``
    the weighted share of passed checks, 0..1.
``harness_run_{start,end}_timestamp_seconds``, ``harness_run_duration_seconds``
    when the latest run started and ended (Unix seconds) and how long it took.
``harness_run_info{scenario,experiment,run_id,title,harness_version}``
    always 1: which run the other series describe.
``harness_check_verdict{scenario,experiment,target,verdict}``
    1 for the check's verdict, 0 for the others.
``harness_target_limit{scenario,experiment,target,measure,unit,comparison}``
    the target's limit in base units (``comparison`` is ``at_most`` or ``at_least``).
``harness_measurement{scenario,experiment,measure,unit,bound}``
    every measurement with a value, in its base unit. One gauge for every measure, so the unit is
    a label (``seconds``, ``ratio`` 0..1, ``count``, ``bytes``, ``rps``) and the measure's own name
    already ends with it (``failover_seconds``, ``error_ratio``); ``bound="lower"`` marks a
    censored value (the true value is at least this), ``bound="exact"`` the others. A measure
    that could not be taken has no series: its check is ``unknown``.
``harness_fault_active{scenario,experiment,action,target}``
    1 from the moment a fault is written to the fault ledger until it is undone, then 0. Pushed as
    the ledger changes during a run (watched every 0.2 s), so Prometheus sees fault windows that
    Grafana can draw as annotations.

``experiment`` is the experiment file's name without its extension (``redis-primary-failure``).
The Pushgateway keeps one group per scenario and experiment: job ``harness`` holds the latest
run's series (replaced by the next run's push), job ``harness_faults`` the fault windows.
Scrape it with ``honor_labels: true`` so these labels are kept.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest, push_to_gateway, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from harness import ledger
from harness.errors import ConfigError
from harness.model import Grade, RunRecord, Verdict

__all__ = [
    "FAULT_JOB",
    "JOB",
    "FaultWatch",
    "Publisher",
    "check_sinks",
    "experiment_name",
    "exposition",
    "fault_families",
    "run_families",
]

JOB = "harness"
FAULT_JOB = "harness_faults"
LEDGER_PREFIX = "harness.actions."
_VERDICTS = tuple(v.value for v in Verdict)
_RUN = ("scenario", "experiment")
_FAULT = (*_RUN, "action", "target")
# (scenario, experiment, action, target)
FaultKey = tuple[str, str, str, str]


def experiment_name(path: str) -> str:
    """The experiment label: the file name without folders or extension."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"\.(ya?ml|json)$", "", name)


def run_families(runs: Sequence[tuple[RunRecord, Grade]]) -> list[Metric]:
    """The metric families of these runs (one run per scenario and experiment: the latest)."""
    verdict = GaugeMetricFamily(
        "harness_run_verdict",
        "Verdict of the latest run: 1 for its verdict, 0 for the others.",
        labels=[*_RUN, "verdict"],
    )
    score = GaugeMetricFamily(
        "harness_run_score_ratio", "Weighted share of passed checks, 0..1.", labels=_RUN
    )
    start = GaugeMetricFamily(
        "harness_run_start_timestamp_seconds", "When the run started (Unix time).", labels=_RUN
    )
    end = GaugeMetricFamily(
        "harness_run_end_timestamp_seconds", "When the run ended (Unix time).", labels=_RUN
    )
    duration = GaugeMetricFamily("harness_run_duration_seconds", "How long the run took.", labels=_RUN)
    info = GaugeMetricFamily(
        "harness_run_info",
        "The run the other series describe.",
        labels=[*_RUN, "run_id", "title", "harness_version"],
    )
    check = GaugeMetricFamily(
        "harness_check_verdict",
        "Verdict of each check: 1 for its verdict, 0 for the others.",
        labels=[*_RUN, "target", "verdict"],
    )
    limit = GaugeMetricFamily(
        "harness_target_limit", "The target's limit, in the measure's base unit.",
        labels=[*_RUN, "target", "measure", "unit", "comparison"],
    )  # fmt: skip
    measurement = GaugeMetricFamily(
        "harness_measurement", "A measurement in its base unit (unit label); bound=lower: at least this.",
        labels=[*_RUN, "measure", "unit", "bound"],
    )  # fmt: skip
    for record, grade in runs:
        labels = [record.scenario, experiment_name(record.experiment_path)]
        for value in _VERDICTS:
            verdict.add_metric([*labels, value], 1.0 if grade.verdict == value else 0.0)
        score.add_metric(labels, grade.score / 100.0)
        started = _unix(record.started_at)
        start.add_metric(labels, started)
        end.add_metric(labels, started + record.duration_seconds)
        duration.add_metric(labels, record.duration_seconds)
        info.add_metric([*labels, record.run_id, record.experiment_title, record.harness_version], 1.0)
        for graded in grade.checks:
            for value in _VERDICTS:
                check.add_metric([*labels, graded.target, value], 1.0 if graded.verdict == value else 0.0)
            limit.add_metric(
                [*labels, graded.target, graded.measure, graded.unit, graded.comparison.value], graded.limit
            )
        for found in _measurements(record):
            bound = "lower" if found.lower_bound else "exact"
            measurement.add_metric([*labels, found.name, found.unit, bound], float(found.value))  # type: ignore[arg-type]
    return [verdict, score, start, end, duration, info, check, limit, measurement]


def fault_families(faults: Mapping[FaultKey, bool]) -> list[Metric]:
    """harness_fault_active for every fault seen: 1 while applied, 0 once undone."""
    active = GaugeMetricFamily(
        "harness_fault_active",
        "1 while the fault is applied (written to the ledger, not yet undone), else 0.",
        labels=_FAULT,
    )
    for key, is_active in sorted(faults.items()):
        active.add_metric(list(key), 1.0 if is_active else 0.0)
    return [active]


def exposition(families: Iterable[Metric]) -> bytes:
    """The families in the Prometheus text format."""
    return generate_latest(_registry(families))


def check_sinks(pushgateway: str | None, textfile: Path | None) -> None:
    """Refuse a sink that cannot work, before anything runs (ConfigError naming the option)."""
    if pushgateway is not None and not re.match(r"^(https?://)?[^\s/:]+(:\d+)?(/\S*)?$", pushgateway):
        raise ConfigError(
            "--pushgateway", "", f"expected a URL such as http://127.0.0.1:9091, got {pushgateway!r}"
        )
    if textfile is not None:
        if textfile.suffix != ".prom":
            raise ConfigError(
                textfile, "", "expected a file name ending in .prom (node-exporter reads only those)"
            )
        folder = textfile.parent
        if not folder.is_dir():
            raise ConfigError(textfile, "", f"not writable: no folder {folder}")
        probe = folder / f".{textfile.name}.check"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise ConfigError(textfile, "", f"not writable: {error.strerror or error}") from None


class Publisher:
    """Keeps the latest run per scenario and experiment and the faults seen, and publishes them to
    the Pushgateway and/or the textfile whenever one changes. Thread-safe (the fault watch pushes
    from its own thread). Publishing never raises: problems are kept in `problems` and passed to
    `say`, so a Pushgateway that is down cannot lose a run's verdict."""

    def __init__(
        self,
        pushgateway: str | None = None,
        textfile: Path | None = None,
        *,
        say: Callable[[str], None] = lambda message: None,
        timeout_seconds: float = 5.0,
    ) -> None:
        self.pushgateway, self.textfile, self.say = pushgateway, textfile, say
        self.timeout_seconds = timeout_seconds
        self.runs: dict[tuple[str, str], tuple[RunRecord, Grade]] = {}
        self.faults: dict[FaultKey, bool] = {}
        self.problems: list[str] = []
        self._lock = threading.Lock()

    def run_finished(self, record: RunRecord, grade: Grade) -> None:
        """Publish a graded run. Fault states stay what the ledger said (a fault its run left open
        is still active until `harness recover` undoes it)."""
        group = (record.scenario, experiment_name(record.experiment_path))
        with self._lock:
            self.runs[group] = (record, grade)
            self._push(JOB, group, run_families([(record, grade)]))
            self._write_textfile()

    def fault_changed(self, key: FaultKey, is_active: bool) -> None:
        """Publish a fault applied (True) or undone (False)."""
        with self._lock:
            if self.faults.get(key) is is_active:
                return
            self.faults[key] = is_active
            self._push_faults(key[:2])
            self._write_textfile()

    def _push_faults(self, group: tuple[str, str]) -> None:
        ours = {key: active for key, active in self.faults.items() if key[:2] == group}
        if ours:
            self._push(FAULT_JOB, group, fault_families(ours))

    def _push(self, job: str, group: tuple[str, str], families: list[Metric]) -> None:
        if self.pushgateway is None:
            return
        try:
            push_to_gateway(
                self.pushgateway,
                job=job,
                registry=_registry(families),
                grouping_key=dict(zip(_RUN, group, strict=True)),
                timeout=self.timeout_seconds,
            )
        except Exception as error:  # any transport error: reported, never raised (see the class doc)
            self._problem(f"metrics not pushed to {self.pushgateway}: {error}")

    def _write_textfile(self) -> None:
        if self.textfile is None:
            return
        families = run_families(list(self.runs.values())) + fault_families(self.faults)
        try:
            write_to_textfile(str(self.textfile), _registry(families))
        except OSError as error:
            self._problem(f"metrics not written to {self.textfile}: {error.strerror or error}")

    def _problem(self, text: str) -> None:
        self.problems.append(text)
        self.say(text)


class FaultWatch:
    """Follows the fault ledger in a thread and tells the publisher when a fault of this scenario is
    applied or undone; used as a context manager around a run or a suite."""

    def __init__(
        self, publisher: Publisher, state_dir: Path, scenario: str, interval_seconds: float = 0.2
    ) -> None:
        self.publisher, self.state_dir, self.scenario = publisher, state_dir, scenario
        self.interval_seconds = interval_seconds
        self._since = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="harness-fault-watch", daemon=True)
        self._keys: dict[str, FaultKey] = {}

    def __enter__(self) -> FaultWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.poll()  # the last changes, after the thread stopped

    def _follow(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            self.poll()

    def poll(self) -> None:
        """Read the ledger once and publish what changed."""
        try:
            entries = ledger.read_entries(self.state_dir)
        except Exception:  # a ledger being rewritten: the next poll reads it
            return
        for key, is_active in fault_changes(entries, self.scenario, self._since, self._keys):
            self.publisher.fault_changed(key, is_active)


@contextlib.contextmanager
def publishing(
    pushgateway: str | None,
    textfile: Path | None,
    state_dir: Path,
    scenario: str,
    *,
    say: Callable[[str], None] = lambda message: None,
) -> Iterator[Publisher | None]:
    """A publisher that follows the fault ledger while the block runs; None without a sink. The
    one way `harness run`, `harness suite` and the Chaos Toolkit control publish a run."""
    if pushgateway is None and textfile is None:
        yield None
        return
    publisher = Publisher(pushgateway, textfile, say=say)
    with FaultWatch(publisher, state_dir, scenario):
        yield publisher


def fault_changes(
    entries: Sequence[Mapping[str, object]], scenario: str, since: float, keys: dict[str, FaultKey]
) -> Iterator[tuple[FaultKey, bool]]:
    """(fault, active) for each ledger entry of this scenario's runs from `since` on (Unix time);
    `keys` remembers fault id → labels between calls (an undo entry names only the id)."""
    for entry in entries:
        fault_id = entry.get("fault_id")
        if not isinstance(fault_id, str):
            continue
        if entry.get("event") == "applied":
            wall = entry.get("wall")
            if not isinstance(wall, int | float) or wall < since:
                continue
            experiment = _experiment_of_run(str(entry.get("run_id") or ""), scenario)
            if experiment is None:
                continue  # another scenario's run (or no run at all)
            keys[fault_id] = (
                scenario,
                experiment,
                _action(str(entry.get("action", ""))),
                str(entry.get("target", "")),
            )
            yield keys[fault_id], True
        elif entry.get("event") == "undone" and fault_id in keys:
            yield keys[fault_id], False


def _experiment_of_run(run_id: str, scenario: str) -> str | None:
    """The experiment of a run id `<stamp>-<scenario>-<experiment>-<hex6>` (harness.runner.new_run_id)."""
    found = re.match(rf"^\d{{8}}T\d{{6}}Z-{re.escape(scenario)}-(.+)-[0-9a-f]{{6}}$", run_id)
    return found.group(1) if found else None


def _action(action: str) -> str:
    return action.removeprefix(LEDGER_PREFIX)


def _measurements(record: RunRecord) -> list:
    """The last measurement of each name that has a finite value (the one a check reads)."""
    names = dict.fromkeys(m.name for m in record.measurements)
    found = [record.measurement(name) for name in names]
    return [m for m in found if m is not None and m.value is not None and math.isfinite(m.value)]


def _unix(iso: str) -> float:
    from datetime import UTC, datetime

    parsed = datetime.fromisoformat(iso)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def _registry(families: Iterable[Metric]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return registry
