"""Cadences, which experiments are due, and schedules exported as crontab lines or Kubernetes manifests.

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
import json
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError
from harness.model import Scenario

__all__ = [
    "CADENCES",
    "DEFAULT_IMAGE",
    "DEFAULT_NAMESPACE",
    "DEFAULT_REPORTS_CLAIM",
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
    "locust_service_name",
    "next_slot",
    "parse_cron",
    "scenario_cadences",
    "spread_schedules",
    "target_secret_name",
]

SECONDS_PER_WEEK = 7 * 24 * 3600
# Shell test, true in even weeks since the Unix epoch; the job exits 0 in odd weeks.
EVEN_WEEK_GUARD = "[ $(( $(date +%s) / 604800 % 2 )) -eq 0 ]"
DEFAULT_IMAGE = "resilience-harness:latest"
DEFAULT_NAMESPACE = "resilience"
DEFAULT_STORE_SECRET = "harness-store"  # a Secret whose key `url` is the history's PostgreSQL URL
DEFAULT_REPORTS_CLAIM = "harness-reports"  # a PersistentVolumeClaim the jobs write their reports to
# Where the exported pods find things (the Containerfile's layout).
IMAGE_UID = 10001  # the image's non-root user
TARGET_MOUNT = "/etc/harness/target"  # the target Secret, read-only
ENDPOINTS_KEY = "endpoints.json"
REPORTS_MOUNT = "/var/lib/harness/reports"
STATE_MOUNT = "/var/lib/harness/state"
LOCUSTFILE_IN_IMAGE = "/opt/harness/harness/actions/locustfile.py"
LOCUST_WEB_PORT, LOCUST_BUS_PORT = 8089, 5557
LOCUST_REQUESTS_PER_SECOND_PER_USER = 10.0  # as harness.actions.load paces its users
SPREAD_MINUTES = 120  # suites of one cadence start within this many minutes of the cadence's time
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


def spread_schedules(scenarios: Sequence[Scenario]) -> dict[tuple[str, str], str]:
    """(scenario name, cadence name) → the cron expression its suite starts on.

    Suites of one cadence would otherwise all start their estates in the same minute (four weekly
    suites at Monday 03:00). Each suite starts at its cadence's time plus an offset of 0 to
    SPREAD_MINUTES - 1 minutes: the offset a stable hash of the scenario name prefers, else the next
    free minute (scenarios taken in name order), so no two suites of a cadence share a minute and a
    scenario keeps its minute as long as no other one took it first. A suite still runs within its
    cadence's slot (`due` reads the unshifted grid: a run at 03:37 covers the 03:00 slot).
    """
    schedules: dict[tuple[str, str], str] = {}
    for cadence in CADENCES.values():
        names = sorted({s.name for s in scenarios if cadence in scenario_cadences(s)})
        window = max(SPREAD_MINUTES, len(names))
        taken: set[int] = set()
        for name in names:
            offset = int(hashlib.sha256(f"{name}/{cadence.name}".encode()).hexdigest(), 16) % window
            while offset in taken:
                offset = (offset + 1) % window
            taken.add(offset)
            schedules[name, cadence.name] = _shifted(cadence.cron, offset)
    return schedules


def _shifted(cron: str, minutes: int) -> str:
    """A cadence's cron (one minute, one hour) `minutes` later the same day."""
    minute, hour, *rest = cron.split()
    total = int(hour) * 60 + int(minute) + minutes
    if total >= 24 * 60:
        raise ValueError(f"cron {cron!r} shifted by {minutes} min leaves its day")
    return " ".join([str(total % 60), str(total // 60), *rest])


def export_cron(
    scenarios: Sequence[Scenario], *, project_dir: str | Path, harness_command: str = "harness"
) -> str:
    """Crontab lines, one per scenario and cadence, running the suite from `project_dir`."""
    directory = Path(project_dir)
    lines = [
        "# Resilience harness schedules, from `harness schedule export --format cron`.",
        "# Times are UTC: cronie honours CRON_TZ; where cron does not, run it in UTC.",
        "# Biweekly lines fire weekly and run only in even weeks since the Unix epoch.",
        f"# Suites of a cadence start in distinct minutes, within {SPREAD_MINUTES} min of its time.",
        "CRON_TZ=UTC",
    ]
    schedules = spread_schedules(scenarios)
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
            lines.append(f"{schedules[scenario.name, cadence.name]} {escaped}")
    return "\n".join(lines) + "\n"


_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


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


def _labels(scenario: Scenario, component: str, cadence: Cadence | None = None) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": "resilience-harness",
        "app.kubernetes.io/component": component,
        "resilience-harness/scenario": _scenario_label(scenario.name),
    }
    if cadence is not None:
        labels["resilience-harness/cadence"] = cadence.name
    return labels


def _scenario_label(name: str) -> str:
    return (_dns_label(name) or "scenario")[:63].rstrip("-")


def _object_name(scenario_name: str, suffix: str) -> str:
    """`harness-<scenario>-<suffix>`, a DNS-1123 label (≤ 63 characters; a hash keeps long names apart)."""
    scenario_part = _dns_label(scenario_name) or "scenario"
    name = f"harness-{scenario_part}-{suffix}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(scenario_name.encode()).hexdigest()[:6]
    room = 63 - len(f"harness--{digest}-{suffix}")
    return f"harness-{scenario_part[:room].rstrip('-')}-{digest}-{suffix}"


def target_secret_name(scenario_name: str) -> str:
    """The Secret holding a scenario's `endpoints.json` (and any other file its experiments read)."""
    return _object_name(scenario_name, "target")


def locust_service_name(scenario_name: str) -> str:
    """The Service in front of a scenario's Locust master (web UI 8089, worker bus 5557)."""
    return _object_name(scenario_name, "locust")


_POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": IMAGE_UID,
    "runAsGroup": IMAGE_UID,
    "fsGroup": IMAGE_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
_CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _cronjob(
    scenario: Scenario,
    cadence: Cadence,
    argument: str,
    schedule: str,
    *,
    image: str,
    namespace: str,
    store_secret: str | None,
    service_account: str | None,
    reports_claim: str,
    locust: bool,
) -> dict:
    labels = _labels(scenario, "suite", cadence)
    target_secret = target_secret_name(scenario.name)
    arguments = ["--endpoints", f"{TARGET_MOUNT}/{ENDPOINTS_KEY}", "--out", REPORTS_MOUNT]
    if locust:
        arguments += ["--locust-master", f"{locust_service_name(scenario.name)}:{LOCUST_WEB_PORT}"]
    suite = _suite_command("harness", argument, cadence)
    if cadence.even_weeks_only:
        store = ' --store "$HARNESS_STORE"' if store_secret else ""
        script = f"{EVEN_WEEK_GUARD} || exit 0; exec {suite} {shlex.join(arguments)}{store}"
        command = ["/bin/sh", "-c", script]
    else:
        # Kubernetes expands $(HARNESS_STORE) from the container's environment (the Secret).
        command = [
            *shlex.split(suite),
            *arguments,
            *(["--store", "$(HARNESS_STORE)"] if store_secret else []),
        ]
    container: dict = {
        "name": "harness",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": [{"name": "HARNESS_STATE_DIR", "value": STATE_MOUNT}],
        # Credentials the experiments read from the environment (cloud keys, tokens), if any.
        "envFrom": [{"secretRef": {"name": _object_name(scenario.name, "credentials"), "optional": True}}],
        "volumeMounts": [
            {"name": "target", "mountPath": TARGET_MOUNT, "readOnly": True},
            {"name": "reports", "mountPath": REPORTS_MOUNT},
            {"name": "state", "mountPath": STATE_MOUNT},
        ],
        "securityContext": dict(_CONTAINER_SECURITY),
    }
    if store_secret:
        container["env"].append(
            {"name": "HARNESS_STORE", "valueFrom": {"secretKeyRef": {"name": store_secret, "key": "url"}}}
        )
    pod_spec: dict = {
        "restartPolicy": "Never",
        "securityContext": dict(_POD_SECURITY),
        "containers": [container],
        "volumes": [
            {"name": "target", "secret": {"secretName": target_secret, "defaultMode": 0o440}},
            {"name": "reports", "persistentVolumeClaim": {"claimName": reports_claim}},
            # The fault ledger and run locks: one job's own (the store's locks span the team).
            {"name": "state", "emptyDir": {}},
        ],
    }
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
            "schedule": schedule,
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


def _locust_targets(scenario: Scenario) -> list[dict[str, Any]]:
    """The regions' load as harness/actions/locustfile.py reads it (HARNESS_LOAD_TARGETS), without
    URLs: the pods take each region's api_url from the mounted endpoints file."""
    targets = []
    for region in scenario.regions:
        if region.requests_per_minute:
            per_second = region.requests_per_minute / 60
            users = max(1, math.ceil(per_second / LOCUST_REQUESTS_PER_SECOND_PER_USER))
            targets.append({"region": region.name, "requests_per_second": per_second, "users": users})
    return targets


def _locust_manifests(scenario: Scenario, *, image: str, namespace: str, workers: int) -> list[dict]:
    """A ConfigMap (the load targets), the master Deployment and Service, the workers' Deployment."""
    service = locust_service_name(scenario.name)
    config_name = _object_name(scenario.name, "locust-targets")
    master_labels = _labels(scenario, "locust-master")
    worker_labels = _labels(scenario, "locust-worker")
    locust = ["python", "-m", "locust", "-f", LOCUSTFILE_IN_IMAGE]
    environment = [
        {"name": "HARNESS_LOAD_TARGETS", "valueFrom": {"configMapKeyRef": {"name": config_name, "key": "targets.json"}}},  # noqa: E501
        {"name": "HARNESS_ENDPOINTS", "value": f"{TARGET_MOUNT}/{ENDPOINTS_KEY}"},
    ]  # fmt: skip
    volumes = [
        {"name": "target", "secret": {"secretName": target_secret_name(scenario.name), "defaultMode": 0o440}}
    ]
    mounts = [{"name": "target", "mountPath": TARGET_MOUNT, "readOnly": True}]

    def deployment(name: str, labels: dict[str, str], replicas: int, command: list[str], ports: list) -> dict:
        container = {
            "name": "locust",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": command,
            "env": environment,
            "volumeMounts": mounts,
            "securityContext": dict(_CONTAINER_SECURITY),
            "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        }
        if ports:
            container["ports"] = ports
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": dict(labels)},
                "template": {
                    "metadata": {"labels": dict(labels)},
                    "spec": {
                        "securityContext": dict(_POD_SECURITY),
                        "containers": [container],
                        "volumes": volumes,
                    },
                },
            },
        }

    master_ports = [
        {"name": "web", "containerPort": LOCUST_WEB_PORT},
        {"name": "bus", "containerPort": LOCUST_BUS_PORT},
    ]
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": config_name, "namespace": namespace, "labels": _labels(scenario, "locust")},
            "data": {"targets.json": json.dumps(_locust_targets(scenario))},
        },
        deployment(
            _object_name(scenario.name, "locust-master"),
            master_labels,
            1,
            [
                *locust,
                "--master",
                "--master-bind-port",
                str(LOCUST_BUS_PORT),
                "--web-port",
                str(LOCUST_WEB_PORT),
            ],
            master_ports,
        ),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": service, "namespace": namespace, "labels": _labels(scenario, "locust")},
            "spec": {
                "selector": dict(master_labels),
                "ports": [
                    {"name": "web", "port": LOCUST_WEB_PORT, "targetPort": "web"},
                    {"name": "bus", "port": LOCUST_BUS_PORT, "targetPort": "bus"},
                ],
            },
        },
        deployment(
            _object_name(scenario.name, "locust-worker"),
            worker_labels,
            workers,
            [*locust, "--worker", "--master-host", service, "--master-port", str(LOCUST_BUS_PORT)],
            [],
        ),
    ]


