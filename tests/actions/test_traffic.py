"""Reading HAProxy's runtime API answers, and the traffic actions' refusals that need no balancer.
The actions against a real balancer are tested in tests/sandbox/test_balancer.py (one sandbox)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import ledger
from harness.actions import traffic
from harness.errors import ConfigError
from harness.sandbox.haproxy_admin import parse_servers_state

# HAProxy 2.6's answer to `show servers state` after `set weight .../eu-west-1 50`, a failed
# check on eu-west-1 and `set server .../us-east-1 state drain`.
SHOW_SERVERS_STATE = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight \
srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state \
srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port \
srv_check_addr srv_agent_addr srv_agent_port
3 client-eu-west-1 1 eu-west-1 127.0.0.1 0 0 50 100 1 8 2 0 6 0 0 0 - 29912 - 0 0 - - 0
3 client-eu-west-1 2 us-east-1 127.0.0.1 2 8 100 100 0 1 0 2 0 0 0 0 - 29913 - 0 0 - - 0

"""


def test_servers_state_reads_names_states_and_weights() -> None:
    down, drained = parse_servers_state(SHOW_SERVERS_STATE)
    assert (down.name, down.state, down.up, down.weight, down.initial_weight) == (
        "client-eu-west-1/eu-west-1",
        "down",
        False,
        50,
        100,
    )
    assert down.check_health == 0 and down.checks_failing(rise=1, fall=2)
    assert drained.check_health == 2 and not drained.checks_failing(rise=1, fall=2)
    assert (drained.name, drained.state, drained.up, drained.drained) == (
        "client-eu-west-1/us-east-1",
        "drain",
        True,
        True,
    )


def test_an_answer_without_the_header_reads_as_no_servers() -> None:
    assert parse_servers_state("Unknown command.\n") == []
    assert parse_servers_state("") == []


def test_actions_need_the_balancer_s_admin_socket(tmp_path: Path) -> None:
    configuration = {"harness_state_dir": str(tmp_path), "traffic": {"url": "http://127.0.0.1:1"}}
    for call in (
        lambda: traffic.drain_region("eu-west-1", configuration=configuration),
        lambda: traffic.set_region_weight("eu-west-1", 10, configuration=configuration),
    ):
        with pytest.raises(ConfigError, match=r"traffic\.admin_socket: expected the balancer's HAProxy"):
            call()
    assert ledger.open_faults(tmp_path) == []  # refused before anything was journalled


@pytest.mark.parametrize("weight", [-1, 257, 1.5, True, "10"])
def test_a_weight_outside_0_to_256_is_refused(weight: object, tmp_path: Path) -> None:
    configuration = {"harness_state_dir": str(tmp_path), "traffic": {"admin_socket": str(tmp_path / "x")}}
    with pytest.raises(ConfigError, match="weight: expected a whole number from 0 to 256"):
        traffic.set_region_weight("eu-west-1", weight, configuration=configuration)  # type: ignore[arg-type]


def test_undo_on_a_balancer_that_is_gone_closes_the_fault(tmp_path: Path) -> None:
    configuration = {"harness_state_dir": str(tmp_path)}
    undo = ledger.Undo(
        "harness.actions.traffic",
        "restore_region",
        {"region": "eu-west-1", "admin_socket": str(tmp_path / "gone.sock"), "servers": ["b/eu-west-1"]},
    )
    ledger.record_applied(tmp_path, "harness.actions.traffic.drain_region", "eu-west-1", undo)
    results = ledger.recover(ledger.state_dir(configuration))
    assert [r.is_undone for r in results] == [True]
    assert ledger.open_faults(tmp_path) == []
