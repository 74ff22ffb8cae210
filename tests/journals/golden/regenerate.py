"""Regenerate the golden Chaos Toolkit journals by REALLY running `chaos run` on tiny experiments.

    .venv/bin/python tests/journals/golden/regenerate.py

Each experiment below uses the plain Python activities of golden_activities.py (no harness code),
except the two harness-fault ones, which apply a real harness fault (a partition on the project's
fault proxy, started here on loopback). Each is written to <name>.json, its journal to
<name>.journal.json and the exit code `chaos run` gave to <name>.chaos-exit. The journals are
stored so that most tests read them without running Chaos Toolkit again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHAOS = Path(sys.executable).with_name("chaos")


def _provider(func: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    provider: dict[str, Any] = {"type": "python", "module": "golden_activities", "func": func}
    if arguments:
        provider["arguments"] = arguments
    return provider


def action(name: str, func: str, **arguments: Any) -> dict[str, Any]:
    return {"type": "action", "name": name, "provider": _provider(func, arguments)}


def probe(name: str, func: str, **arguments: Any) -> dict[str, Any]:
    return {"type": "probe", "name": name, "provider": _provider(func, arguments)}


HEALTHY = {"title": "the system is healthy", "probes": [probe("healthy", "is_healthy") | {"tolerance": True}]}
REACHABLE = {
    "title": "the health endpoint answers",
    "probes": [probe("health-endpoint", "health_endpoint") | {"tolerance": True}],
}
FAULT = action("break-system", "break_system")
REPAIR = action("repair-system", "repair_system")
# A probe named like a measure (its number is the measure, in the measure's base unit) and a probe
# whose output maps measure names to numbers.
FAILOVER = probe("failover_seconds", "measured", value=1.5)
LAG = probe("replication-lag", "measured_mapping", replication_lag_seconds=0.25)

# name -> (experiment body, extra `chaos run` options, whether the system starts broken)
GOLDEN: dict[str, tuple[dict[str, Any], list[str], bool]] = {
    "completed": ({"steady-state-hypothesis": HEALTHY, "method": [FAULT, FAILOVER, LAG, REPAIR]}, [], False),
    "deviated": ({"steady-state-hypothesis": HEALTHY, "method": [FAULT, FAILOVER, LAG]}, [], False),
    "failed": ({"steady-state-hypothesis": REACHABLE, "method": [FAULT, FAILOVER, LAG]}, [], False),
    # A pause the configuration makes a word: chaoslib meets an error outside any activity and aborts.
    "aborted": (
        {
            "configuration": {"pause": "soon"},
            "steady-state-hypothesis": HEALTHY,
            "method": [FAULT, FAILOVER | {"pauses": {"after": "${pause}"}}, LAG],
        },
        [],
        False,
    ),
    "interrupted": (
        {"steady-state-hypothesis": HEALTHY, "method": [FAULT, action("ctrl-c", "interrupt_run"), FAILOVER]},
        [],
        False,
    ),
    "hypothesis-not-met-before": (
        {"steady-state-hypothesis": HEALTHY, "method": [FAULT, FAILOVER, LAG]},
        [],
        True,
    ),
    "action-failed": (
        {
            "steady-state-hypothesis": HEALTHY,
            "method": [action("inject-fault", "fail_action"), FAILOVER, LAG],
        },
        [],
        False,
    ),
    # The hypothesis also runs every 0.2 s during the method: it sees the broken system, the method
    # repairs it before the hypothesis after.
    "continuous-hypothesis": (
        {
            "steady-state-hypothesis": HEALTHY,
            "method": [FAULT | {"pauses": {"after": 0.7}}, FAILOVER, LAG, REPAIR],
        },
        ["--hypothesis-strategy", "continuously", "--hypothesis-frequency", "0.2"],
        False,
    ),
}


# With a real harness action (a partition on the project's fault proxy, in this process, between two
# loopback "regions"): the fault is journalled and its effect proven, so the journal can pass or
# fail. The probe named failover_seconds returns the outage the run "measured": within the golden
# scenario's 5 s target, or over it. CTK reports both runs completed and exits 0.
PARTITION = {
    "type": "action",
    "name": "partition-regions",
    "provider": {
        "type": "python",
        "module": "harness.actions.network",
        "func": "partition_regions",
        "arguments": {"a": "us-east-1", "b": "eu-west-1"},
    },
}
HEAL = PARTITION | {
    "name": "heal-regions",
    "provider": PARTITION["provider"] | {"func": "heal_regions"},
}
HARNESS_GOLDEN: dict[str, float] = {"harness-fault-met": 1.5, "harness-fault-missed": 9.0}


def experiment(name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": f"golden {name}",
        "description": f"Golden journal '{name}': plain Python providers, no harness code.",
        **body,
        "rollbacks": [REPAIR],
    }


@contextlib.contextmanager
def _partitionable_link() -> Iterator[dict[str, Any]]:
    """A fault proxy with one link to a TCP listener on loopback: the configuration the network
    actions read (faultproxy_url, links)."""
    from harness.faultproxy import FaultProxy

    upstream = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def accept() -> None:
        upstream.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                upstream.accept()[0].close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    proxy = FaultProxy().start()
    try:
        body = {
            "name": "golden-link",
            "listen": "127.0.0.1:0",
            "upstream": f"127.0.0.1:{upstream.getsockname()[1]}",
        }
        request = urllib.request.Request(
            f"{proxy.api_url}/proxies", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        urllib.request.urlopen(request, timeout=5).close()
        link = {"from": "us-east-1", "to": "eu-west-1", "proxy": "golden-link"}
        yield {"faultproxy_url": proxy.api_url, "links": {"us-east-1->eu-west-1": link}}
    finally:
        proxy.stop()
        stop.set()
        thread.join()
        upstream.close()


def _harness_experiment(name: str, failover: float, configuration: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": f"golden {name}",
        "description": f"Golden journal '{name}': a harness fault with a proven effect.",
        "configuration": configuration,
        "steady-state-hypothesis": HEALTHY,
        "method": [PARTITION, probe("failover_seconds", "measured", value=failover), LAG, HEAL],
        "rollbacks": [HEAL],
    }


def regenerate(name: str, into: Path = HERE) -> Path:
    """Run the golden experiment `name` with `chaos run`; returns its journal's path in `into`."""
    if name in HARNESS_GOLDEN:
        with _partitionable_link() as configuration:
            return _run(name, _harness_experiment(name, HARNESS_GOLDEN[name], configuration), [], False, into)
    body, options, broken = GOLDEN[name]
    return _run(name, experiment(name, body), options, broken, into)


