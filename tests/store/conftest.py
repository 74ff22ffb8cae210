"""Fixtures for the store, lock and history tests: a real PostgreSQL 15 and a CLI runner."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_postgres(*command: str | Path) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres system user then."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return [*prefix, *map(str, command)]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL 15 on a free 127.0.0.1 port, data in a temporary folder; its base URL."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL 15 not found at {PG_BIN} (apt-get install postgresql-15)")
    root = Path(tempfile.mkdtemp(prefix="harness-store-pg-"))
    data, log = root / "data", root / "server.log"
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                PG_BIN / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        for _attempt in range(3):  # another process may take the free port first
            port = _free_port()
            options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
            started = subprocess.run(
                _as_postgres(
                    PG_BIN / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "-t", "60", "start"
                ),
                capture_output=True,
                timeout=90,
            )
            if started.returncode == 0:
                break
        else:
            pytest.fail(f"PostgreSQL did not start: {log.read_text() if log.exists() else started.stderr}")
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_postgres(PG_BIN / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped afterwards."""
    name = f"history_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{postgres_server}/{name}"
    finally:
        with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend in turn: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite3'}"
    return request.getfixturevalue("postgres_url")
