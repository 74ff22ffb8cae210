"""The first SIGINT or SIGTERM undoes this process's faults at once, whatever the run is doing.

Signals belong to the process, so there is one controller per process (`CONTROLLER`). While it
is installed (the CLI installs it before anything starts; `runner.run_experiment` installs it
for its own duration when used as a library):

* The first SIGINT or SIGTERM undoes, inside the handler, every open fault of the runs this
  process registered (ledger order, newest first), before anything else happens; then sets
  `cancelled`, which background activities, canaries and a sandbox being started watch; then
  unwinds the main thread:

  - inside chaoslib it raises KeyboardInterrupt, which chaoslib catches to play its rollbacks
    (chaoslib's own SIGTERM exception, an Exception, is swallowed by the activity in progress);
    the rollbacks then skip their pauses. During chaoslib's rollbacks it raises KeyboardInterrupt
    too, which leaves chaoslib (the runner keeps the journal); a rollback activity in progress
    is not undone again from the handler but completes first;
  - inside a `deferred()` block (storing a record, stopping a sandbox) it raises nothing;
    `checkpoint()` raises afterwards;
  - anywhere else it raises `Interrupted`, a BaseException that is not a KeyboardInterrupt, so
    neither click nor typer turn it into a silent exit 130.

* Every later SIGINT or SIGTERM is ignored with a message: a half-undone fault is worse than a
  slow exit.
* SIGUSR1 is the guardrail's abort: the same undo at once, then SystemExit(20) inside chaoslib
  (its code for "leave, with rollbacks").

Background activities that do not watch `cancelled` get `ActivityCancelled` raised into their
thread (chaoslib's own trick for SIGUSR2), so chaoslib's wait for its background pool never holds
the run for a probe's full timeout.

The CLI prints `summary()` (one line: what was undone) and exits `exit_code()` (130 / 143).
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path

__all__ = [
    "CONTROLLER",
    "ActivityCancelled",
    "Interrupted",
    "cancelled",
    "checkpoint",
    "deferred",
    "sleep",
]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Grace a background activity gets to notice `cancelled` before ActivityCancelled is raised into it.
_COOPERATIVE_GRACE_SECONDS = 0.3
_REAP_INTERVAL_SECONDS = 0.2
_REAP_ATTEMPTS = 50


class Interrupted(BaseException):
    """The first SIGINT or SIGTERM, outside chaoslib; faults were undone before it was raised."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class ActivityCancelled(Exception):
    """Raised into a background activity still running after an interrupt or a guardrail abort."""


def _say(message: str) -> None:
    # os.write, not print: the handler may interrupt the main thread inside a write to stderr,
    # and a buffered writer refuses re-entrant calls.
    with suppress(OSError):
        os.write(2, f"harness: {message}\n".encode())


def _describe(action: str, target: str) -> str:
    """`harness.actions.network.partition_regions` on `a<->b` reads "partition regions a<->b"."""
    return f"{action.rpartition('.')[2].replace('_', ' ')} {target}".strip()