def _run(name: str, content: dict[str, Any], options: list[str], broken: bool, into: Path) -> Path:
    written = into / f"{name}.json"
    written.write_text(json.dumps(content, indent=2) + "\n")
    journal = into / f"{name}.journal.json"
    with tempfile.TemporaryDirectory(prefix="golden-journal-") as work:
        if broken:
            (Path(work) / "system-broken").write_text("broken\n")
        env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        done = subprocess.run(
            [str(CHAOS), "--no-version-check", "--log-file", os.devnull, "run", "--no-verify-tls",
             "--journal-path", "journal.json", *options, str(written)],
            cwd=work, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if not (Path(work) / "journal.json").exists():
            raise SystemExit(
                f"{name}: chaos run wrote no journal (exit {done.returncode}):\n{done.stdout}{done.stderr}"
            )
        shutil.copyfile(Path(work) / "journal.json", journal)
    (into / f"{name}.chaos-exit").write_text(f"{done.returncode}\n")
    return journal


if __name__ == "__main__":
    for golden in sys.argv[1:] or [*GOLDEN, *HARNESS_GOLDEN]:
        path = regenerate(golden)
        data = json.loads(path.read_text())
        print(f"{golden}: status {data['status']}, deviated {data['deviated']}, chaos exit "
              f"{(HERE / f'{golden}.chaos-exit').read_text().strip()}")  # fmt: skip
