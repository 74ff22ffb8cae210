"""PostgreSQL 15 in the sandbox: a primary and a streaming standby per secondary region.

``initdb`` runs once per machine into a template (database ``harness``, user ``harness``,
trust authentication on 127.0.0.1, table ``items``), cached in the temporary directory;
each sandbox copies it for its primary and for every standby (same system identifier and
timeline: a standby replays the primary's WAL from the template's checkpoint on), each standby
with its own physical replication slot. Standbys stream through the fault proxy when
it runs.

Sandbox-only settings, unsafe anywhere else: ``fsync=off`` and ``full_page_writes=off``. They
lose data only when the *machine* crashes; a killed postgres process still recovers from its
WAL, so instance-failure experiments stay honest.

Replication is asynchronous (``synchronous_commit=off``) unless the scenario asks otherwise
under ``settings.sandbox_requirements.postgres_synchronous_commit: true``: then every server
runs ``synchronous_commit=on`` with ``synchronous_standby_names = 'ANY 1 (<every region>)'``, so
a commit is acknowledged only once a standby has its WAL, and a promoted standby keeps the rule.

The settings a failover changes (``primary_conninfo``, ``primary_slot_name``,
``synchronous_standby_names``) live in each data directory's ``postgresql.auto.conf``, not on
the command line, so ``ALTER SYSTEM`` can repoint a standby and a restarted old primary can
rejoin as a standby (`rejoin_as_standby`).

PostgreSQL refuses to run as root; when the harness is root, every PostgreSQL program runs
as the ``postgres`` user and the data directories live in a private directory under the
temporary directory (a root-only test directory cannot be entered by that user).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from harness.errors import ConfigError, EnvironmentProblem
from harness.model import Scenario
from harness.sandbox.components import HOST, Component, record_cleanup_path, spawn
from harness.sandbox.ports import ensure_free
from harness.sandbox.topology import Plan

BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"),)
USER = "harness"
DATABASE = "harness"
TEMPLATE_VERSION = "2"  # bump when the template's contents change
_SCHEMA = (
    "CREATE TABLE items (key text PRIMARY KEY, value text NOT NULL,"
    " written_at timestamptz NOT NULL DEFAULT now());"
)
SETTINGS = (
    "listen_addresses=127.0.0.1",
    "unix_socket_directories=",
    "fsync=off",
    "full_page_writes=off",
    "wal_level=replica",
    "max_wal_senders=10",
    "max_replication_slots=10",
    "wal_keep_size=64MB",
    "hot_standby=on",
    "hot_standby_feedback=on",
    "wal_receiver_status_interval=1s",
    "wal_retrieve_retry_interval=500ms",
    "shared_buffers=16MB",
    "max_connections=40",
    "log_min_messages=warning",
    "log_line_prefix=%m [%p] ",
)


AUTO_CONF = "postgresql.auto.conf"


def wants_synchronous_commit(scenario: Scenario) -> bool:
    """Whether the scenario asks for synchronous replication (settings.sandbox_requirements)."""
    requirements = (scenario.settings or {}).get("sandbox_requirements") or {}
    if not isinstance(requirements, dict):
        raise ConfigError(
            scenario.path or scenario.name, "settings.sandbox_requirements", "expected a mapping"
        )
    wanted = requirements.get("postgres_synchronous_commit", False)
    if not isinstance(wanted, bool):
        raise ConfigError(
            scenario.path or scenario.name,
            "settings.sandbox_requirements.postgres_synchronous_commit",
            f"expected true or false, got {wanted!r}",
        )
    return wanted


def commit_settings(synchronous: bool) -> tuple[str, ...]:
    """The command-line settings of every server: SETTINGS plus the commit mode."""
    return (*SETTINGS, f"synchronous_commit={'on' if synchronous else 'off'}")


def synchronous_standby_names(regions: tuple[str, ...]) -> str:
    """'ANY 1 ("r1", "r2", ...)': a commit waits for one standby, whichever region it is in."""
    return "ANY 1 (" + ", ".join(f'"{region}"' for region in regions) + ")"


def write_auto_conf(data: Path, user: str, settings: dict[str, str]) -> None:
    """Replace the data directory's postgresql.auto.conf (what ALTER SYSTEM writes) with `settings`."""
    lines = ["# written by the harness sandbox; ALTER SYSTEM may change it\n"]
    for key, value in settings.items():
        lines.append("{} = '{}'\n".format(key, value.replace("'", "''")))
    path = data / AUTO_CONF
    path.write_text("".join(lines))
    _hand_over(path, user)


def standby_conninfo(region: str, upstream_port: int) -> str:
    return f"host={HOST} port={upstream_port} user={USER} application_name={region}"