class Controller:
    """Signal handling for the whole process; see the module docstring."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.signal_name = ""
        self.signal_monotonic: float | None = None
        self.guardrail_reason = ""
        self._lock = threading.RLock()  # RLock: the handler may run while the main thread holds it
        self._runs: dict[str, Path] = {}
        self._background: set[threading.Thread] = set()
        self._stopped: list[str] = []
        self._undo_errors: list[str] = []
        self._depth = 0
        self._previous: dict[int, object] = {}
        self._mode = "outside"  # outside | chaoslib | rollbacks
        self._in_activity = False
        self._deferred = 0
        self._pending: Callable[[], BaseException] | None = None
        self._reaper: threading.Thread | None = None

    # ------------------------------------------------------------ installation

    @contextmanager
    def installed(self) -> Iterator[Controller]:
        """Handle SIGINT, SIGTERM and SIGUSR1 for the block (nested blocks share the outermost);
        outside the main thread signals cannot be handled and this does nothing."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        if self._depth == 0:
            self._reset()
            for number in (*_SIGNALS, signal.SIGUSR1):
                self._previous[number] = signal.signal(number, self._handle)
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1
            if self._depth == 0:
                for number, handler in self._previous.items():
                    signal.signal(number, handler)  # type: ignore[arg-type]
                self._previous.clear()
                self._reset()  # nothing is cancelled once the command is over (a library caller goes on)

    @property
    def is_installed(self) -> bool:
        return self._depth > 0

    def _reset(self) -> None:
        self.cancelled.clear()
        self.signal_name, self.signal_monotonic, self.guardrail_reason = "", None, ""
        self._runs.clear()
        self._background.clear()
        self._stopped.clear()
        self._undo_errors.clear()
        self._mode, self._deferred, self._pending, self._in_activity = "outside", 0, None, False

    # ------------------------------------------------------------ what the run tells us

    def register_run(self, state_dir: Path, run_id: str) -> None:
        """Faults this run applies are undone on the first signal; a new run starts uncancelled."""
        with self._lock:
            self._runs[run_id] = Path(state_dir)
            if not self.signal_name:
                self.cancelled.clear()
                self.guardrail_reason = ""

    def note_stopped(self, what: str) -> None:
        """Something stopped because of the interrupt (e.g. "the sandbox"), for the summary."""
        if self.signal_name:
            with self._lock:
                self._stopped.append(what)

    def note_background(self, thread: threading.Thread, running: bool) -> None:
        with self._lock:
            if running:
                self._background.add(thread)
            else:
                self._background.discard(thread)

    def enter_chaoslib(self) -> None:
        """chaoslib is running (its `running` event): signals raise what chaoslib catches.

        chaoslib installed its own SIGTERM/SIGUSR1 handlers before that event; ours replace them
        and chaoslib restores ours when it returns."""
        if self._depth == 0:
            return
        for number in (*_SIGNALS, signal.SIGUSR1):
            signal.signal(number, self._handle)
        self._mode, self._pending = "chaoslib", None

    def enter_rollbacks(self) -> None:
        if self._mode == "chaoslib":
            self._mode, self._pending = "rollbacks", None

    def in_activity(self, running: bool) -> None:
        """The main thread entered (or left) a chaoslib activity."""
        self._in_activity = running

    def leave_chaoslib(self) -> None:
        self._mode, self._pending, self._in_activity = "outside", None, False

    def caught(self) -> None:
        """chaoslib caught the interrupt we raised: stop raising it again."""
        self._pending = None

    def raise_pending(self) -> None:
        """Raise the interrupt again after an activity completed in the main thread (chaoslib
        catches only Exception around an activity's pause, so this skips the pause)."""
        if self._pending is not None and threading.current_thread() is threading.main_thread():
            raise self._pending()

    # ------------------------------------------------------------ deferral

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """A block a first signal must not cut short (the undo still happens at once)."""
        self._deferred += 1
        try:
            yield
        finally:
            self._deferred -= 1

    def hold(self) -> None:
        """Defer every signal from now until the controller is uninstalled (the command's end)."""
        self._deferred += 1

    def checkpoint(self) -> None:
        """Raise Interrupted if a signal arrived (e.g. during a deferred block)."""
        if self.signal_name and self._deferred == 0:
            raise Interrupted(self.signal_name)

    # ------------------------------------------------------------ the handler

    def _handle(self, signum: int, frame: object) -> None:
        if signum == signal.SIGUSR1:
            self._guardrail_abort()
            return
        name = signal.Signals(signum).name
        if self.signal_name:
            _say(f"{name} ignored: rolling back after {self.signal_name}, please wait")
            return
        self.signal_name, self.signal_monotonic = name, time.monotonic()
        self._cancel()
        if self._mode == "rollbacks" and self._in_activity:
            # A rollback is undoing a fault right now: undoing it again from here would re-enter
            # that undo halfway. It completes, then the interrupt unwinds and the runner undoes
            # whatever is still open.
            self._pending = KeyboardInterrupt
            return
        self._undo_now()
        if self._deferred:
            return
        if self._mode in ("chaoslib", "rollbacks"):
            self._pending = KeyboardInterrupt
            raise KeyboardInterrupt
        raise Interrupted(name)

    def _guardrail_abort(self) -> None:
        if self.signal_name:
            return  # an interrupt is already unwinding the run
        self._cancel()
        if self._mode == "rollbacks":
            if not self._in_activity:
                self._undo_now()
            return  # the rollbacks are running already
        self._undo_now()
        if self._mode == "chaoslib" and not self._deferred:
            self._pending = lambda: SystemExit(20)
            raise SystemExit(20)

    def abort_for_guardrail(self, reason: str) -> None:
        """From the guardrail thread: abort the run in the main thread (undo at once, then unwind)."""
        self.guardrail_reason = reason
        os.kill(os.getpid(), signal.SIGUSR1)

    def _cancel(self) -> None:
        self.cancelled.set()
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(target=self._reap, name="cancel-background", daemon=True)
            self._reaper.start()

    def _undo_now(self) -> None:
        from harness import ledger  # imported late: the CLI installs this before heavy imports

        with self._lock:
            runs = list(self._runs.items())
        for run_id, state_dir in reversed(runs):
            try:
                results = ledger.recover(state_dir, run_id=run_id)
            except Exception as error:  # an unreadable ledger: `harness recover` says what to do
                self._undo_errors.append(f"{type(error).__name__}: {error}")
                continue
            self._undo_errors.extend(
                f"could not undo {_describe(r.fault.action, r.fault.target)}: {r.error}"
                for r in results
                if not r.is_undone
            )

    def _reap(self) -> None:
        """Raise ActivityCancelled into background activities that ignore `cancelled`."""
        time.sleep(_COOPERATIVE_GRACE_SECONDS)
        for _ in range(_REAP_ATTEMPTS):
            with self._lock:
                alive = [t for t in self._background if t.is_alive() and t.ident is not None]
            if not alive:
                return
            for thread in alive:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(thread.ident), ctypes.py_object(ActivityCancelled)
                )
            time.sleep(_REAP_INTERVAL_SECONDS)

    # ------------------------------------------------------------ the outcome

    def exit_code(self) -> int | None:
        """130 after SIGINT, 143 after SIGTERM, None when no signal arrived."""
        if not self.signal_name:
            return None
        return 128 + signal.Signals[self.signal_name].value

    def summary(self) -> str:
        """One line: which signal, and what was undone and stopped because of it."""
        undone, still_open = self._since_signal()
        parts = [f"undid {what}" for what in undone]
        parts += [f"stopped {what}" for what in dict.fromkeys(self._stopped)]
        parts += [f"left {what} open: run `harness recover`" for what in still_open]
        parts += self._undo_errors
        if not parts:
            parts = ["nothing was left to undo"]
        return f"interrupted by {self.signal_name}: {', '.join(parts)}"

    def _since_signal(self) -> tuple[list[str], list[str]]:
        """Faults of the registered runs undone since the signal, and faults still open."""
        from harness import ledger

        undone: list[str] = []
        still_open: list[str] = []
        if self.signal_monotonic is None:
            return undone, still_open
        for run_id, state_dir in self._runs.items():
            try:
                records = ledger.fault_records(state_dir, 0.0, run_id)
            except Exception:  # an unreadable ledger: `harness recover` says what to do
                continue
            for fault in reversed(records):
                what = _describe(fault.action, fault.target)
                if fault.undone_at_seconds is None:
                    still_open.append(what)
                elif fault.undone_at_seconds >= self.signal_monotonic:
                    undone.append(what)
        return list(dict.fromkeys(undone)), list(dict.fromkeys(still_open))


CONTROLLER = Controller()


def cancelled() -> bool:
    """Whether the run was interrupted or aborted: background work should stop now."""
    return CONTROLLER.cancelled.is_set()


def sleep(seconds: float) -> bool:
    """Sleep up to `seconds`; True when cut short because the run was cancelled."""
    return CONTROLLER.cancelled.wait(seconds)


def deferred() -> AbstractContextManager[None]:
    """A block a first signal must not cut short (the undo still happens at once)."""
    return CONTROLLER.deferred()


def checkpoint() -> None:
    """Raise Interrupted if a signal arrived meanwhile."""
    CONTROLLER.checkpoint()
