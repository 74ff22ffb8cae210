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
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from harness import canary as canary_module
from harness import ledger, loading, measures
from harness.errors import FaultsOpen, HarnessError
from harness.model import Event, Measurement, RunRecord, Sample, Scenario
from harness.units import parse_frequency
from harness.watchers import PatroniWatcher, SentinelWatcher

Progress = Callable[[str], None]
GUARD_INTERVAL_SECONDS = 0.25
# A frozen target answers nothing: its canary then records one failure per request timeout
# (about 2 a second), so the floor that keeps a handful of samples from aborting stays low.
GUARD_MIN_SAMPLES = 5
SETTLE_SECONDS = 0.5  # canaries keep sampling this long after the rollbacks
CHAOSLIB_SETTINGS = {"runtime": {"rollbacks": {"strategy": "always"}}}
BASELINE_SAMPLES = 10  # successful canary requests before the experiment starts
BASELINE_TIMEOUT_SECONDS = 5.0


class Terminated(KeyboardInterrupt):
    """SIGTERM outside chaoslib's own handler: unwinds like Ctrl-C so every `finally` runs."""


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


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    def raise_terminated(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    # A guardrail's SIGUSR1 that lands after chaoslib restored our handlers must not kill us.
    previous_usr1 = signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    previous_int = signal.getsignal(signal.SIGINT)  # _SignalNotes replaces it during the run
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGUSR1, previous_usr1)
        signal.signal(signal.SIGINT, previous_int)