def rejoin_as_standby(
    component: Component, region: str, upstream_port: int, synchronous_names: str, slot: str = ""
) -> None:
    """Make a stopped server's data directory start as a standby of the server on `upstream_port`
    (used when an old primary comes back after another server was promoted), streaming through
    the replication `slot` on it when one is given (harness.sandbox.failback creates it first)."""
    data = Path(component.cwd)
    (data / "standby.signal").touch()
    _hand_over(data / "standby.signal", component.user)
    settings = {"primary_conninfo": standby_conninfo(region, upstream_port)}
    if slot:
        settings["primary_slot_name"] = slot
    if synchronous_names:
        settings["synchronous_standby_names"] = synchronous_names
    write_auto_conf(data, component.user, settings)


def clone_standby(component: Component, upstream_port: int) -> None:
    """Replace a stopped server's data directory with a base backup of the primary on
    `upstream_port` (a server whose WAL forked off the primary's history cannot follow it; used by
    harness.sandbox.failback). It still needs `rejoin_as_standby` before it starts."""
    data = Path(component.cwd)
    shutil.rmtree(data, ignore_errors=True)
    _run(
        [
            str(bin_dir() / "pg_basebackup"),
            "-D",
            str(data),
            "-d",
            dsn(upstream_port),
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        ],
        component.user,
        f"a base backup for {component.name}",
    )
    os.chmod(data, 0o700)


def bin_dir() -> Path:
    """Where the PostgreSQL 15 programs are; EnvironmentProblem naming the fix when absent."""
    for candidate in BIN_DIRS:
        if (candidate / "postgres").exists():
            return candidate
    searched = ", ".join(str(d) for d in BIN_DIRS)
    raise EnvironmentProblem(
        f"PostgreSQL 15 not found (searched {searched}): "
        "`make demo` or scripts/install-system-packages installs it"
    )


def run_as() -> str:
    """The OS user PostgreSQL programs run as: the harness's own, or `postgres` when the harness is root."""
    if os.geteuid() != 0:
        return ""
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise EnvironmentProblem(
            "running as root, and PostgreSQL refuses root: create a `postgres` user "
            "(the postgresql-15 package does) or run the harness as another user"
        ) from None
    return "postgres"


