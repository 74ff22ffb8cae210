"""Cadences, which experiments are due, and schedules exported as crontab lines or CronJobs.

Pure functions: the clock (`now`) and the history (`last_runs`) are arguments.

Every cadence fires on a fixed grid of UTC times given by a five-field cron expression, and
`due_experiments` reads the same grid: an experiment is due once a slot of its cadence has
passed since its last run, so a run that started a few minutes late still covers its slot.

Biweekly is the weekly expression plus a guard that lets only even weeks since the Unix epoch
through (``$(date +%s) / 604800 % 2 == 0``). Cron cannot say "every other week": ISO week
parity breaks at 53-week years, and ``0 3 1-7,15-21 * 3`` does not mean "the first and third
Wednesday", because when both day fields are restricted cron fires on either (every day 1-7
and 15-21, and every Wednesday). Epoch weeks alternate forever; they turn on Thursdays 00:00
UTC, far from the Wednesday 03:30 slot, so a late start stays in its week. Biweekly runs on
Wednesday rather than with the weekly suite on Monday, so the two do not contend for the
run lock of the same target.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import yaml

from harness.errors import ConfigError
from harness.model import Scenario

__all__ = [
    "CADENCES",
    "DEFAULT_IMAGE",
    "DEFAULT_NAMESPACE",
    "DEFAULT_STORE_SECRET",
    "EVEN_WEEK_GUARD",
    "Cadence",
    "CronExpression",
    "DueItem",
    "cronjob_name",
    "due_experiments",
    "export_cron",
    "export_cronjobs",
    "is_even_epoch_week",
    "next_slot",
    "parse_cron",
    "scenario_cadences",
]

SECONDS_PER_WEEK = 7 * 24 * 3600
# Shell test, true in even weeks since the Unix epoch; the job exits 0 in odd weeks.
EVEN_WEEK_GUARD = "[ $(( $(date +%s) / 604800 % 2 )) -eq 0 ]"
DEFAULT_IMAGE = "resilience-harness:latest"
DEFAULT_NAMESPACE = "resilience"
DEFAULT_STORE_SECRET = "harness-store"  # a Secret whose key `url` is the history's PostgreSQL URL
CRONJOB_NAME_MAX = 52  # Kubernetes appends 11 characters to name each Job
# Skip a slot missed by more than this (controller down): chaos belongs at its quiet hour.
STARTING_DEADLINE_SECONDS = 1800


@dataclass(frozen=True, slots=True)
class Cadence:
    """How often an experiment runs: a nominal period and the UTC cron grid it fires on."""

    name: str
    period_days: int
    cron: str
    even_weeks_only: bool = False


CADENCES: Mapping[str, Cadence] = {
    cadence.name: cadence
    for cadence in (
        Cadence("daily", 1, "0 2 * * *"),
        Cadence("weekly", 7, "0 3 * * 1"),
        Cadence("biweekly", 14, "30 3 * * 3", even_weeks_only=True),
        Cadence("monthly", 30, "0 4 1 * *"),
        Cadence("quarterly", 91, "0 5 1 1,4,7,10 *"),
    )
}


# ---------------------------------------------------------------- cron expressions


@dataclass(frozen=True, slots=True)
class CronExpression:
    """A parsed five-field cron expression; weekdays count from Sunday = 0."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool

    def matches_day(self, day: date) -> bool:
        """Whether the expression fires on this date, with cron's rule for two restricted day fields."""
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.weekday() + 1) % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays


_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_CRON_PART = re.compile(r"^(?:(\*)|(\d+)(?:-(\d+))?)(?:/(\d+))?$")


def _parse_cron_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        match = _CRON_PART.match(part)
        if not match:
            raise ValueError(f"cron {name} field: expected *, N, N-M or */S, got {part!r}")
        star, first, last, step = match.groups()
        start, stop = (low, high) if star else (int(first), int(last) if last else None)
        if stop is None:
            stop = high if step else start
        step_size = int(step) if step else 1
        if not low <= start <= stop <= high or step_size < 1:
            raise ValueError(f"cron {name} field: expected values in {low}-{high}, got {part!r}")
        values.update(range(start, stop + 1, step_size))
    return frozenset(values)