@contextmanager
def _signals_held() -> Iterator[list[str]]:
    """Hold SIGINT and SIGTERM while the run's faults are undone, so a second Ctrl-C cannot cut the
    undo short; yields the names of the signals that arrived meanwhile."""
    held: list[str] = []

    def hold(signum: int, frame: Any) -> None:
        held.append(signal.Signals(signum).name)

    previous = {number: signal.signal(number, hold) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield held
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class _Guard:
    """Aborts the run (chaoslib's graceful exit: rollbacks run) when a guardrail is crossed."""

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
            reason = self._reason()
            if reason:
                self.crossed = {"at_monotonic": time.monotonic(), "reason": reason}
                os.kill(os.getpid(), signal.SIGUSR1)  # chaoslib: SystemExit(20), rollbacks run
                return

    def _reason(self) -> str:
        faults = ledger.open_faults(self._state_dir)
        if not faults:
            return ""
        now = time.monotonic()
        oldest = min(f.applied_monotonic for f in faults)
        limit = self._limits.max_duration_seconds
        if limit is not None and now - oldest > limit:
            return f"fault applied for {now - oldest:.1f} s, guardrail max_duration {limit:g} s"
        limit = self._limits.max_error_ratio
        if limit is None:
            return ""
        window = self._limits.window_seconds
        if now - self._started_monotonic < window:
            return ""  # judge only full windows: an outage seconds into a young run is not the blast radius
        recent = [s for c in self._canaries for s in c.samples() if s["at_monotonic"] >= now - window]
        if not recent:
            return ""
        ratio = sum(1 for s in recent if not s["ok"]) / len(recent)
        if ratio > limit:
            return f"canary error ratio {ratio:.0%} over the last {window:g} s, guardrail {limit:.0%}"
        return ""


_INTERRUPTS: dict[int, Callable[[], BaseException]] = {
    signal.SIGINT: KeyboardInterrupt,
    signal.SIGTERM: Terminated,
    signal.SIGUSR1: lambda: SystemExit(20),  # the guardrail; chaoslib's code for "exit, with rollbacks"
}


class _SignalNotes:
    """chaoslib event handler noting which signal interrupted the run, and making every interrupt
    take effect at once.

    chaoslib's SIGTERM handler raises InterruptExecution, which an activity in progress swallows
    as its own failure (the run goes on); and an activity interrupted by any signal still sleeps
    its ``pauses.after`` before the interrupt unwinds further. So while chaoslib runs, SIGINT,
    SIGTERM and SIGUSR1 raise BaseExceptions, raised again when the activity completes until
    chaoslib has caught one (chaoslib restores its caller's SIGTERM and SIGUSR1 handlers when it
    returns; `_sigterm_unwinds` restores SIGINT).
    """

    def __init__(self) -> None:
        self.signal_name = ""
        self._pending: Callable[[], BaseException] | None = None

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None

    def running(self, experiment, journal, configuration, secrets, schedule, settings) -> None:
        for number in _INTERRUPTS:
            if signal.getsignal(number) is not signal.SIG_IGN:
                signal.signal(number, self._interrupt)

    def _interrupt(self, signum: int, frame: Any) -> None:
        if signum != signal.SIGUSR1:
            self.signal_name = self.signal_name or signal.Signals(signum).name
        self._pending = _INTERRUPTS[signum]
        raise self._pending()

    def activity_completed(self, activity: Any, run: Any) -> None:
        if self._pending is not None:
            raise self._pending()  # skips the activity's pause: chaoslib only catches Exception here

    def interrupted(self, experiment: Any, journal: Any) -> None:
        self._pending = None
        self.signal_name = self.signal_name or "SIGTERM"

    def signal_exit(self) -> None:
        self._pending = None
        self.signal_name = self.signal_name or "SIGINT"


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

    def __init__(self) -> None:
        super().__init__()
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
    a broken system: that is what the record is for)."""
    experiment = loading.load_experiment(experiment_path)
    ensure_target_allowed(context.scenario, context.allow_production)
    ensure_no_open_faults(context.state_dir)
    extension = loading.harness_extension(experiment)
    run_id = new_run_id(context.scenario.name, experiment_path)
    run_dir = context.out_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    with _sigterm_unwinds():
        if context.endpoints is not None:
            return _run_against(
                experiment, experiment_path, extension, context, run_id, run_dir, context.endpoints
            )
        from harness import sandbox

        components = with_failover_manager(context.scenario, extension.get("sandbox_components") or None)
        context.progress(f"sandbox: starting {', '.join(components) if components else 'all components'}")
        with sandbox.up(
            context.scenario, run_dir / "sandbox", components=components, progress=context.progress
        ) as sb:
            return _run_against(
                experiment, experiment_path, extension, context, run_id, run_dir, sb.endpoints
            )


def _run_against(
    experiment: dict[str, Any],
    experiment_path: Path,
    extension: Mapping[str, Any],
    context: RunContext,
    run_id: str,
    run_dir: Path,
    endpoints: Mapping[str, Any],
) -> RunRecord:
    from chaoslib.experiment import run_experiment as chaoslib_run

    canary_settings = extension.get("canary", {})
    rate_hz = (
        parse_frequency(canary_settings["rate"])
        if "rate" in canary_settings
        else context.scenario.canary_rate_hz
    )
    kinds = canary_settings.get("kinds", ["redis"])
    targets = canary_module.targets_from_endpoints(endpoints, kinds)
    configuration = {
        **endpoints,
        "run_dir": str(run_dir),
        "run_id": run_id,
        "harness_state_dir": str(context.state_dir),
        "scenario_path": context.scenario.path,
    }
    os.environ["HARNESS_RUN_ID"] = run_id
    started_wall = time.time()
    started_monotonic = time.monotonic()
    wall_offset = started_wall - started_monotonic
    canaries = [canary_module.Canary(t, rate_hz, run_dir / "canary.jsonl").start() for t in targets]
    watcher = SentinelWatcher(endpoints.get("redis_sentinels", ())).start()
    patroni_watcher = PatroniWatcher(_patroni_urls(endpoints)).start()
    _await_baseline(canaries, context.progress)
    guard = _Guard(context.scenario, canaries, context.state_dir).start()
    notes = _SecretCatcher()
    redacting = _RedactingFilter(notes)
    journal: dict[str, Any] = {}
    extra_events: list[Event] = []
    context.progress(f"running {experiment.get('title', experiment_path.name)}")
    try:
        chaos_logger = logging.getLogger("chaostoolkit")
        chaos_logger.setLevel(logging.ERROR)
        chaos_logger.addFilter(redacting)
        # chaoslib's extra vars only override keys the experiment declares: merge instead.
        merged = {**experiment, "configuration": {**experiment.get("configuration", {}), **configuration}}
        # Rollbacks run whatever happened (chaoslib's default skips them after a failure or an
        # interrupt); faults our actions recorded are also undone from the ledger below.
        journal = chaoslib_run(merged, settings=CHAOSLIB_SETTINGS, event_handlers=[notes])
    finally:
        logging.getLogger("chaostoolkit").removeFilter(redacting)
        with _signals_held() as held:
            guard.stop()
            extra_events.extend(_undo_leftovers(context.state_dir, run_id, started_monotonic))
        time.sleep(SETTLE_SECONDS)
        raw_samples = [s for c in canaries for s in c.stop()]
        raw_events = watcher.stop() + patroni_watcher.stop()
        os.environ.pop("HARNESS_RUN_ID", None)
    ended_monotonic = time.monotonic()
    context.progress("checking acknowledged writes")
    extra_events.extend(_verify_writes(canaries, started_monotonic, rate_hz))
    if guard.crossed:
        extra_events.append(
            Event(
                guard.crossed["at_monotonic"] - started_monotonic,
                "guardrail.crossed",
                "runner",
                guard.crossed,
            )
        )
    if (journal.get("status") == "interrupted" or held) and not guard.crossed:
        signal_name = notes.signal_name or (held[0] if held else "SIGINT")
        extra_events.append(Event(ended_monotonic - started_monotonic, "run.interrupted", "runner",
                                  {"signal": signal_name}))  # fmt: skip
    record = _build_record(
        experiment=experiment,
        experiment_path=experiment_path,
        context=context,
        run_id=run_id,
        journal=journal,
        started_wall=started_wall,
        started_monotonic=started_monotonic,
        duration_seconds=ended_monotonic - started_monotonic,
        wall_offset=wall_offset,
        raw_samples=raw_samples,
        raw_events=raw_events,
        extra_events=extra_events,
        endpoints=endpoints,
    )
    return RunRecord.from_dict(_redact(measures.with_derived(record).to_dict(), notes.secrets))


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
            events.append(
                Event(time.monotonic() - start_monotonic, "writes.unverified", "canary", {"error": str(exc)})
            )
            continue
        events.extend(
            Event(w.at_monotonic - start_monotonic, "write.lost", "canary", {"key": w.key}) for w in lost
        )
        events.append(
            Event(time.monotonic() - start_monotonic, "writes.verified", "canary",
                  {"checked": len(acked), "lost": len(lost), "interval_seconds": 1.0 / rate_hz})
        )  # fmt: skip
    return events


def _build_record(
    *,
    experiment: Mapping[str, Any],
    experiment_path: Path,
    context: RunContext,
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
        scenario=context.scenario.name,
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
        faults=tuple(ledger.fault_records(context.state_dir, started_monotonic, run_id)),
        measurements=tuple(measurements),
        environment={**_versions(), "target": _describe_target(endpoints)},
        journal=json.loads(json.dumps(journal, default=str)),
    )


def _describe_target(endpoints: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "sandbox_dir": endpoints.get("sandbox_dir", ""),
        "regions": sorted(endpoints.get("regions", {})),
        "primary_region": endpoints.get("primary_region", ""),
    }


def _version() -> str:
    try:
        return metadata.version("resilience-harness")
    except metadata.PackageNotFoundError:
        return "0+unknown"
