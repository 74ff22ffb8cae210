"""postgres.topology: active-active: a writable PostgreSQL per region, pglogical both ways through the proxy.

One two-region estate (proxy + PostgreSQL) serves every real-process test of the module, in file
order; the last one tears it down and checks that nothing is left. Bad input is checked on files.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from harness import ledger
from harness.actions import instances, network, replication
from harness.errors import ConfigError
from harness.loading import load_experiment, load_scenario
from harness.model import PostgresSettings
from harness.sandbox import api, load_components, status
from harness.sandbox.components import cleanup_paths
from harness.sandbox.examples import example_scenario
from harness.sandbox.lifecycle import Sandbox, down, up
from harness.sandbox.ports import is_free
from harness.sandbox.topology import experiment_scenario, plan
from tests.sandbox.helpers import eventually, processes_mentioning

A, B = "us-east-1", "eu-west-1"


def active_active(regions: int = 2):
    scenario = example_scenario(regions)
    return dataclasses.replace(scenario, postgres=PostgresSettings(topology="active-active"))


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, dict[str, Any]]]:
    directory = tmp_path_factory.mktemp("active-active")
    try:
        box = up(active_active(), directory, components={"proxy", "postgres"})
        configuration = {**box.endpoints, "harness_state_dir": str(tmp_path_factory.mktemp("state"))}
        yield box, configuration
    finally:
        down(directory)


def _sql(configuration: dict[str, Any], region: str, query: str, parameters: tuple = ()) -> list[tuple]:
    dsn = configuration["regions"][region]["postgres_dsn"]
    with psycopg.connect(dsn, connect_timeout=2, autocommit=True) as connection:
        cursor = connection.execute(query, parameters)
        return cursor.fetchall() if cursor.description else []


def _has_element(configuration: dict[str, Any], region: str, element: str) -> bool:
    return bool(_sql(configuration, region, "SELECT 1 FROM convergence_elements WHERE id = %s", (element,)))


def _register(configuration: dict[str, Any], region: str, key: str) -> tuple | None:
    rows = _sql(
        configuration, region, "SELECT value, origin FROM convergence_registers WHERE key = %s", (key,)
    )
    return rows[0] if rows else None


def test_every_region_writes_and_rows_flow_both_ways(estate) -> None:
    box, configuration = estate
    endpoints = box.endpoints
    assert endpoints["postgres_topology"] == "active-active"
    assert {s.name: s.state for s in status(box.directory)} == {
        "faultproxy": "running",
        f"postgres-{A}": "running",
        f"postgres-{B}": "running",
        "pglogical-keeper": "running",
    }
    # Each direction names its subscription and the proxy link its connection crosses.
    assert set(endpoints["replication"]) == {f"{A}->{B}", f"{B}->{A}"}
    for direction, entry in endpoints["replication"].items():
        provider, subscriber = direction.split("->")
        link = endpoints["links"][entry["link"]]
        assert (link["from"], link["to"], link["service"]) == (subscriber, provider, "postgres")
        statuses = replication.subscription_status(endpoints["regions"][subscriber]["postgres_dsn"])
        assert statuses[entry["subscription"]] == "replicating"
    for region in (A, B):
        (writable,) = _sql(configuration, region, "SELECT NOT pg_is_in_recovery()")[0]
        assert writable
        _sql(
            configuration,
            region,
            "INSERT INTO convergence_elements (id, origin) VALUES (%s, %s)",
            (f"flow-{region}", region),
        )
    assert eventually(lambda: _has_element(configuration, B, f"flow-{A}"), 10)
    assert eventually(lambda: _has_element(configuration, A, f"flow-{B}"), 10)
    # forward_origins '{}': a row is applied once per region and never echoed back as a conflict.
    assert _sql(
        configuration, A, "SELECT origin FROM convergence_elements WHERE id = %s", (f"flow-{B}",)
    ) == [(B,)]


def test_conflicting_updates_while_stopped_resolve_to_the_later_write_everywhere(estate) -> None:
    _, configuration = estate
    stopped = [replication.stop_replication(region, configuration=configuration) for region in (A, B)]
    for result in stopped:
        assert result["effect_proven"], result["evidence"]
        assert "absent from" in result["evidence"] and "disabled" in result["evidence"]
    state = Path(configuration["harness_state_dir"])
    assert {f.target for f in ledger.open_faults(state)} == {A, B}
    upsert = (
        "INSERT INTO convergence_registers (key, value, origin) VALUES ('k', %s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, origin = excluded.origin, "
        "written_at = clock_timestamp()"
    )
    _sql(configuration, A, upsert, ("first", A))
    time.sleep(0.05)  # commit timestamps strictly ordered
    _sql(configuration, B, upsert, ("later", B))
    assert _register(configuration, A, "k") == ("first", A)  # nothing crossed while stopped
    for region in (A, B):
        started = replication.start_replication(region, configuration=configuration)
        assert started["replicating"], started
    assert ledger.open_faults(state) == []
    eventually(lambda: _register(configuration, A, "k") == ("later", B), 10)
    assert _register(configuration, B, "k") == ("later", B)


def test_partition_through_the_proxy_stops_replication_and_heal_resumes_it(estate) -> None:
    _, configuration = estate
    cut = network.partition_regions(A, B, configuration=configuration)
    assert cut["effect_proven"], cut["evidence"]
    try:
        _sql(configuration, A, "INSERT INTO convergence_elements (id, origin) VALUES ('cut', %s)", (A,))
        time.sleep(1.0)
        assert not _has_element(configuration, B, "cut")
    finally:
        network.heal_regions(A, B, configuration=configuration)
    # pglogical relaunches the failed worker 5 s after the failure once the keeper wakes its manager.
    eventually(lambda: _has_element(configuration, B, "cut"), 20, 0.1)


def test_recover_undoes_a_stopped_intake(estate) -> None:
    _, configuration = estate
    result = replication.stop_replication(B, configuration=configuration)
    assert result["effect_proven"], result["evidence"]
    state = Path(configuration["harness_state_dir"])
    (undone,) = ledger.recover(state)
    assert undone.is_undone, undone.error
    assert ledger.open_faults(state) == []
    subscription = configuration["replication"][f"{A}->{B}"]["subscription"]
    statuses = replication.subscription_status(configuration["regions"][B]["postgres_dsn"])
    assert statuses[subscription] == "replicating"


def test_a_restarted_region_comes_back_writable_and_replicating(estate) -> None:
    """An instance fault on one region's server: restarted, it is a writer again (never turned into
    a standby of another region, as a superseded primary-standby primary would be)."""
    _, configuration = estate
    stopped = instances.stop_instance(f"postgres-{B}", configuration=configuration)
    assert stopped["effect_proven"], stopped["evidence"]
    _sql(configuration, A, "INSERT INTO convergence_elements (id, origin) VALUES ('while-down', %s)", (A,))
    started = instances.start_instance(f"postgres-{B}", configuration=configuration)
    assert "rejoined_as_standby_of" not in started
    eventually(
        lambda: _answers(lambda: _sql(configuration, B, "SELECT NOT pg_is_in_recovery()")) == [(True,)]
    )
    eventually(lambda: _answers(lambda: _has_element(configuration, B, "while-down")), 10)


def _answers(query: Callable[[], Any]) -> Any:
    """The query's result, or None while the server is still recovering from its crash."""
    try:
        return query()
    except psycopg.OperationalError:
        return None