def parse_cron(text: str) -> CronExpression:
    """Parse ``minute hour day-of-month month day-of-week``; ValueError names the bad field."""
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"cron expression: expected 5 fields, got {len(fields)} in {text!r}")
    parsed = [_parse_cron_field(f, *spec) for f, spec in zip(fields, _CRON_FIELDS, strict=True)]
    weekdays = frozenset(day % 7 for day in parsed[4])  # 7 is Sunday too
    return CronExpression(
        minutes=parsed[0],
        hours=parsed[1],
        days=parsed[2],
        months=parsed[3],
        weekdays=weekdays,
        days_restricted=not fields[2].startswith("*"),
        weekdays_restricted=not fields[4].startswith("*"),
    )


# ---------------------------------------------------------------- slots and due experiments


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def is_even_epoch_week(moment: datetime) -> bool:
    """Whether `moment` falls in an even week since the Unix epoch (the biweekly on-weeks)."""
    return int(_utc(moment).timestamp()) // SECONDS_PER_WEEK % 2 == 0


def next_slot(cadence: Cadence, after: datetime) -> datetime:
    """The first time strictly after `after` at which `cadence` fires (UTC)."""
    expression = parse_cron(cadence.cron)
    start = _utc(after).replace(second=0, microsecond=0) + timedelta(minutes=1)
    times = sorted((hour, minute) for hour in expression.hours for minute in expression.minutes)
    day = start.date()
    for _ in range(4 * 366 + 14):  # every valid expression fires within four years
        if expression.matches_day(day):
            for hour, minute in times:
                slot = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                if slot >= start and (not cadence.even_weeks_only or is_even_epoch_week(slot)):
                    return slot
        day += timedelta(days=1)
    raise ValueError(f"cron expression {cadence.cron!r} never fires")


@dataclass(frozen=True, slots=True)
class DueItem:
    """An experiment whose cadence has a slot since its last run (or that never ran)."""

    scenario: str
    experiment_path: str
    cadence: str
    last_run_at: datetime | None
    due_since: datetime | None  # the first slot after the last run; None when it never ran

    def to_dict(self) -> dict[str, str | None]:
        return {
            "scenario": self.scenario,
            "experiment_path": self.experiment_path,
            "cadence": self.cadence,
            "last_run_at": self.last_run_at.isoformat() if self.last_run_at else None,
            "due_since": self.due_since.isoformat() if self.due_since else None,
        }


def _cadence(scenario: Scenario, index: int, name: str) -> Cadence:
    if name not in CADENCES:
        raise ConfigError(
            scenario.path,
            f"experiments.{index}.cadence",
            f"expected one of {', '.join(CADENCES)}, got {name!r}",
        )
    return CADENCES[name]


def due_experiments(
    scenario: Scenario, last_runs: Mapping[str, datetime | None], now: datetime
) -> list[DueItem]:
    """The scenario's experiments due at `now`, most overdue first (never run before all).

    `last_runs` maps an experiment's path to when its newest stored run started.
    """
    moment = _utc(now)
    due = []
    for index, experiment in enumerate(scenario.experiments):
        cadence = _cadence(scenario, index, experiment.cadence)
        last = last_runs.get(experiment.path)
        since = next_slot(cadence, last) if last is not None else None
        if last is None or since <= moment:
            due.append(
                DueItem(scenario.name, experiment.path, cadence.name, _utc(last) if last else None, since)
            )
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(due, key=lambda item: item.due_since or oldest)


# ---------------------------------------------------------------- export


def scenario_cadences(scenario: Scenario) -> list[Cadence]:
    """The cadences the scenario's experiments use, shortest first."""
    used = {_cadence(scenario, index, e.cadence).name for index, e in enumerate(scenario.experiments)}
    return [cadence for name, cadence in CADENCES.items() if name in used]


def _scenario_argument(scenario: Scenario, project_dir: Path) -> str:
    """The scenario file as the job should name it: relative to the project when inside it."""
    path = Path(scenario.path)
    if path.is_absolute():
        try:
            return str(path.relative_to(project_dir.resolve()))
        except ValueError:
            return str(path)
    return str(path)


def _suite_command(harness_command: str, scenario_argument: str, cadence: Cadence) -> str:
    return shlex.join(
        [*shlex.split(harness_command), "suite", "--scenario", scenario_argument, "--cadence", cadence.name]
    )


