"""Cadences, due experiments and exported schedules, on fixed clocks and histories."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kubernetes.client
import pytest
import yaml

from harness.errors import ConfigError
from harness.model import ExperimentRef, Scenario
from harness.schedule import (
    CADENCES,
    EVEN_WEEK_GUARD,
    cronjob_name,
    due_experiments,
    export_cron,
    export_cronjobs,
    is_even_epoch_week,
    next_slot,
    parse_cron,
    spread_schedules,
)

DAILY, WEEKLY, QUARTERLY = "experiments/failover.json", "experiments/partition.json", "experiments/drill.json"
SHOP = Scenario(
    name="shop",
    path="scenarios/shop.yaml",
    experiments=(
        ExperimentRef(DAILY, cadence="daily"),
        ExperimentRef(WEEKLY, cadence="weekly"),
        ExperimentRef(QUARTERLY, cadence="quarterly"),
    ),
)
# Wednesday 12 March 2025, noon UTC.
NOW = datetime(2025, 3, 12, 12, 0, tzinfo=UTC)
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ---------------------------------------------------------------- cron expressions


def test_parse_cron_reads_lists_ranges_and_steps() -> None:
    expression = parse_cron("*/15 2-4 1,15 1,4,7,10 *")
    assert expression.minutes == {0, 15, 30, 45}
    assert expression.hours == {2, 3, 4}
    assert expression.days == {1, 15}
    assert expression.months == {1, 4, 7, 10}
    assert expression.weekdays == set(range(7))
    assert parse_cron("0 0 * * 7").weekdays == {0}  # 7 is Sunday, as in cron


def test_restricting_both_day_fields_means_either_as_in_cron() -> None:
    # The trap that rules out `1-7,15-21 * 3` for "first and third Wednesday".
    expression = parse_cron("0 3 1-7,15-21 * 3")
    assert expression.matches_day(at("2025-03-02").date())  # a Sunday inside 1-7
    assert expression.matches_day(at("2025-03-26").date())  # a Wednesday outside both ranges
    assert not expression.matches_day(at("2025-03-10").date())  # Monday the 10th


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("* * *", "5 fields"),
        ("61 * * * *", "minute"),
        ("0 24 * * *", "hour"),
        ("0 0 0 * *", "day of month"),
        ("0 0 * 13 *", "month"),
        ("0 0 * * 8", "day of week"),
        ("0 0 * * MON", "day of week"),
        ("*/0 * * * *", "minute"),
    ],
)
def test_parse_cron_names_the_bad_field(text: str, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        parse_cron(text)


# ---------------------------------------------------------------- slots


@pytest.mark.parametrize(
    ("cadence", "after", "expected"),
    [
        ("daily", "2025-03-12T01:59:59", "2025-03-12T02:00:00"),
        ("daily", "2025-03-12T02:00:00", "2025-03-13T02:00:00"),  # strictly after
        ("weekly", "2025-03-11T09:00:00", "2025-03-17T03:00:00"),  # Tuesday to the next Monday
        ("weekly", "2025-03-17T02:59:00", "2025-03-17T03:00:00"),
        ("monthly", "2025-01-31T23:00:00", "2025-02-01T04:00:00"),
        ("monthly", "2024-02-01T04:00:00", "2024-03-01T04:00:00"),
        ("quarterly", "2024-11-15T00:00:00", "2025-01-01T05:00:00"),
        ("quarterly", "2025-01-01T05:00:00", "2025-04-01T05:00:00"),
    ],
)
def test_next_slot_on_fixed_clocks(cadence: str, after: str, expected: str) -> None:
    assert next_slot(CADENCES[cadence], at(after)) == at(expected)


@pytest.mark.parametrize(("cadence", "low", "high"), [("daily", 365, 366), ("weekly", 52, 53),
                         ("biweekly", 26, 27), ("monthly", 12, 12), ("quarterly", 4, 4)])  # fmt: skip
def test_slots_in_a_year_match_the_cadence(cadence: str, low: int, high: int) -> None:
    slots, moment = [], at("2026-01-01T00:00:00") - timedelta(seconds=1)
    while (moment := next_slot(CADENCES[cadence], moment)) < at("2027-01-01T00:00:00"):
        slots.append(moment)
    assert low <= len(slots) <= high
    gaps = {b - a for a, b in itertools.pairwise(slots)}
    assert min(gaps) >= timedelta(days=CADENCES[cadence].period_days - 3)


def test_biweekly_slots_are_exactly_two_weeks_apart_across_a_53_week_year() -> None:
    # ISO year 2026 has 53 weeks: ISO-week parity would run two weeks in a row at the turn.
    slots, moment = [], at("2026-10-01T00:00:00")
    for _ in range(12):
        moment = next_slot(CADENCES["biweekly"], moment)
        slots.append(moment)
    assert all(slot.weekday() == 2 and (slot.hour, slot.minute) == (3, 30) for slot in slots)
    assert {b - a for a, b in itertools.pairwise(slots)} == {timedelta(days=14)}
    assert all(is_even_epoch_week(slot) for slot in slots)


def test_the_shell_guard_agrees_with_the_biweekly_slots() -> None:
    while True:  # not across the epoch-week boundary (Thursday 00:00 UTC)
        before = time.time()
        shell = subprocess.run(
            ["sh", "-c", f"{EVEN_WEEK_GUARD} && echo even || echo odd"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if int(before) // 604800 == int(time.time()) // 604800:
            break
    assert shell.stdout.strip() == (
        "even" if is_even_epoch_week(datetime.fromtimestamp(before, UTC)) else "odd"
    )


# ---------------------------------------------------------------- due


def test_never_run_experiments_are_due_first() -> None:
    due = due_experiments(SHOP, {DAILY: at("2025-03-10T02:00:05")}, NOW)
    assert [(item.experiment_path, item.due_since) for item in due] == [
        (WEEKLY, None),
        (QUARTERLY, None),
        (DAILY, at("2025-03-11T02:00:00")),
    ]
    assert due[2].last_run_at == at("2025-03-10T02:00:05")


def test_runs_that_covered_their_latest_slot_are_not_due() -> None:
    history = {
        DAILY: at("2025-03-12T02:00:07"),  # today's slot, a few seconds late
        WEEKLY: at("2025-03-10T03:04:00"),  # Monday's slot
        QUARTERLY: at("2025-01-01T05:00:00"),  # this quarter's slot
    }
    assert due_experiments(SHOP, history, NOW) == []


def test_a_missed_slot_makes_an_experiment_due_since_that_slot() -> None:
    history = {
        DAILY: at("2025-03-12T02:00:07"),
        WEEKLY: at("2025-03-03T03:00:00"),
        QUARTERLY: at("2024-12-20T09:00:00"),
    }
    due = due_experiments(SHOP, history, NOW)
    assert [(item.experiment_path, item.due_since) for item in due] == [
        (QUARTERLY, at("2025-01-01T05:00:00")),
        (WEEKLY, at("2025-03-10T03:00:00")),
    ]


def test_due_turns_at_the_slot_not_a_period_after_the_last_run() -> None:
    # Yesterday's run started late (02:10): it is due again from 02:00 today, not from 02:10.
    history = {DAILY: at("2025-03-11T02:10:00"), WEEKLY: NOW, QUARTERLY: NOW}
    assert due_experiments(SHOP, history, at("2025-03-12T01:59:00")) == []
    assert [item.experiment_path for item in due_experiments(SHOP, history, at("2025-03-12T02:00:00"))] == [
        DAILY
    ]


def test_naive_times_are_taken_as_utc() -> None:
    history = {DAILY: datetime(2025, 3, 12, 2, 0, 7), WEEKLY: NOW, QUARTERLY: NOW}
    assert due_experiments(SHOP, history, datetime(2025, 3, 12, 12, 0)) == []


def test_an_unknown_cadence_names_the_field() -> None:
    odd = Scenario(
        name="odd", path="scenarios/odd.yaml", experiments=(ExperimentRef("x.json", cadence="hourly"),)
    )
    with pytest.raises(ConfigError, match=r"scenarios/odd.yaml:experiments.0.cadence: expected one of daily"):
        due_experiments(odd, {}, NOW)


# ---------------------------------------------------------------- crontab


def _cron_entries(text: str) -> list[tuple[str, str]]:
    entries = []
    for line in text.splitlines():
        if not line or line.startswith("#") or re.match(r"^[A-Z_]+=", line):
            continue
        fields = line.split(None, 5)
        entries.append((" ".join(fields[:5]), fields[5]))
    return entries


def test_export_cron_has_one_line_per_scenario_and_cadence(tmp_path: Path) -> None:
    project = tmp_path / "my project"
    other = Scenario(
        name="bank",
        path=str(project / "scenarios/bank.yaml"),
        experiments=(ExperimentRef("a.json", "biweekly"), ExperimentRef("b.json", "biweekly")),
    )
    text = export_cron([SHOP, other], project_dir=project, harness_command="/opt/venv/bin/harness")
    assert "CRON_TZ=UTC" in text.splitlines()
    entries = _cron_entries(text)
    spread = spread_schedules([SHOP, other])
    assert [schedule for schedule, _ in entries] == [
        spread[s, c]
        for s, c in (("shop", "daily"), ("shop", "weekly"), ("shop", "quarterly"), ("bank", "biweekly"))
    ]
    for schedule, command in entries:
        parse_cron(schedule)
        assert re.search(r"(?<!\\)%", command) is None, "cron turns a bare % into a newline"
    runnable = [shlex.split(command.replace("\\%", "%")) for _, command in entries]
    assert runnable[0][:3] == ["cd", str(project), "&&"]
    assert runnable[0][3:] == [
        "/opt/venv/bin/harness",
        "suite",
        "--scenario",
        "scenarios/shop.yaml",
        "--cadence",
        "daily",
    ]
    # A scenario file inside the project is named relative to it.
    assert runnable[3][-4:] == ["--scenario", "scenarios/bank.yaml", "--cadence", "biweekly"]


@pytest.mark.parametrize("week_offset", [0, 1])
def test_the_crontab_line_runs_the_suite_in_on_weeks_only(tmp_path: Path, week_offset: int) -> None:
    slot = next_slot(CADENCES["biweekly"], NOW) + timedelta(weeks=week_offset)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    # `date` answers with the slot's time, so both kinds of week are tried whatever today is.
    fakes = {"harness": f'echo "$@" >> {shlex.quote(str(calls))}', "date": f"echo {int(slot.timestamp())}"}
    for name, body in fakes.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    scenario = Scenario(
        name="bank", path="scenarios/bank.yaml", experiments=(ExperimentRef("a.json", "biweekly"),)
    )
    ((schedule, command),) = _cron_entries(
        export_cron([scenario], project_dir=tmp_path, harness_command="harness")
    )
    assert schedule == spread_schedules([scenario])["bank", "biweekly"]
    # What cron does with the command field: unescape %, hand it to /bin/sh.
    environment = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["/bin/sh", "-c", command.replace("\\%", "%")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=10,
    )
    assert result.returncode == 0, result.stderr
    ran = calls.read_text().split() if calls.exists() else []
    on_week = week_offset == 0
    assert is_even_epoch_week(slot) is on_week
    assert ran == (["suite", "--scenario", "scenarios/bank.yaml", "--cadence", "biweekly"] if on_week else [])


# ---------------------------------------------------------------- Kubernetes CronJobs


def _required_fields_ok(document: dict) -> None:
    """The fields a batch/v1 CronJob must have, checked one by one."""
    assert document["apiVersion"] == "batch/v1"
    assert document["kind"] == "CronJob"
    name = document["metadata"]["name"]
    assert DNS_1123.match(name) and len(name) <= 52, name
    assert DNS_1123.match(document["metadata"]["namespace"])
    spec = document["spec"]
    parse_cron(spec["schedule"])
    assert len(spec["schedule"].split()) == 5
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] in ("OnFailure", "Never")
    assert pod["containers"]
    for container in pod["containers"]:
        assert DNS_1123.match(container["name"])
        assert container["image"]
    for value in document["metadata"]["labels"].values():
        assert len(value) <= 63 and re.match(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", value)


def test_cronjobs_are_valid_batch_v1_documents() -> None:
    text = export_cronjobs([SHOP], image="registry.example/harness:1.2", namespace="chaos")
    documents = list(yaml.safe_load_all(text))
    assert len(documents) == 3
    for document in documents:
        _required_fields_ok(document)
        # The Kubernetes client's model reads every field under its API name.
        model = kubernetes.client.V1CronJob.from_dict(document)
        assert model.spec.concurrency_policy == "Forbid"
        assert model.spec.time_zone == "Etc/UTC"
        assert model.spec.job_template.spec.template.spec.restart_policy == "Never"
        assert (
            model.spec.job_template.spec.template.spec.containers[0].image == "registry.example/harness:1.2"
        )
        assert model.metadata.namespace == "chaos"
    commands = [
        d["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"] for d in documents
    ]
    assert commands[0] == [
        "harness", "suite", "--scenario", "scenarios/shop.yaml", "--cadence", "daily",
        "--endpoints", "/etc/harness/target/endpoints.json", "--out", "/var/lib/harness/reports",
        "--store", "$(HARNESS_STORE)",
    ]  # fmt: skip
    schedules = spread_schedules([SHOP])
    assert [d["spec"]["schedule"] for d in documents] == [
        schedules["shop", c] for c in ("daily", "weekly", "quarterly")
    ]


def test_biweekly_cronjob_guards_its_command_and_reads_the_store_secret() -> None:
    scenario = Scenario(
        name="bank", path="scenarios/bank.yaml", experiments=(ExperimentRef("a.json", "biweekly"),)
    )
    (document,) = yaml.safe_load_all(
        export_cronjobs([scenario], store_secret="history", service_account="chaos")
    )
    _required_fields_ok(document)
    pod = document["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    command = pod["containers"][0]["command"]
    assert command[:2] == ["/bin/sh", "-c"] and command[2].startswith(EVEN_WEEK_GUARD)
    assert "exec harness suite --scenario scenarios/bank.yaml --cadence biweekly " in command[2]
    assert command[2].endswith(' --store "$HARNESS_STORE"')  # the shell expands it, quoted
    assert {"name": "HARNESS_STORE", "valueFrom": {"secretKeyRef": {"name": "history", "key": "url"}}} in (
        pod["containers"][0]["env"]
    )
    assert pod["serviceAccountName"] == "chaos"


def test_long_scenario_names_give_short_distinct_cronjob_names() -> None:
    first = "payments-platform-europe-and-asia-multi-region-primary"
    second = "payments-platform-europe-and-asia-multi-region-standby"
    names = {cronjob_name(name, CADENCES[c]) for name in (first, second) for c in CADENCES}
    assert len(names) == 2 * len(CADENCES)
    assert all(len(name) <= 52 and DNS_1123.match(name) for name in names)
    assert cronjob_name("Shop_EU", CADENCES["daily"]) == "harness-shop-eu-daily"


@pytest.mark.parametrize(("option", "value"), [("namespace", "Chaos_NS"), ("image", "two words")])
def test_bad_cronjob_options_are_config_errors(option: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"--{option}"):
        export_cronjobs([SHOP], **{option: value})
