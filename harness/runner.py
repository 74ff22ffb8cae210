"""Run one experiment and build its RunRecord: the only module with side effects on a target.

chaoslib drives the experiment in the main thread (it installs signal handlers). Around it
run the canaries, the Sentinel watcher and the guardrail; every fault goes through the fault
ledger, and any fault still open when chaoslib returns is undone here. chaoslib's overall
status is never trusted: the record keeps the steady states, every failed activity and the
proof of each fault's effect, and grading decides.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from harness import canary as canary_module
from harness import interrupts, ledger, leftovers, loading, measures, primaries
from harness.errors import FaultsOpen, HarnessError
from harness.interrupts import CONTROLLER, Interrupted
from harness.model import Event, Measurement, RunRecord, Sample, Scenario
from harness.progress import WaitNotice
from harness.sandbox.topology import experiment_scenario
from harness.units import parse_frequency
from harness.watchers import PatroniWatcher, SentinelWatcher

Progress = Callable[[str], None]
GUARD_INTERVAL_SECONDS = 0.25
# The error-ratio guardrail is judged from the first request: while the run is younger than the
# window, it is crossed as soon as the failures so far exceed the limit's share of the requests a
# full window holds (the window's ratio can then no longer end under the limit); after that, over
# the sliding window. Judged once the requests weigh GUARD_MIN_SAMPLES (one failed request at the
# start is not a blast radius). A request counts for the requests its canary would have sent while
# it waited: a frozen target answers once per request timeout, and those users all waited.
GUARD_MIN_SAMPLES = 20
SETTLE_SECONDS = 0.5  # canaries keep sampling this long after the rollbacks
CHAOSLIB_SETTINGS = {"runtime": {"rollbacks": {"strategy": "always"}}}
BASELINE_SAMPLES = 10  # successful canary requests before the experiment starts
BASELINE_TIMEOUT_SECONDS = 5.0


@dataclass(slots=True)
class RunContext:
    """What a run needs besides the experiment: where to write and what to target."""

    scenario: Scenario
    out_dir: Path
    endpoints: Mapping[str, Any] | None = None  # None: bring up a sandbox for this run
    state_dir: Path = field(default_factory=ledger.state_dir)
    allow_production: bool = False
    progress: Progress = lambda message: None


def new_run_id(scenario: str, experiment_path: Path) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{scenario}-{experiment_path.stem}-{uuid.uuid4().hex[:6]}"


def ensure_no_open_faults(state_dir: Path) -> None:
    """Refuse to start while an earlier run left faults behind."""
    left = ledger.open_faults(state_dir)
    if left:
        listing = ", ".join(f"{f.action} on {f.target}" for f in left[:3])
        raise FaultsOpen(
            f"{len(left)} fault(s) from an earlier run are still applied ({listing}); "
            f"run `harness recover --dir {state_dir}` first"
        )


def ensure_target_allowed(scenario: Scenario, allow_production: bool) -> None:
    """Production targets need the scenario's consent and the operator's."""
    if scenario.environment == "production" and not (scenario.allow_production and allow_production):
        raise HarnessError(
            f"{scenario.path}: environment: production targets are refused; the scenario must set "
            "allow_production: true and the command must be given --allow-production"
        )


class _Guard:
    """Aborts the run when a guardrail is crossed: the faults are undone at once in the main
    thread, then chaoslib's graceful exit plays the rollbacks (see harness.interrupts)."""

    def __init__(self, scenario: Scenario, canaries: list[canary_module.Canary], state_dir: Path) -> None:
        self._limits = scenario.guardrails
        self._canaries = canaries
        self._state_dir = state_dir
        self._stop = threading.Event()
        self.crossed: dict[str, Any] | None = None
        self._started_monotonic = time.monotonic()
        self._thread = threading.Thread(target=self._watch, name="guardrail", daemon=True)

    def start(self) -> _Guard:
        if self._limits.max_error_ratio is not None or self._limits.max_duration_seconds is not None:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _watch(self) -> None:
        while not self._stop.wait(GUARD_INTERVAL_SECONDS):
            reason = self._reason(time.monotonic())
            if reason:
                self.crossed = {"at_monotonic": time.monotonic(), "reason": reason}
                CONTROLLER.abort_for_guardrail(reason)
                return

    def _reason(self, now: float) -> str:
        faults = ledger.open_faults(self._state_dir)
        if not faults:
            return ""
        oldest = min(f.applied_monotonic for f in faults)
        limit = self._limits.max_duration_seconds
        if limit is not None and now - oldest > limit:
            return f"fault applied for {now - oldest:.1f} s, guardrail max_duration {limit:g} s"
        limit = self._limits.max_error_ratio
        if limit is None:
            return ""
        samples = [
            {**s, "weight": max(1.0, float(s.get("latency_seconds") or 0.0) / c.interval_seconds)}
            for c in self._canaries
            for s in c.samples()
        ]
        per_second = sum(1.0 / c.interval_seconds for c in self._canaries)
        return error_ratio_crossing(
            samples, self._started_monotonic, now, self._limits.window_seconds, limit, per_second
        )