def _hand_over(path: Path, user: str) -> None:
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _run(command: list[str], user: str, what: str, stdin: str | None = None) -> None:
    result = subprocess.run(
        command, input=stdin, capture_output=True, text=True, user=user or None, timeout=120, check=False
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise EnvironmentProblem(f"{what} failed ({' | '.join(detail)})")


def _setting(name: str) -> str:
    return next(setting for setting in SETTINGS if setting.startswith(f"{name}="))


def _cache_dir() -> Path:
    cache = Path(tempfile.gettempdir()) / f"harness-sandbox-cache-{os.geteuid()}"
    cache.mkdir(mode=0o755, exist_ok=True)
    return cache


def template(user: str) -> Path:
    """The initdb'd template cluster, built on first use (about 2 s) and shared by every sandbox."""
    final = _cache_dir() / f"pg15-template-v{TEMPLATE_VERSION}"
    if (final / "PG_VERSION").exists():
        return final
    building = Path(tempfile.mkdtemp(prefix="pg15-template-", dir=_cache_dir()))
    os.chmod(building, 0o755)
    data = building / "data"
    data.mkdir(mode=0o700)
    _hand_over(data, user)
    binaries = bin_dir()
    _run(
        [
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ],
        user,
        "initdb of the PostgreSQL template",
    )
    single = [
        str(binaries / "postgres"),
        "--single",
        "-D",
        str(data),
        "-c",
        "fsync=off",
        "-c",
        "unix_socket_directories=",
        # pg_control records the settings of the last run, and a standby refuses to start below
        # them: the template's must not exceed the servers' (SETTINGS), as standbys copy it.
        "-c",
        _setting("max_connections"),
    ]
    _run([*single, "postgres"], user, "creating the harness database", f"CREATE DATABASE {DATABASE};\n")
    _run([*single, DATABASE], user, "creating the items table", _SCHEMA + "\n")
    try:
        os.rename(data, final)
    except OSError:
        if not (final / "PG_VERSION").exists():
            raise
    shutil.rmtree(building, ignore_errors=True)
    return final


# Data directories go to memory when there is room: copying the template and taking base
# backups onto a disk costs about a second each on a slow virtual disk, ten times what it costs
# in memory, and nothing in a sandbox outlives `down`.
_MEMORY_DIR = Path("/dev/shm")
_MEMORY_NEEDED_BYTES = 1 << 30


def scratch_dir() -> Path | None:
    """A memory-backed directory with room for a sandbox's data (≥ 1 GiB free), or None."""
    try:
        usable = _MEMORY_DIR.is_dir() and os.access(_MEMORY_DIR, os.W_OK | os.X_OK)
        return _MEMORY_DIR if usable and shutil.disk_usage(_MEMORY_DIR).free >= _MEMORY_NEEDED_BYTES else None
    except OSError:
        return None


def data_root(directory: Path, user: str) -> Path:
    """Where this sandbox keeps its data directories (recorded for `down` when outside it)."""
    memory = scratch_dir()
    if not user and memory is None:
        root = directory / "pgdata"
        root.mkdir(exist_ok=True)
        return root
    root = Path(tempfile.mkdtemp(prefix="harness-pgdata-", dir=memory))
    record_cleanup_path(directory, root)
    _hand_over(root, user)
    return root


def slot_name(region: str) -> str:
    return "standby_" + region.replace("-", "_")


def _command(data: Path, port: int, synchronous: bool) -> tuple[str, ...]:
    settings = (*commit_settings(synchronous), f"port={port}")
    return (str(bin_dir() / "postgres"), "-D", str(data), *[part for s in settings for part in ("-c", s)])


def dsn(port: int) -> str:
    return f"postgresql://{USER}@{HOST}:{port}/{DATABASE}"


def start_primary(directory: Path, plan: Plan, root: Path, user: str, synchronous: bool = False) -> Component:
    """Copy the template into the primary's data directory and start it."""
    name = f"postgres-{plan.primary}"
    data = root / name
    _copy_template(data, user)
    write_auto_conf(data, user, _synchronous(plan, synchronous))
    port = plan.ports[name]
    ensure_free(port, name)
    return spawn(
        directory,
        name=name,
        kind="postgres",
        region=plan.primary,
        role="primary",
        port=port,
        command=_command(data, port, synchronous),
        cwd=data,
        user=user,
    )


def _copy_template(data: Path, user: str) -> None:
    shutil.copytree(template(user), data, symlinks=True)
    if user:
        entry = pwd.getpwnam(user)
        for path in (data, *data.rglob("*")):
            os.lchown(path, entry.pw_uid, entry.pw_gid)


def wait_until_ready(component: Component, timeout_seconds: float = 20.0, *, standby: bool = False) -> None:
    """Return once the server answers queries (and, for a standby, streams from the primary)."""
    deadline = time.monotonic() + timeout_seconds
    last_error = ""
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(dsn(component.port), connect_timeout=1, autocommit=True) as connection:
                if not standby:
                    return
                row = connection.execute("SELECT status FROM pg_stat_wal_receiver").fetchone()
                if row and row[0] == "streaming":
                    return
                last_error = f"wal receiver: {row[0] if row else 'not started'}"
        except psycopg.OperationalError as error:
            last_error = str(error).strip().splitlines()[0] if str(error).strip() else "no answer"
        time.sleep(0.05)
    raise EnvironmentProblem(
        f"{component.name} not ready within {timeout_seconds:g} s ({last_error}); see {component.log}"
    )


def create_slots(primary: Component, regions: tuple[str, ...]) -> None:
    """A physical replication slot on the primary for each standby region."""
    with psycopg.connect(dsn(primary.port), connect_timeout=2, autocommit=True) as connection:
        for region in regions:
            connection.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot_name(region),))


def _synchronous(plan: Plan, synchronous: bool) -> dict[str, str]:
    return {"synchronous_standby_names": synchronous_standby_names(plan.regions)} if synchronous else {}


def start_standby(
    directory: Path,
    plan: Plan,
    root: Path,
    user: str,
    region: str,
    primary: Component,
    upstream_port: int,
    synchronous: bool = False,
) -> Component:
    """Start `region`'s standby streaming from `upstream_port` (proxy or primary).

    Its data directory is a copy of the template, not a base backup of the primary: the primary
    started from the same files (same system identifier, same timeline) and has changed them only
    by WAL written since, which its slot for `region` (created first) keeps until the standby has
    streamed it. A copy in memory takes a tenth of a second; pg_basebackup took a checkpoint on
    the primary and half a second or more per standby.
    """
    name = f"postgres-{region}"
    data = root / name
    _copy_template(data, user)
    (data / "standby.signal").touch()
    _hand_over(data / "standby.signal", user)
    write_auto_conf(
        data,
        user,
        {
            "primary_conninfo": standby_conninfo(region, upstream_port),
            "primary_slot_name": slot_name(region),
            **_synchronous(plan, synchronous),
        },
    )
    port = plan.ports[name]
    ensure_free(port, name)
    return spawn(
        directory,
        name=name,
        kind="postgres",
        region=region,
        role="standby",
        port=port,
        command=_command(data, port, synchronous),
        cwd=data,
        user=user,
    )
