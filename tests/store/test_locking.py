"""One run per target: a second run refuses, naming the holder; the lock dies with its holder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.errors import TargetBusy
from harness.locking import lock_path, target_lock

PROCESSES = Path(__file__).with_name("store_processes.py")


@contextmanager
def holder_process(state_dir: Path, target: str, store_url: str | None = None) -> Iterator[subprocess.Popen]:
    """A child process holding the target's lock until killed."""
    command = [sys.executable, str(PROCESSES), "lock", str(state_dir), target]
    child = subprocess.Popen(
        [*command, *([store_url] if store_url else [])], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "locked", "the holder did not get the lock"
        yield child
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stdout.close()


def acquire_within(state_dir: Path, target: str, store_url: str | None, timeout_seconds: float) -> bool:
    """Whether the lock can be taken within the time (the server notices a dead client asynchronously)."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            with target_lock(state_dir, target, store_url=store_url):
                return True
        except TargetBusy:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)


@pytest.fixture(params=["file", "postgresql"])
def lock_store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The history the lock follows: none (a file lock) or PostgreSQL (an advisory lock)."""
    monkeypatch.setenv("HARNESS_STORE", f"sqlite:///{tmp_path / 'history.sqlite3'}")
    return request.getfixturevalue("postgres_url") if request.param == "postgresql" else None


def test_a_second_run_refuses_naming_the_holder(tmp_path: Path, lock_store: str | None) -> None:
    with holder_process(tmp_path, "eu-west-1/redis", lock_store) as holder:
        with (
            pytest.raises(TargetBusy) as refused,
            target_lock(tmp_path, "eu-west-1/redis", store_url=lock_store),
        ):
            pytest.fail("two runs held one target")
        message = str(refused.value)
        assert message.startswith(
            "target 'eu-west-1/redis' is busy: another harness run holds its lock (pid "
        )
        assert f"pid {holder.pid} on " in message and ", since 20" in message
        assert message.endswith("wait for it to finish")
        # Other targets are free meanwhile.
        with target_lock(tmp_path, "us-east-1/redis", store_url=lock_store) as me:
            assert me.pid == os.getpid()


def test_the_lock_dies_with_a_killed_holder(tmp_path: Path, lock_store: str | None) -> None:
    with holder_process(tmp_path, "redis-primary", lock_store) as holder:
        assert not acquire_within(tmp_path, "redis-primary", lock_store, timeout_seconds=0)
        holder.kill()  # SIGKILL: the holder never gets to release anything
        holder.wait(timeout=30)
        assert acquire_within(tmp_path, "redis-primary", lock_store, timeout_seconds=30)


def test_the_lock_is_released_after_the_block_even_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), target_lock(tmp_path, "t", store_url="sqlite:///unused.db"):
        raise RuntimeError("run failed")
    with target_lock(tmp_path, "t", store_url="sqlite:///unused.db"):
        assert lock_path(tmp_path, "t").exists()
    assert lock_path(tmp_path, "t").read_text() == ""  # no stale holder named after release


def test_target_names_map_to_distinct_files(tmp_path: Path) -> None:
    names = ["a/b", "a_b", "a%2Fb", "..", "région"]
    paths = {lock_path(tmp_path, name) for name in names}
    assert len(paths) == len(names)
    assert all(path.parent == tmp_path / "locks" for path in paths)