def export_cronjobs(
    scenarios: Sequence[Scenario],
    *,
    project_dir: str | Path = ".",
    image: str = DEFAULT_IMAGE,
    namespace: str = DEFAULT_NAMESPACE,
    store_secret: str | None = DEFAULT_STORE_SECRET,
    service_account: str | None = None,
    reports_claim: str = DEFAULT_REPORTS_CLAIM,
    locust_workers: int | None = None,
) -> str:
    """Kubernetes manifests (multi-document YAML): a batch/v1 CronJob per scenario and cadence, and
    with `locust_workers` a Locust master and `locust_workers` workers per scenario with load.

    Each job runs one suite in the image (working directory: the project root, where scenario paths
    relative to `project_dir` resolve) against the endpoints file of the Secret
    `harness-<scenario>-target` (key `endpoints.json`, mounted read-only), writes its reports to the
    `reports_claim` volume, keeps its history in the PostgreSQL URL of the `store_secret` Secret
    (key `url`), and reads environment credentials from the optional Secret
    `harness-<scenario>-credentials`. Suites of one cadence start in distinct minutes
    (spread_schedules); `concurrencyPolicy: Forbid` keeps a suite from overlapping itself.
    """
    if not _DNS_LABEL.match(namespace):
        raise ConfigError("--namespace", "", f"expected a DNS-1123 label (a-z, 0-9, '-'), got {namespace!r}")
    if not image.strip() or any(c.isspace() for c in image):
        raise ConfigError("--image", "", f"expected a container image reference, got {image!r}")
    if not _DNS_SUBDOMAIN.match(reports_claim):
        raise ConfigError(
            "--reports-claim", "", f"expected a PersistentVolumeClaim name, got {reports_claim!r}"
        )
    if locust_workers is not None and not 1 <= locust_workers <= 1000:
        raise ConfigError("--with-locust-workers", "", f"expected 1 to 1000 workers, got {locust_workers!r}")
    if store_secret is not None and not _DNS_SUBDOMAIN.match(store_secret):
        raise ConfigError("--store-secret", "", f"expected a Secret name, got {store_secret!r}")
    schedules = spread_schedules(scenarios)
    documents = []
    for scenario in scenarios:
        argument = _scenario_argument(scenario, Path(project_dir))
        if Path(argument).is_absolute():  # not in the project the image holds: find it by name there
            argument = scenario.name
        locust = locust_workers is not None and bool(_locust_targets(scenario))
        for cadence in scenario_cadences(scenario):
            documents.append(
                _cronjob(
                    scenario,
                    cadence,
                    argument,
                    schedules[scenario.name, cadence.name],
                    image=image,
                    namespace=namespace,
                    store_secret=store_secret,
                    service_account=service_account,
                    reports_claim=reports_claim,
                    locust=locust,
                )
            )
        if locust:
            assert locust_workers is not None
            documents.extend(
                _locust_manifests(scenario, image=image, namespace=namespace, workers=locust_workers)
            )
    header = (
        "# Resilience harness manifests, from `harness schedule export --format k8s-cronjob`.\n"
        "# Before applying: the Secrets named below (target endpoints, history URL) and the reports\n"
        "# PersistentVolumeClaim must exist in the namespace; see docs/team.md.\n"
    )
    return header + yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False)
