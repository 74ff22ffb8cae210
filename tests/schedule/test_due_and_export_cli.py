"""`harness due` over a stored history and `harness schedule export`, on a fixed clock."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from shop_records import make_record

from harness.model import Grade, Verdict
from harness.schedule import CADENCES, parse_cron
from harness.store import open_store


def _store_runs(*records) -> None:
    with open_store(None) as store:  # the default: .harness/history.sqlite3 in the state dir
        for record in records:
            store.save(record, Grade(record.run_id, "shop", "t", Verdict.PASS, 100.0, ()))


def test_due_lists_what_the_history_has_not_covered(project: Path, run_cli) -> None:
    _store_runs(
        make_record("daily-1", started_at="2025-03-11T02:00:04+00:00"),
        # The same experiment, named by absolute path: still the same file.
        make_record(
            "weekly-1",
            started_at="2025-03-10T03:00:09+00:00",
            experiment_path=str(project / "experiments/partition.json"),
        ),
        make_record("other-scenario", scenario="bank", started_at="2025-03-12T02:00:00+00:00"),
    )
    result = run_cli("due", "--scenario", "shop", "--now", "2025-03-12T12:00:00Z", "--json")
    assert result.exit_code == 0, result
    assert json.loads(result.stdout) == [
        {
            "scenario": "shop",
            "experiment_path": "experiments/region-drill.json",
            "cadence": "quarterly",
            "last_run_at": None,
            "due_since": None,
        },
        {
            "scenario": "shop",
            "experiment_path": "experiments/redis-failover.json",
            "cadence": "daily",
            "last_run_at": "2025-03-11T02:00:04+00:00",
            "due_since": "2025-03-12T02:00:00+00:00",
        },
    ]
    text = run_cli("due", "--now", "2025-03-12T12:00:00Z")  # every scenario in scenarios/
    assert text.stdout.splitlines() == [
        "shop  experiments/region-drill.json  quarterly  never run",
        "shop  experiments/redis-failover.json  daily  "
        "last run 2025-03-11 02:00, due since 2025-03-12 02:00 UTC",
    ]


def test_nothing_due_after_a_full_round(project: Path, run_cli) -> None:
    _store_runs(
        make_record("a", started_at="2025-03-12T02:00:04+00:00"),
        make_record(
            "b", started_at="2025-03-10T03:00:09+00:00", experiment_path="experiments/partition.json"
        ),
        make_record(
            "c", started_at="2025-01-01T05:01:00+00:00", experiment_path="experiments/region-drill.json"
        ),
    )
    result = run_cli("due", "--now", "2025-03-12T12:00:00+00:00")
    assert (result.exit_code, result.stdout) == (0, "nothing is due at 2025-03-12 12:00 UTC\n")


def test_due_bad_input_is_one_line_exit_2(project: Path, run_cli) -> None:
    bad_now = run_cli("due", "--now", "yesterday")
    assert bad_now.exit_code == 2
    assert (
        bad_now.stderr
        == "harness: --now: expected an ISO 8601 time such as 2025-01-31T02:00Z, got 'yesterday'\n"
    )
    (project / "scenarios" / "broken.yaml").write_text("name: broken\nregions: []\ntargets: {}\n")
    broken = run_cli("due")
    assert broken.exit_code == 2 and broken.stderr.startswith("harness: scenarios/broken.yaml:regions")
    store = run_cli("due", "-s", "shop", "--store", "mysql://db/history")
    assert store.exit_code == 2 and "expected sqlite:///PATH, postgresql://" in store.stderr


def test_schedule_export_cron(project: Path, run_cli) -> None:
    result = run_cli("schedule", "export", "--format", "cron", "--harness-command", "/opt/bin/harness")
    assert result.exit_code == 0, result
    jobs = [line for line in result.stdout.splitlines() if line and not line.startswith(("#", "CRON_TZ"))]
    # Each cadence's day and hour window, at the minute the spread gives this scenario.
    for line, cadence in zip(jobs, ("daily", "weekly", "quarterly"), strict=True):
        fields, base = line.split()[:5], CADENCES[cadence].cron.split()
        assert fields[2:] == base[2:]
        offset = int(fields[1]) * 60 + int(fields[0]) - int(base[1]) * 60 - int(base[0])
        assert 0 <= offset < 120, line
    assert all(
        f"cd {project} && /opt/bin/harness suite --scenario scenarios/shop.yaml" in line for line in jobs
    )


def test_schedule_export_cronjobs_to_a_file(project: Path, run_cli) -> None:
    out = project / "deploy" / "cronjobs.yaml"
    result = run_cli(
        "schedule", "export", "--format", "k8s-cronjob", "-s", "shop", "--namespace", "chaos",
        "--image", "registry.example/harness:2", "--output", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result
    documents = list(yaml.safe_load_all(out.read_text()))
    assert [d["metadata"]["name"] for d in documents] == [
        "harness-shop-daily",
        "harness-shop-weekly",
        "harness-shop-quarterly",
    ]
    for document in documents:
        parse_cron(document["spec"]["schedule"])
        assert document["metadata"]["namespace"] == "chaos"
        (container,) = document["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "registry.example/harness:2"


def test_schedule_export_of_a_missing_scenario_is_exit_2(project: Path, run_cli) -> None:
    result = run_cli("schedule", "export", "--format", "cron", "-s", "nowhere")
    assert result.exit_code == 2
    assert result.stderr.startswith("harness: nowhere")
