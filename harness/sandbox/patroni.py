"""PostgreSQL under Patroni + etcd, for scenarios with ``postgres.failover: patroni``.

One etcd member (etcd3 API) holds the leader key; a Patroni per region runs that region's
PostgreSQL. The primary region's Patroni bootstraps by copying the PostgreSQL template
(see harness.sandbox.postgres); the others, started as soon as it holds the initialize key,
copy the template too while the sandbox starts (same system identifier and timeline), and take
a pg_basebackup of the leader when Patroni has to clone one later. ``loop_wait`` is
1 s and ``ttl`` is Patroni's minimum, 20 s: a crashed PostgreSQL is seen within a loop, a
dead Patroni only when its leader key expires.

Patroni connects replicas to the leader's own address, so in this mode PostgreSQL
replication does not cross the fault proxy (the APIs' primary connections still do).
When the harness runs as root, Patroni runs as the ``postgres`` user with the one
capability it needs to read the harness's Python (CAP_DAC_READ_SEARCH).
"""

from __future__ import annotations

import base64
import json
import shlex
import shutil
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from harness.errors import EnvironmentProblem
from harness.sandbox import postgres
from harness.sandbox.components import HOST, Component, is_alive, spawn
from harness.sandbox.ports import ensure_free
from harness.sandbox.topology import Plan

ETCD_BINARY = "etcd"
SCOPE = "harness"
TTL_SECONDS = 20
LOOP_WAIT_SECONDS = 1