def error_ratio_crossing(
    samples: list[dict[str, Any]],
    started_monotonic: float,
    now: float,
    window_seconds: float,
    limit: float,
    requests_per_second: float = 0.0,
) -> str:
    """Why the canary error ratio crosses `limit`, or "".

    Over the last `window_seconds` (every request since the run started while the run is younger
    than the window), failures are compared with the requests the window holds: at least
    `requests_per_second` x `window_seconds` (what the canaries send in a full window), so a young
    run is stopped as soon as its window can no longer end under the limit, and a failover's few
    seconds of errors do not read as a 100 % blast radius. Judged once the requests weigh
    GUARD_MIN_SAMPLES. A sample's `weight` (default 1) is how many requests it stands for."""
    since = max(started_monotonic, now - window_seconds)
    recent = [s for s in samples if s["at_monotonic"] >= since]
    total = sum(float(s.get("weight", 1.0)) for s in recent)
    if total < GUARD_MIN_SAMPLES:
        return ""
    failed = sum(float(s.get("weight", 1.0)) for s in recent if not s["ok"])
    full_window = max(total, requests_per_second * window_seconds)
    ratio = failed / full_window
    if ratio <= limit:
        return ""
    if since > started_monotonic:
        span = f"the last {window_seconds:g} s"
    elif full_window > total:
        span = f"a full {window_seconds:g} s window, {now - started_monotonic:.1f} s into the run"
    else:
        span = f"the first {now - started_monotonic:.1f} s of the run"
    return (
        f"canary error ratio {ratio:.0%} over {span} ({failed:.0f} of {full_window:.0f} requests failed), "
        f"guardrail {limit:.0%}"
    )