def test_teardown_leaves_nothing(estate) -> None:
    box, _ = estate
    recorded = load_components(box.directory)
    data_roots = cleanup_paths(box.directory) or [box.directory / "pgdata"]
    routes = [int(link["listen"].rsplit(":", 1)[1]) for link in box.endpoints["links"].values()]
    stopped = box.down()
    assert set(stopped) == set(recorded) == set(box.endpoints["components"])
    assert [entry.name for entry in box.directory.iterdir()] == ["logs"]
    assert not any(_running(component.pid, component.started_at) for component in recorded.values())
    assert processes_mentioning(box.directory) == []
    for root in data_roots:
        assert not root.exists()
        assert processes_mentioning(root) == []
    assert all(is_free(port) for port in [*(c.port for c in recorded.values()), *routes])


def _running(pid: int, started_at: float) -> bool:
    try:
        return abs(psutil.Process(pid).create_time() - started_at) < 0.5
    except psutil.NoSuchProcess:
        return False


# ---------------------------------------------------------------- pure: plan, API, bad input


def test_plan_routes_every_region_pair_and_the_api_writes_locally() -> None:
    wanted = plan(active_active(3), {"proxy", "postgres", "api", "redis"})
    routes = {name for name in wanted.ports if "-postgres-" in name}
    assert len(routes) == 6  # every ordered pair of three regions
    assert not any(name.endswith("-postgres") for name in wanted.ports)  # no route to a primary
    for region in wanted.regions:
        arguments = api._arguments(wanted, region)
        own = arguments[arguments.index("--postgres-dsn") + 1]
        assert arguments[arguments.index("--postgres-primary-dsn") + 1] == own
        assert f":{wanted.ports[f'postgres-{region}']}/" in own


BASE = """\
name: aa
regions:
  - name: us-east-1
    primary: true
  - name: eu-west-1
targets:
  convergence:
    measure: failover_seconds
    at_most: 5min
"""