def start_etcd(directory: Path, plan: Plan) -> Component:
    port, peer_port = plan.ports["etcd"], plan.ports["etcd-peer"]
    ensure_free(port, "etcd")
    ensure_free(peer_port, "etcd peer")
    peer = f"http://{HOST}:{peer_port}"
    client = f"http://{HOST}:{port}"
    return spawn(
        directory,
        name="etcd",
        kind="etcd",
        region=plan.primary,
        role="",
        port=port,
        command=(
            ETCD_BINARY, "--name", "etcd", "--data-dir", str(directory / "etcd"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"etcd={peer}", "--log-level", "warn",
        ),
    )  # fmt: skip


CLONE_MARKER = "clone-from-template"  # in the data root while `up` runs: replicas copy the template


def allow_template_clones(root: Path, user: str, allowed: bool) -> None:
    """Let replicas be made by copying the template (while the sandbox starts), or not."""
    marker = root / CLONE_MARKER
    if not allowed:
        marker.unlink(missing_ok=True)
        return
    marker.touch()
    if user:
        shutil.chown(marker, user)


def _config(plan: Plan, region: str, data: Path, template: Path, synchronous: bool = False) -> dict:
    pg_port = plan.ports[f"postgres-{region}"]
    rest_port = plan.ports[f"patroni-{region}"]
    source = shlex.quote(str(template))
    copy = f'd="${{2#--datadir=}}"; mkdir -p "$d" && cp -a {source}/. "$d"/ && chmod 700 "$d"'
    # A replica's first copy: the template too (same system identifier and timeline as the
    # leader, which keeps the WAL since), while the sandbox starts; a later clone (the marker
    # is gone once `up` returns) takes a base backup of the leader, the next method.
    marker = shlex.quote(str(data.parent / CLONE_MARKER))
    clone = (
        'for a; do case "$a" in --datadir=*) d="${a#--datadir=}";; esac; done; '
        f'test -e {marker} && mkdir -p "$d" && cp -a {source}/. "$d"/ && chmod 700 "$d"'
    )
    parameters = dict(
        setting.split("=", 1)
        for setting in postgres.commit_settings(synchronous)
        if not setting.startswith("port=")
    )
    return {
        "scope": SCOPE,
        "name": region,
        "restapi": {"listen": f"{HOST}:{rest_port}", "connect_address": f"{HOST}:{rest_port}"},
        "etcd3": {"hosts": [f"{HOST}:{plan.ports['etcd']}"], "protocol": "http"},
        "bootstrap": {
            "dcs": {
                "ttl": TTL_SECONDS,
                "loop_wait": LOOP_WAIT_SECONDS,
                "retry_timeout": 5,
                "maximum_lag_on_failover": 16 * 1024 * 1024,
                # Patroni sets synchronous_standby_names itself, and promotes only a synchronous standby.
                "synchronous_mode": synchronous,
                "postgresql": {"use_slots": True, "parameters": parameters},
            },
            "method": "copy_template",
            "copy_template": {"command": f"sh -c {shlex.quote(copy)} copy", "no_params": False},
        },
        "postgresql": {
            "listen": f"{HOST}:{pg_port}",
            "connect_address": f"{HOST}:{pg_port}",
            "data_dir": str(data),
            "pgpass": str(data.parent / f"pgpass-{region}"),
            "bin_dir": str(postgres.bin_dir()),
            "authentication": {
                "superuser": {"username": postgres.USER},
                "replication": {"username": postgres.USER},
            },
            "pg_hba": [f"host all all {HOST}/32 trust", f"host replication all {HOST}/32 trust"],
            "parameters": {"unix_socket_directories": ""},
            "create_replica_methods": ["copy_template", "basebackup"],
            "copy_template": {"command": f"sh -c {shlex.quote(clone)} clone"},
            "basebackup": [{"checkpoint": "fast"}],
        },
    }


def start(
    directory: Path, plan: Plan, region: str, root: Path, user: str, synchronous: bool = False
) -> Component:
    """Start the Patroni of `region` (it starts or clones that region's PostgreSQL); `synchronous`:
    Patroni's synchronous_mode with synchronous_commit=on."""
    name = f"patroni-{region}"
    config = directory / f"{name}.yml"
    data = root / f"postgres-{region}"
    config.write_text(json.dumps(_config(plan, region, data, postgres.template(user), synchronous), indent=2))
    port = plan.ports[name]
    ensure_free(port, name)
    ensure_free(plan.ports[f"postgres-{region}"], f"postgres-{region}")
    command: tuple[str, ...] = (sys.executable, "-m", "patroni", str(config))
    if user:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise EnvironmentProblem("setpriv not found (util-linux): needed to run Patroni as postgres")
        caps = ("--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search")
        command = (setpriv, f"--reuid={user}", f"--regid={user}", "--init-groups", *caps, *command)
        shutil.chown(config, user)
    return spawn(
        directory,
        name=name,
        kind="patroni",
        region=region,
        role="primary" if region == plan.primary else "replica",
        port=port,
        command=command,
        cwd=root,
    )


def wait_until_role(component: Component, role: str, timeout_seconds: float = 30.0) -> None:
    """Return once Patroni's REST API says its PostgreSQL runs as `role` ("primary" or "replica")."""
    deadline = time.monotonic() + timeout_seconds
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{component.port}/{role}", timeout=1) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}"
        except (urllib.error.URLError, OSError) as error:
            last = str(error)
        time.sleep(0.02)
    raise EnvironmentProblem(
        f"{component.name} not {role} within {timeout_seconds:g} s ({last}); see {component.log}"
    )


def wait_until_initializing(etcd: Component, leader: Component, timeout_seconds: float = 30.0) -> None:
    """Return once `leader` holds the cluster's initialize key in etcd (it is bootstrapping).

    The other nodes may start from then on: the key is taken, so none of them can race the
    primary region's node to bootstrap, and they are up and waiting when its leader key appears
    (etcd wakes them) instead of starting only after it.
    """
    key = base64.b64encode(f"/service/{SCOPE}/initialize".encode()).decode()
    body = json.dumps({"key": key}).encode()
    deadline = time.monotonic() + timeout_seconds
    last = ""
    while time.monotonic() < deadline:
        request = urllib.request.Request(
            f"http://{HOST}:{etcd.port}/v3/kv/range", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                if json.loads(response.read() or b"{}").get("kvs"):
                    return
                last = "no initialize key yet"
        except (urllib.error.URLError, OSError, ValueError) as error:
            last = str(error)
        if not is_alive(leader):
            raise EnvironmentProblem(f"{leader.name} exited during start; see {leader.log}")
        time.sleep(0.02)
    raise EnvironmentProblem(
        f"{leader.name} did not start bootstrapping within {timeout_seconds:g} s ({last}); see {leader.log}"
    )
