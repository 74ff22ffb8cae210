"""The signal controller on its own (harness.interrupts): no sandbox, real signals to this process."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from harness import interrupts, ledger
from harness.interrupts import CONTROLLER, ActivityCancelled, Interrupted


def _open_fault(state: Path, run_id: str, marker: Path, target: str) -> None:
    """A fault whose undo creates `marker` (os.mkdir), as an action would journal it."""
    ledger.record_applied(
        state,
        "harness.actions.network.partition_regions",
        target,
        ledger.Undo("os", "mkdir", {"path": str(marker)}),
        run_id,
    )


def _wait_for_signal() -> None:
    for _ in range(200):  # the handler runs between bytecodes of the main thread
        time.sleep(0.005)


def test_the_first_sigterm_undoes_newest_first_then_raises_and_a_second_is_ignored(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    _open_fault(state, "run-1", tmp_path / "first", "a<->b")
    _open_fault(state, "run-1", tmp_path / "second", "c<->d")
    _open_fault(state, "someone-else", tmp_path / "other", "e<->f")
    previous = signal.getsignal(signal.SIGTERM)
    with CONTROLLER.installed():
        CONTROLLER.register_run(state, "run-1")
        with pytest.raises(Interrupted) as raised:
            os.kill(os.getpid(), signal.SIGTERM)
            _wait_for_signal()
        assert raised.value.signal_name == "SIGTERM"
        assert (tmp_path / "first").is_dir() and (tmp_path / "second").is_dir()
        assert not (tmp_path / "other").exists()  # another run's fault is not ours to undo
        undone = [e["fault_id"] for e in ledger.read_entries(state) if e["event"] == "undone"]
        applied = [e["fault_id"] for e in ledger.read_entries(state) if e["event"] == "applied"]
        assert undone == [applied[1], applied[0]]  # last fault first
        assert interrupts.cancelled()
        os.kill(os.getpid(), signal.SIGINT)  # ignored: no exception
        _wait_for_signal()
        assert CONTROLLER.exit_code() == 143
        assert CONTROLLER.summary() == (
            "interrupted by SIGTERM: undid partition regions c<->d, undid partition regions a<->b"
        )
    assert "SIGINT ignored: rolling back after SIGTERM" in capfd.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is previous  # handed back when the command ends
    assert not interrupts.cancelled()  # and a library caller in the same process goes on


def test_a_deferred_block_finishes_and_the_checkpoint_raises_afterwards(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _open_fault(state, "run-2", tmp_path / "undone", "a<->b")
    with CONTROLLER.installed():
        CONTROLLER.register_run(state, "run-2")
        finished = False
        with CONTROLLER.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            _wait_for_signal()
            assert (tmp_path / "undone").is_dir()  # undone at once all the same
            finished = True
        assert finished
        with pytest.raises(Interrupted):
            interrupts.checkpoint()
        assert CONTROLLER.exit_code() == 130


def test_a_background_activity_ignoring_the_cancellation_is_stopped(tmp_path: Path) -> None:
    outcome: list[str] = []

    def stubborn() -> None:
        CONTROLLER.note_background(threading.current_thread(), running=True)
        try:
            for _ in range(600):  # 30 s unless stopped
                time.sleep(0.05)
            outcome.append("ran out")
        except ActivityCancelled:
            outcome.append("cancelled")
        finally:
            CONTROLLER.note_background(threading.current_thread(), running=False)

    with CONTROLLER.installed():
        thread = threading.Thread(target=stubborn, daemon=True)
        thread.start()
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGTERM)
            _wait_for_signal()
        thread.join(timeout=5)
    assert outcome == ["cancelled"]


def test_nothing_to_undo_is_said_so(tmp_path: Path) -> None:
    with CONTROLLER.installed():
        CONTROLLER.register_run(tmp_path / "state", "run-3")
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGINT)
            _wait_for_signal()
        assert CONTROLLER.summary() == "interrupted by SIGINT: nothing was left to undo"