@pytest.mark.parametrize(
    ("postgres", "regions", "field", "words"),
    [
        ("{topology: active-active}", 1, "postgres.topology", "two or more regions"),
        ("{topology: active-active, failover: patroni}", 2, "postgres.failover", "patroni"),
        ("{topology: multi-master}", 2, "postgres.topology", "multi-master"),
    ],
    ids=["one-region", "patroni", "unknown-topology"],
)
def test_bad_topology_is_refused_naming_file_and_field(
    tmp_path: Path, postgres: str, regions: int, field: str, words: str
) -> None:
    text = BASE if regions == 2 else BASE.replace("  - name: eu-west-1\n", "")
    path = tmp_path / "scenario.yaml"
    path.write_text(f"{text}postgres: {postgres}\n")
    with pytest.raises(ConfigError) as raised:
        load_scenario(path)
    message = str(raised.value)
    assert str(path) in message and field in message and words in message
    assert "\n" not in message


def test_cli_exits_2_with_one_line_on_active_active_with_one_region(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    path = tmp_path / "scenario.yaml"
    path.write_text(BASE.replace("  - name: eu-west-1\n", "") + "postgres: {topology: active-active}\n")
    monkeypatch.setattr(sys, "argv", ["harness", "validate", str(path)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert str(path) in line and "postgres.topology" in line
    assert "Traceback" not in captured.err + captured.out


def test_valid_topologies_load(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(BASE)
    assert load_scenario(path).postgres.topology == "primary-standby"
    path.write_text(BASE + "postgres: {topology: active-active}\n")
    assert load_scenario(path).postgres.topology == "active-active"


def test_experiment_topology_request_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "experiment.yaml"
    path.write_text(
        "title: t\ndescription: d\nmethod: []\nextensions:\n  - name: harness\n    postgres_topology: ring\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_experiment(path)
    assert "extensions.0.postgres_topology" in str(raised.value)


def test_an_experiment_asking_for_active_active_gets_its_own_estate() -> None:
    from harness.suite import own_sandbox

    profile = load_scenario("email-triage")
    assert (profile.postgres.topology, profile.postgres.failover) == ("primary-standby", "patroni")
    experiment = load_experiment(Path(__file__).parents[2] / "experiments" / "active-active-partition.yaml")
    extension = next(e for e in experiment["extensions"] if e["name"] == "harness")
    chosen = experiment_scenario(profile, extension)
    assert (chosen.postgres.topology, chosen.postgres.failover) == ("active-active", "manual")
    assert own_sandbox(profile, experiment)
    assert experiment_scenario(profile, {}) is profile  # the failover experiments keep Patroni
    assert not own_sandbox(chosen, experiment)  # already active-active: the shared sandbox serves
    one_region = dataclasses.replace(profile, regions=profile.regions[:1])
    with pytest.raises(ConfigError, match=r"postgres\.topology"):
        experiment_scenario(one_region, extension)


def test_the_postgres_canary_writes_to_its_own_region_in_active_active() -> None:
    from harness.canary import targets_from_endpoints

    regions = {
        r: {"postgres_dsn": f"postgresql://harness@127.0.0.1:{port}/harness"}
        for r, port in ((A, 20001), (B, 20002))
    }
    links = {
        f"{B}/postgres": {
            "proxy": f"{B}-postgres-{A}",
            "from": B,
            "to": A,
            "service": "postgres",
            "listen": "127.0.0.1:20003",
        }
    }
    endpoints = {"regions": regions, "links": links, "postgres_topology": "active-active"}
    targets = {t.region: t.dsn for t in targets_from_endpoints(endpoints, ["postgres"])}
    assert targets == {A: regions[A]["postgres_dsn"], B: regions[B]["postgres_dsn"]}


def test_three_regions_replicate_each_write_once(tmp_path: Path) -> None:
    """A full mesh of six subscriptions: every write reaches both other regions directly, and never
    a second time through the third region (forward_origins '{}'), which pglogical would log as an
    INSERT conflict on a key that already exists."""
    scenario = dataclasses.replace(active_active(3), links=())  # no link latency: a quick start
    with up(scenario, tmp_path / "three", components={"proxy", "postgres"}) as box:
        configuration = dict(box.endpoints)
        regions = list(configuration["regions"])
        assert len(configuration["replication"]) == 6
        for region in regions:
            _sql(configuration, region, "INSERT INTO convergence_elements (id, origin) VALUES (%s, %s)",
                 (f"mesh-{region}", region))  # fmt: skip
        expected = [(f"mesh-{r}",) for r in sorted(regions)]
        query = "SELECT id FROM convergence_elements WHERE id LIKE 'mesh-%%' ORDER BY id"
        for region in regions:
            eventually(lambda region=region: _sql(configuration, region, query) == expected, 10)
        time.sleep(0.2)  # a looping change would arrive one hop later than the direct one
        logs = [(box.directory / "logs" / f"postgres-{r}.log").read_text() for r in regions]
        assert not [line for log in logs for line in log.splitlines() if "CONFLICT" in line]
