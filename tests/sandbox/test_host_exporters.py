"""The node and process exporters (CPU of the system under test) are optional sandbox parts."""

from __future__ import annotations

import json

import pytest

from harness.sandbox import monitoring
from harness.sandbox.examples import example_scenario
from harness.sandbox.topology import plan


def _jobs(config: str) -> dict[str, list[dict]]:
    return {job["job_name"]: job["static_configs"] for job in json.loads(config)["scrape_configs"]}


def test_without_the_packages_nothing_scrapes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    wanted = plan(example_scenario(3))
    installed = monitoring.shutil.which
    monkeypatch.setattr(
        monitoring.shutil,
        "which",
        lambda name: None if name in (monitoring.NODE_EXPORTER_BINARY, monitoring.PROCESS_EXPORTER_BINARY)
        else installed(name),
    )  # fmt: skip
    assert not monitoring.host_exporters()
    assert {"node", "process"}.isdisjoint(_jobs(monitoring.prometheus_config(wanted)))


@pytest.mark.skipif(not monitoring.host_exporters(), reason="node and process exporters not installed")
def test_process_groups_are_the_system_under_test_only() -> None:
    wanted = plan(example_scenario(3))
    jobs = _jobs(monitoring.prometheus_config(wanted))
    assert jobs["node"][0]["targets"] == [f"127.0.0.1:{wanted.ports['node-exporter']}"]
    groups = monitoring.process_groups(wanted)
    regions = wanted.regions
    assert set(groups) == {
        *(f"{kind}-{r}" for kind in ("redis", "postgres", "api") for r in regions),
        "sentinel-1",
        "sentinel-2",
        "sentinel-3",
    }
    config = json.loads(monitoring.process_exporter_config(wanted))
    assert [g["name"] for g in config["process_names"]] == list(groups)