class _SignalNotes:
    """chaoslib event handler: hands signal handling to the process's controller while chaoslib
    runs, and tells the wait notice what the run is waiting for.

    chaoslib's SIGTERM handler raises InterruptExecution, which an activity in progress swallows
    as its own failure (the run goes on); and an activity interrupted by any signal still sleeps
    its ``pauses.after`` before the interrupt unwinds further. So while chaoslib runs, the
    controller raises KeyboardInterrupt (SystemExit(20) for a guardrail), raised again when the
    activity completes until chaoslib has caught it.
    """

    def __init__(self, notice: WaitNotice | None = None) -> None:
        self._notice = notice
        self._background: dict[threading.Thread, str] = {}

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None

    def running(self, experiment, journal, configuration, secrets, schedule, settings) -> None:
        CONTROLLER.enter_chaoslib()

    def start_activity(self, activity: Any) -> None:
        name = str((activity or {}).get("name", "?"))
        thread = threading.current_thread()
        if thread is not threading.main_thread():
            self._background[thread] = name
            CONTROLLER.note_background(thread, running=True)
            return
        CONTROLLER.in_activity(True)
        if self._notice is not None:
            self._notice.waiting_for(f"{(activity or {}).get('type', 'activity')} {name}")

    def activity_completed(self, activity: Any, run: Any) -> None:
        thread = threading.current_thread()
        if thread is not threading.main_thread():
            self._background.pop(thread, None)
            CONTROLLER.note_background(thread, running=False)
            return
        CONTROLLER.in_activity(False)
        CONTROLLER.raise_pending()  # skips the activity's pause: chaoslib only catches Exception here
        if self._notice is not None:
            after = ((activity or {}).get("pauses") or {}).get("after")
            name = (activity or {}).get("name", "?")
            background = f"background activities ({', '.join(self._background.values())})"
            if after:
                then = f", then {background}" if self._background else ""
                self._notice.waiting_for(f"the {after} s pause after {name}{then}")
            elif self._background:
                self._notice.waiting_for(background)

    def start_rollbacks(self, experiment: Any) -> None:
        CONTROLLER.enter_rollbacks()
        if CONTROLLER.cancelled.is_set():
            # Interrupted or aborted: the faults were undone at once; waiting before each rollback
            # would only hold the exit.
            for activity in experiment.get("rollbacks") or []:
                if isinstance(activity, dict):
                    activity.pop("pauses", None)
        if self._notice is not None:
            self._notice.say("rolling back")
            self._notice.waiting_for("the rollbacks")

    def interrupted(self, experiment: Any, journal: Any) -> None:
        CONTROLLER.caught()

    def signal_exit(self) -> None:
        CONTROLLER.caught()


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("resilience-harness", "chaostoolkit-lib", "chaostoolkit", "redis", "psycopg"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    for binary, flag in (("redis-server", "--version"), ("prometheus", "--version")):
        path = shutil.which(binary)
        if path:
            result = subprocess.run([path, flag], capture_output=True, text=True, timeout=5, check=False)
            found[binary] = (
                (result.stdout or result.stderr).splitlines()[0] if result.stdout or result.stderr else ""
            )
    return found


def _redact(value: Any, secrets: set[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "***")
        return value
    if isinstance(value, Mapping):
        return {k: _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, secrets) for v in value]
    return value


def secret_values(secrets: Mapping[str, Any] | None) -> set[str]:
    """Every string value in chaoslib's loaded secrets, for redaction."""
    found: set[str] = set()
    for value in (secrets or {}).values():
        if isinstance(value, Mapping):
            found |= secret_values(value)
        elif isinstance(value, str) and len(value) >= 4:
            found.add(value)
    return found


# A configuration value read from the environment is a credential when its key or variable says so.
_CREDENTIAL_NAME = re.compile(r"passw(or)?d|passphrase|secret|token|api_?key|credential|private_?key", re.I)


def environment_credentials(declared: Mapping[str, Any] | None, loaded: Mapping[str, Any] | None) -> set[str]:
    """Configuration values chaoslib read from the environment under a credential-like name."""
    found: set[str] = set()
    for key, declaration in (declared or {}).items():
        if not (isinstance(declaration, Mapping) and declaration.get("type") == "env"):
            continue
        if not (_CREDENTIAL_NAME.search(key) or _CREDENTIAL_NAME.search(str(declaration.get("key", "")))):
            continue
        value = (loaded or {}).get(key)
        if isinstance(value, str) and len(value) >= 4:
            found.add(value)
    return found


class _SecretCatcher(_SignalNotes):
    """Also keeps the secrets chaoslib loaded, so the record can be scrubbed of them."""

    def __init__(self, notice: WaitNotice | None = None) -> None:
        super().__init__(notice)
        self.secrets: set[str] = set()

    def running(self, experiment, journal, configuration, secrets, schedule, settings) -> None:
        super().running(experiment, journal, configuration, secrets, schedule, settings)
        self.secrets = secret_values(secrets) | environment_credentials(
            experiment.get("configuration"), configuration
        )


class _RedactingFilter(logging.Filter):
    """Scrubs the loaded secrets from chaoslib's log lines (a failed activity's error quotes them)."""

    def __init__(self, notes: _SecretCatcher) -> None:
        super().__init__()
        self._notes = notes

    def filter(self, record: logging.LogRecord) -> bool:
        if self._notes.secrets:
            record.msg, record.args = _redact(record.getMessage(), self._notes.secrets), None
        return True


def _iso_to_monotonic(iso: str | None, offset: float) -> float | None:
    if not iso:
        return None
    parsed = dt.datetime.fromisoformat(iso)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp() - offset


def _activity_entries(journal: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    before = (journal.get("steady_states") or {}).get("before") or {}
    after = (journal.get("steady_states") or {}).get("after") or {}
    for phase, entries in (
        ("hypothesis-before", before.get("probes", [])),
        ("method", journal.get("run", [])),
        ("hypothesis-after", after.get("probes", [])),
        ("rollback", journal.get("rollbacks", [])),
    ):
        for entry in entries or []:
            yield phase, entry


def _activity_error(entry: Mapping[str, Any]) -> str:
    exception = entry.get("exception") or []
    text = exception[-1].strip() if isinstance(exception, list) and exception else str(exception)
    return text.splitlines()[-1] if text else "failed"


def _steady_state(journal: Mapping[str, Any], phase: str) -> bool | None:
    state = (journal.get("steady_states") or {}).get(phase)
    if not state:
        return None
    return bool(state.get("steady_state_met"))


def _undo_leftovers(state_dir: Path, run_id: str, started_monotonic: float) -> list[Event]:
    """Undo faults of this run that its rollbacks left open; each becomes an event."""
    events = []
    for result in ledger.recover(state_dir, run_id=run_id):
        events.append(
            Event(
                time.monotonic() - started_monotonic,
                "fault.undone-by-harness" if result.is_undone else "fault.undo-failed",
                "runner",
                {"action": result.fault.action, "target": result.fault.target, "error": result.error},
            )
        )
    return events


def run_experiment(experiment_path: Path, context: RunContext) -> RunRecord:
    """Run one experiment against the context's target and return its record (never raises for
    a broken system: that is what the record is for).

    Every refusal (bad input, production without consent, faults left open) comes before
    anything starts. A first SIGINT or SIGTERM undoes the run's faults at once (harness.interrupts);
    an interrupt before the canaries start raises Interrupted, a later one still returns the
    record, with a `run.interrupted` event."""
    experiment = loading.load_experiment(experiment_path)
    ensure_target_allowed(context.scenario, context.allow_production)
    ensure_no_open_faults(context.state_dir)
    extension = loading.harness_extension(experiment)
    run_id = new_run_id(context.scenario.name, experiment_path)
    run_dir = context.out_dir / run_id
    if not CONTROLLER.is_installed and threading.current_thread() is threading.main_thread():
        # Used as a library (the pytest plugin): the controller is ours for this run, and an
        # interrupt reaches the caller the conventional way.
        try:
            with CONTROLLER.installed():
                return run_experiment(experiment_path, context)
        except Interrupted:
            raise KeyboardInterrupt from None
    with CONTROLLER.installed(), WaitNotice(context.progress) as notice:
        CONTROLLER.register_run(context.state_dir, run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        leftovers.running_run(context.state_dir, run_id, context.out_dir)
        if context.endpoints is not None:
            return _run_against(
                experiment, experiment_path, extension, context, run_id, run_dir, context.endpoints, notice
            )
        # The experiment may ask for another PostgreSQL topology than the scenario's (active-active).
        sandbox_scenario = experiment_scenario(context.scenario, extension)
        components = with_failover_manager(sandbox_scenario, extension.get("sandbox_components") or None)
        notice.say(f"sandbox: starting {', '.join(components) if components else 'all components'}")
        notice.waiting_for("the sandbox to start")
        with leftovers.owned_sandbox(
            sandbox_scenario,
            run_dir / "sandbox",
            context.state_dir,
            components=components,
            progress=notice.say,
        ) as sb:
            return _run_against(
                experiment, experiment_path, extension, context, run_id, run_dir, sb.endpoints, notice
            )


class Observation:
    """Everything that measures a run from outside chaoslib: the canaries, the Sentinel and Patroni
    watchers and the guardrail, started before the steady-state hypothesis and stopped after the
    rollbacks, then the run record built from them and the journal.

    One code path for both ways of running: `harness run` wraps chaoslib in it (_run_against), and
    the Chaos Toolkit control (harness.control) starts it from chaoslib's before-experiment hook and
    finishes it from the after-experiment hook of a plain `chaos run`."""

    def __init__(
        self,
        *,
        scenario: Scenario,
        extension: Mapping[str, Any],
        endpoints: Mapping[str, Any],
        run_id: str,
        run_dir: Path,
        state_dir: Path,
        say: Progress = lambda message: None,
        waiting_for: Progress = lambda what: None,
    ) -> None:
        canary_settings = extension.get("canary", {})
        self.rate_hz = (
            parse_frequency(canary_settings["rate"]) if "rate" in canary_settings else scenario.canary_rate_hz
        )
        kinds = canary_settings.get("kinds", ["redis"])
        self.targets = canary_module.targets_from_endpoints(endpoints, kinds)
        self.scenario, self.endpoints = scenario, endpoints
        self.run_id, self.run_dir, self.state_dir = run_id, run_dir, state_dir
        self._say, self._waiting_for = say, waiting_for
        self.started_wall = time.time()
        self.started_monotonic = time.monotonic()
        self.canaries: list[canary_module.Canary] = []
        self.watchers: list[SentinelWatcher | PatroniWatcher] = []
        self.guard: _Guard | None = None
        self.primaries_at_start: dict[str, str] = {}

    def configuration(self) -> dict[str, Any]:
        """What the activities read from chaoslib's configuration: the target's endpoints and where
        this run writes (the canary log, the fault ledger, the scenario for per-region rates)."""
        return {
            **self.endpoints,
            "run_dir": str(self.run_dir),
            "run_id": self.run_id,
            "harness_state_dir": str(self.state_dir),
            "scenario_path": self.scenario.path,
        }

    def start(self) -> Observation:
        """Canaries and watchers running, the healthy baseline seen (bounded), the guardrail armed."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.environ["HARNESS_RUN_ID"] = self.run_id
        self.started_wall = time.time()
        self.started_monotonic = time.monotonic()
        # Where each primary is now: in a suite an earlier experiment's failover may have moved it
        # away from the scenario's primary region (grading then knows whether a fault hit it).
        self.primaries_at_start = _primaries_now(self.endpoints)
        self.canaries = [
            canary_module.Canary(t, self.rate_hz, self.run_dir / "canary.jsonl").start() for t in self.targets
        ]
        self.watchers.append(SentinelWatcher(self.endpoints.get("redis_sentinels", ())).start())
        self.watchers.append(
            PatroniWatcher(
                _patroni_urls(self.endpoints),
                etcd_urls=self.endpoints.get("etcd_urls", ()),
                scope=self.endpoints.get("patroni_scope", "harness"),
            ).start()
        )
        self._say(
            f"canaries: {len(self.canaries)} started, waiting for {BASELINE_SAMPLES} successful requests each"
        )
        self._waiting_for("the canaries' first successful requests")
        _await_baseline(self.canaries, self._say)
        self.guard = _Guard(self.scenario, self.canaries, self.state_dir).start()
        return self

    def finish(
        self,
        *,
        experiment: Mapping[str, Any],
        experiment_path: Path,
        journal: Mapping[str, Any],
        secrets: set[str],
        failure: BaseException | None = None,
    ) -> RunRecord:
        """Stop measuring, undo what the rollbacks left open, verify the acknowledged writes and
        build the record (scrubbed of `secrets`). `failure`, an error that ended the run early, is
        raised again once everything is stopped and undone.

        A first signal meanwhile only undoes (nothing is applied) and is noted: the record is built
        and returned so that it reaches the history."""
        with interrupts.deferred():
            self._waiting_for("")
            if self.guard is not None:
                self.guard.stop()
            extra_events = _undo_leftovers(self.state_dir, self.run_id, self.started_monotonic)
            if not CONTROLLER.signal_name:
                time.sleep(SETTLE_SECONDS)
            raw_samples = [s for c in self.canaries for s in c.stop()]
            raw_events = [e for w in self.watchers for e in w.stop()]
            os.environ.pop("HARNESS_RUN_ID", None)
            if failure is not None:
                raise failure
            ended_monotonic = time.monotonic()
            extra_events.extend(_canary_started(c, self.started_monotonic) for c in self.canaries)
            self._say("checking acknowledged writes")
            extra_events.extend(_verify_writes(self.canaries, self.started_monotonic, self.rate_hz))
            if self.guard is not None and self.guard.crossed:
                crossed = self.guard.crossed
                at = crossed["at_monotonic"] - self.started_monotonic
                extra_events.append(Event(at, "guardrail.crossed", "runner", crossed))
            if CONTROLLER.signal_name:
                extra_events.append(
                    Event(
                        (CONTROLLER.signal_monotonic or ended_monotonic) - self.started_monotonic,
                        "run.interrupted",
                        "runner",
                        {"signal": CONTROLLER.signal_name},
                    )
                )
            record = _build_record(
                experiment=experiment,
                experiment_path=experiment_path,
                scenario_name=self.scenario.name,
                state_dir=self.state_dir,
                run_id=self.run_id,
                journal=journal,
                started_wall=self.started_wall,
                started_monotonic=self.started_monotonic,
                duration_seconds=ended_monotonic - self.started_monotonic,
                wall_offset=self.started_wall - self.started_monotonic,
                raw_samples=raw_samples,
                raw_events=raw_events,
                extra_events=extra_events,
                endpoints=self.endpoints,
                primaries_at_start=self.primaries_at_start,
            )
            return RunRecord.from_dict(_redact(measures.with_derived(record).to_dict(), secrets))


CONTROL_MODULE = "harness.control"


def chaoslib_configuration(experiment: Mapping[str, Any], observed: Mapping[str, Any]) -> dict[str, Any]:
    """The experiment with the observation's keys merged into its configuration (chaoslib's extra
    vars only override keys the experiment declares, and a user's experiment need not declare them),
    and without the harness control: this run is observed already, a second observation would
    double every canary."""
    merged = {**experiment, "configuration": {**experiment.get("configuration", {}), **observed}}
    controls = [
        c
        for c in experiment.get("controls") or []
        if not (isinstance(c, Mapping) and (c.get("provider") or {}).get("module") == CONTROL_MODULE)
    ]
    if "controls" in experiment:
        merged["controls"] = controls
    return merged


def _run_against(
    experiment: dict[str, Any],
    experiment_path: Path,
    extension: Mapping[str, Any],
    context: RunContext,
    run_id: str,
    run_dir: Path,
    endpoints: Mapping[str, Any],
    notice: WaitNotice,
) -> RunRecord:
    from chaoslib.run import Runner, Strategy, initialize_run_journal

    observation = Observation(
        scenario=context.scenario,
        extension=extension,
        endpoints=endpoints,
        run_id=run_id,
        run_dir=run_dir,
        state_dir=context.state_dir,
        say=notice.say,
        waiting_for=notice.waiting_for,
    )
    notes = _SecretCatcher(notice)
    redacting = _RedactingFilter(notes)
    chaos_logger = logging.getLogger("chaostoolkit")
    journal: dict[str, Any] = {}
    failure: BaseException | None = None
    try:
        observation.start()
        notice.say(f"running {experiment.get('title', experiment_path.name)}")
        chaos_logger.setLevel(logging.ERROR)
        chaos_logger.addFilter(redacting)
        merged = chaoslib_configuration(experiment, observation.configuration())
        # Our own journal, so that an interrupt that leaves chaoslib (during its rollbacks) keeps it.
        journal = initialize_run_journal(merged)
        try:
            # Rollbacks run whatever happened (chaoslib's default skips them after a failure or an
            # interrupt); faults our actions recorded are also undone from the ledger below.
            with _chaoslib_signals_left_to_us(), Runner(Strategy.DEFAULT) as chaos:
                chaos.register_event_handler(notes)
                journal = chaos.run(merged, CHAOSLIB_SETTINGS, journal=journal)
        finally:
            CONTROLLER.leave_chaoslib()
    except (Interrupted, KeyboardInterrupt):
        # Outside chaoslib's own catch (baseline, chaoslib starting, its rollbacks): the faults are
        # undone already, or by Observation.finish.
        journal = {**journal, "status": "interrupted"}
    except BaseException as error:  # cleaned up by finish, then raised again
        failure = error
    with interrupts.deferred():
        chaos_logger.removeFilter(redacting)
        return observation.finish(
            experiment=experiment,
            experiment_path=experiment_path,
            journal=journal,
            secrets=notes.secrets,
            failure=failure,
        )


@contextmanager
def _chaoslib_signals_left_to_us() -> Iterator[None]:
    """Keep chaoslib from installing its own SIGTERM/SIGUSR1 handlers while the controller handles
    signals: chaoslib's SIGTERM raises an Exception that the activity in progress swallows, and
    between installing it and its `running` event a SIGTERM would escape as a traceback."""
    import chaoslib.run as chaoslib_run

    if not CONTROLLER.is_installed and threading.current_thread() is threading.main_thread():
        yield
        return
    original = chaoslib_run.exit_signals
    chaoslib_run.exit_signals = nullcontext
    try:
        yield
    finally:
        chaoslib_run.exit_signals = original


def with_failover_manager(scenario: Scenario, components: Collection[str] | None) -> set[str] | None:
    """The sandbox components to start: PostgreSQL runs under Patroni when the scenario's failover is
    automatic, so a primary kill is answered the way the real system answers it."""
    if components is None:
        return None
    chosen = set(components)
    if "postgres" in chosen and scenario.postgres.failover == "patroni":
        chosen = (chosen - {"postgres"}) | {"patroni"}
    return chosen


def _patroni_urls(endpoints: Mapping[str, Any]) -> list[str]:
    """REST API addresses of the target's Patroni members (sandbox components), if any."""
    if not endpoints.get("sandbox_dir"):
        return []
    from harness.sandbox import load_components

    members = load_components(Path(endpoints["sandbox_dir"])).values()
    return [f"http://127.0.0.1:{m.port}" for m in members if m.kind == "patroni"]


def _await_baseline(canaries: list[canary_module.Canary], progress: Progress) -> None:
    """Let every canary see the healthy system first, so the record shows the steady state before
    the fault. Bounded: a target that never answers is the steady-state hypothesis's to report."""
    deadline = time.monotonic() + BASELINE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if all(sum(1 for s in c.samples() if s["ok"]) >= BASELINE_SAMPLES for c in canaries):
            return
        time.sleep(0.05)
    progress(f"canaries saw fewer than {BASELINE_SAMPLES} successful requests before the experiment")


def interrupted_exit_code(record: RunRecord) -> int | None:
    """130 after Ctrl-C, 143 after SIGTERM, None when no signal interrupted the run."""
    for event in record.events:
        if event.kind == "run.interrupted":
            return 143 if event.detail.get("signal") == "SIGTERM" else 130
    return None


def _canary_started(canary: canary_module.Canary, started_monotonic: float) -> Event:
    """Grading's list of the regions that must produce canary samples, and at what rate."""
    at = canary.started_monotonic if canary.started_monotonic is not None else started_monotonic
    return Event(at - started_monotonic, "canary.started", "runner", canary.started_detail())


def _verify_writes(
    canaries: list[canary_module.Canary], start_monotonic: float, rate_hz: float
) -> list[Event]:
    events = []
    for canary in canaries:
        if canary.target.kind not in canary_module.VERIFIABLE_KINDS:
            continue
        acked = canary.acked_writes()
        try:
            lost = canary_module.lost_writes(canary.target, acked)
        except Exception as exc:  # the primary may be unreachable: RPO stays unknown
            detail = {"error": str(exc), "region": canary.target.region, "kind": canary.target.kind}
            events.append(Event(time.monotonic() - start_monotonic, "writes.unverified", "canary", detail))
            continue
        events.extend(
            Event(w.at_monotonic - start_monotonic, "write.lost", "canary", {"key": w.key}) for w in lost
        )
        events.append(
            Event(time.monotonic() - start_monotonic, "writes.verified", "canary",
                  {"checked": len(acked), "lost": len(lost), "interval_seconds": 1.0 / rate_hz,
                   "region": canary.target.region, "kind": canary.target.kind})
        )  # fmt: skip
    return events


def _build_record(
    *,
    experiment: Mapping[str, Any],
    experiment_path: Path,
    scenario_name: str,
    state_dir: Path,
    run_id: str,
    journal: Mapping[str, Any],
    started_wall: float,
    started_monotonic: float,
    duration_seconds: float,
    wall_offset: float,
    raw_samples: list[dict[str, Any]],
    raw_events: list[dict[str, Any]],
    extra_events: list[Event],
    endpoints: Mapping[str, Any],
    primaries_at_start: Mapping[str, str],
) -> RunRecord:
    samples = [Sample.from_raw(s, started_monotonic) for s in raw_samples]
    runner_canaries = bool(raw_samples)
    events = [Event.from_raw(e, started_monotonic) for e in raw_events]
    events.extend(extra_events)
    measurements: list[Measurement] = []
    errors: list[str] = []
    for phase, entry in _activity_entries(journal):
        name = (entry.get("activity") or {}).get("name", "?")
        start = _iso_to_monotonic(entry.get("start"), wall_offset)
        status = entry.get("status", "")
        if start is not None:
            events.append(
                Event(start - started_monotonic, f"activity.{status or 'run'}", phase,
                      {"name": name, "duration_seconds": entry.get("duration")})
            )  # fmt: skip
        if status == "failed":
            errors.append(f"{phase} {name}: {_activity_error(entry)}")
        output = entry.get("output")
        if isinstance(output, Mapping):
            measurements.extend(
                Measurement(**{**m, "source": m.get("source", name)}) for m in output.get("measurements", [])
            )
            # The runner's own canaries already sampled the user's path; a canary probe's copy would
            # count every outage twice.
            samples.extend(
                Sample.from_raw(s, started_monotonic)
                for s in output.get("samples", [])
                if not (runner_canaries and s.get("probe") == "canary")
            )
            events.extend(
                Event.from_raw(e, started_monotonic, source=name)
                for e in output.get("events", [])
                if isinstance(e, Mapping) and "at_monotonic" in e and "kind" in e
            )
    return RunRecord(
        run_id=run_id,
        scenario=scenario_name,
        experiment_title=str(experiment.get("title", experiment_path.stem)),
        experiment_path=str(experiment_path),
        harness_version=_version(),
        started_at=dt.datetime.fromtimestamp(started_wall, dt.UTC).isoformat(),
        duration_seconds=duration_seconds,
        status=str(journal.get("status", "interrupted")),
        steady_state_before=_steady_state(journal, "before"),
        steady_state_after=_steady_state(journal, "after"),
        activity_errors=tuple(errors),
        events=tuple(sorted(events, key=lambda e: e.at_seconds)),
        samples=tuple(sorted(samples, key=lambda s: s.at_seconds)),
        faults=tuple(ledger.fault_records(state_dir, started_monotonic, run_id)),
        measurements=tuple(measurements),
        environment={**_versions(), "target": _describe_target(endpoints, primaries_at_start)},
        journal=json.loads(json.dumps(journal, default=str)),
    )


def _describe_target(endpoints: Mapping[str, Any], primaries_at_start: Mapping[str, str]) -> dict[str, Any]:
    return {
        "sandbox_dir": endpoints.get("sandbox_dir", ""),
        "regions": sorted(endpoints.get("regions", {})),
        "primary_region": endpoints.get("primary_region", ""),
        "primaries_at_start": dict(primaries_at_start),
    }


def _primaries_now(endpoints: Mapping[str, Any]) -> dict[str, str]:
    """The region of the Redis and the PostgreSQL primary (by kind) as the target answers now; a kind
    with no answer, or whose primary no configured region names, is left out."""
    found: dict[str, str] = {}
    if endpoints.get("redis_sentinels"):
        redis_primary = primaries.redis_primary(endpoints)
        if redis_primary is not None and redis_primary.region:
            found["redis"] = redis_primary.region
    regions = endpoints.get("regions") or {}
    has_postgres = any(isinstance(r, Mapping) and r.get("postgres_dsn") for r in regions.values())
    if has_postgres and endpoints.get("postgres_topology") != "active-active":
        postgres_primary = primaries.postgres_primary(endpoints)
        if postgres_primary is not None and postgres_primary.region:
            found["postgres"] = postgres_primary.region
    return found


def _version() -> str:
    try:
        return metadata.version("resilience-harness")
    except metadata.PackageNotFoundError:
        return "0+unknown"