def export_cron(
    scenarios: Sequence[Scenario], *, project_dir: str | Path, harness_command: str = "harness"
) -> str:
    """Crontab lines, one per scenario and cadence, running the suite from `project_dir`."""
    directory = Path(project_dir)
    lines = [
        "# Resilience harness schedules, from `harness schedule export --format cron`.",
        "# Times are UTC: cronie honours CRON_TZ; where cron does not, run it in UTC.",
        "# Biweekly lines fire weekly and run only in even weeks since the Unix epoch.",
        "CRON_TZ=UTC",
    ]
    for scenario in scenarios:
        argument = _scenario_argument(scenario, directory)
        lines.append(f"# {scenario.name}")
        for cadence in scenario_cadences(scenario):
            command = (
                f"cd {shlex.quote(str(directory))} && {_suite_command(harness_command, argument, cadence)}"
            )
            if cadence.even_weeks_only:
                command = f"{EVEN_WEEK_GUARD} || exit 0; {command}"
            escaped = command.replace("%", "\\%")  # cron turns an unescaped % into a newline
            lines.append(f"{cadence.cron} {escaped}")
    return "\n".join(lines) + "\n"


_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _dns_label(text: str) -> str:
    return _NOT_DNS.sub("-", text.lower()).strip("-")


def cronjob_name(scenario_name: str, cadence: Cadence) -> str:
    """A DNS-1123 name of at most 52 characters, unique per scenario and cadence."""
    scenario_part = _dns_label(scenario_name) or "scenario"
    name = f"harness-{scenario_part}-{cadence.name}"
    if len(name) <= CRONJOB_NAME_MAX:
        return name
    digest = hashlib.sha256(scenario_name.encode()).hexdigest()[:6]
    room = CRONJOB_NAME_MAX - len(f"harness--{digest}-{cadence.name}")
    return f"harness-{scenario_part[:room].rstrip('-')}-{digest}-{cadence.name}"


def _cronjob(
    scenario: Scenario,
    cadence: Cadence,
    argument: str,
    *,
    image: str,
    namespace: str,
    store_secret: str | None,
    service_account: str | None,
) -> dict:
    labels = {
        "app.kubernetes.io/name": "resilience-harness",
        "app.kubernetes.io/component": "suite",
        "resilience-harness/scenario": (_dns_label(scenario.name) or "scenario")[:63].rstrip("-"),
        "resilience-harness/cadence": cadence.name,
    }
    suite = _suite_command("harness", argument, cadence)
    if cadence.even_weeks_only:
        command = ["/bin/sh", "-c", f"{EVEN_WEEK_GUARD} || exit 0; exec {suite}"]
    else:
        command = shlex.split(suite)
    container: dict = {
        "name": "harness",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
    }
    if store_secret:
        container["env"] = [
            {"name": "HARNESS_STORE", "valueFrom": {"secretKeyRef": {"name": store_secret, "key": "url"}}}
        ]
    pod_spec: dict = {"restartPolicy": "Never", "containers": [container]}
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": cronjob_name(scenario.name, cadence),
            "namespace": namespace,
            "labels": dict(labels),
        },
        "spec": {
            "schedule": cadence.cron,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": STARTING_DEADLINE_SECONDS,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    # A missed target is a result, not a glitch to retry.
                    "backoffLimit": 0,
                    "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
                },
            },
        },
    }


def export_cronjobs(
    scenarios: Sequence[Scenario],
    *,
    project_dir: str | Path = ".",
    image: str = DEFAULT_IMAGE,
    namespace: str = DEFAULT_NAMESPACE,
    store_secret: str | None = DEFAULT_STORE_SECRET,
    service_account: str | None = None,
) -> str:
    """Kubernetes batch/v1 CronJobs (multi-document YAML), one per scenario and cadence.

    The image's working directory is taken to be the project root, where scenario paths
    relative to `project_dir` resolve. The history URL comes from the `store_secret` Secret.
    """
    if not _DNS_LABEL.match(namespace):
        raise ConfigError("--namespace", "", f"expected a DNS-1123 label (a-z, 0-9, '-'), got {namespace!r}")
    if not image.strip() or any(c.isspace() for c in image):
        raise ConfigError("--image", "", f"expected a container image reference, got {image!r}")
    documents = []
    for scenario in scenarios:
        argument = _scenario_argument(scenario, Path(project_dir))
        for cadence in scenario_cadences(scenario):
            documents.append(
                _cronjob(
                    scenario,
                    cadence,
                    argument,
                    image=image,
                    namespace=namespace,
                    store_secret=store_secret,
                    service_account=service_account,
                )
            )
    header = "# Resilience harness CronJobs, from `harness schedule export --format k8s-cronjob`.\n"
    return header + yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False)
