"""Failover probes: how long clients saw the primary gone, and who took over.

`failover_time` waits (bounded) until the canary has recovered from the latest fault, so a
method can continue as soon as the system has failed over instead of sleeping a fixed time.
Its figure uses the same formula the scorer derives from the run record (harness.measures).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from chaoslib.exceptions import ActivityFailed

from harness import ledger, measures, primaries
from harness.canary import Canary, targets_from_endpoints
from harness.errors import ConfigError
from harness.model import Event, FaultRecord, Measurement, Sample
from harness.probes._window import derived, faults_in_window, window_record
from harness.probes.canary import read_canary_log
from harness.watchers import SentinelWatcher

__all__ = ["current_primary", "failover_time", "failover_timeline"]

_POLL_SECONDS = 0.05
_QUIET_SECONDS = 3.0  # no failure this long after the fault: the fault caused no outage


def _latest_fault_monotonic(configuration: Mapping[str, Any]) -> float | None:
    faults = ledger.fault_records(ledger.state_dir(configuration), 0.0, configuration.get("run_id") or None)
    return max((f.applied_at_seconds for f in faults), default=None)  # from origin 0: monotonic time


def _window_samples(samples: list[dict[str, Any]], fault_at: float) -> list[Sample]:
    return [Sample.from_raw(s, fault_at) for s in samples if s.get("probe") == "canary"]


def _failover(samples: list[dict[str, Any]], fault_at: float) -> Measurement | None:
    canary = _window_samples(samples, fault_at)
    ended = max((s["at_monotonic"] for s in samples), default=fault_at)
    fault = FaultRecord("probe", "latest fault", "", 0.0)
    return measures.failover_seconds(window_record("failover_time", fault_at, ended, canary, faults=(fault,)))


def _is_recovered(samples: list[dict[str, Any]], fault_at: float) -> bool:
    """Whether every region that failed after the fault has recovered, by harness.measures' rule
    (the answer of the first of RECOVERY_SUCCESSES consecutive successes)."""
    windows = measures.outage_windows(_window_samples(samples, fault_at), fault_at=0.0)
    first: dict[str, measures.Window] = {}
    for window in windows:
        first.setdefault(window.region, window)
    return bool(first) and all(w.end_seconds is not None for w in first.values())


def failover_time(
    timeout_seconds: float = 60.0, configuration: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Wait until the canary recovers from the latest fault (at most `timeout_seconds`); returns
    `failover_seconds` (harness.measures: the longest region's outage, from its first failed
    request to the answer of the first of 3 consecutive successes; None with the reason in
    `evidence` when the canary saw no failure or has gaps) and whether it is a `lower_bound`."""
    configuration = configuration or {}
    run_dir = configuration.get("run_dir")
    if not run_dir:
        raise ActivityFailed("failover_time needs run_dir in the configuration (where the canary writes)")
    fault_at = _latest_fault_monotonic(configuration) or time.monotonic()
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        samples = read_canary_log(run_dir)
        if _is_recovered(samples, fault_at):
            break
        after = [s for s in samples if s["at_monotonic"] + (s.get("latency_seconds") or 0.0) >= fault_at]
        if all(s["ok"] for s in after) and after and after[-1]["at_monotonic"] - fault_at >= _QUIET_SECONDS:
            break
        time.sleep(_POLL_SECONDS)
    else:
        raise ActivityFailed(f"the canary did not recover within {timeout_seconds:g} s of the fault")
    measurement = _failover(read_canary_log(run_dir), fault_at)
    return {
        "failover_seconds": measurement.value if measurement else None,
        "evidence": measurement.evidence if measurement else "no canary samples",
        "lower_bound": bool(measurement and measurement.lower_bound),
    }


# ---------------------------------------------------------------- who is primary, and the whole story


def current_primary(service: str = "redis", configuration: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Which server is the primary now: `{"address": "127.0.0.1:P", "region": ...}`.

    Redis: as the Sentinels name it. PostgreSQL: the region whose server is not in recovery.
    Raises ActivityFailed when no primary can be found.
    """
    configuration = configuration or {}
    found = _primary(service, configuration)
    if found is None:
        raise ActivityFailed(f"no {service} primary found (Sentinels or servers unreachable)")
    return {"address": found[0], "region": found[1]}


def failover_timeline(
    duration_seconds: float,
    kinds: Sequence[str] = ("redis",),
    rate_hz: float = 20.0,
    role_poll_seconds: float = 0.1,
    configuration: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Watch a failover for `duration_seconds` (run with `background: true`, before the fault).

    Runs its own canary (`kinds`, `rate_hz`), listens to every Sentinel and polls who the
    primary is every `role_poll_seconds`. Returns `measurements` (failover_seconds,
    detection_seconds, promotion_seconds, error_ratio) timed against the ledger's faults,
    plus `primary_before`, `primary_after`, `events` and the number of canary `requests` (the
    samples stay out of the output: the runner records its own canary).
    """
    configuration = configuration or {}
    if not 0 < duration_seconds <= 3600:
        raise ConfigError(
            "arguments", "duration_seconds", f"expected 0 < seconds ≤ 3600, got {duration_seconds!r}"
        )
    services = [k for k in kinds if k in ("redis", "postgres")]
    canaries = [
        Canary(t, rate_hz, max_duration_seconds=duration_seconds)
        for t in targets_from_endpoints(configuration, kinds)
    ]
    watcher = SentinelWatcher(configuration.get("redis_sentinels", []), max_duration_seconds=duration_seconds)
    before = {service: _primary(service, configuration) for service in services}
    roles: list[dict[str, Any]] = []
    started = time.monotonic()
    watcher.start()
    for canary in canaries:
        canary.start()
    try:
        roles = _watch_roles(services, before, configuration, started + duration_seconds, role_poll_seconds)
    finally:
        samples = [s for canary in canaries for s in canary.stop()]
        sentinel_events = watcher.stop()
    ended = time.monotonic()
    events = sentinel_events + roles
    record = window_record(
        "failover",
        started,
        ended,
        samples=(Sample.from_raw(s, started) for s in samples),
        events=(Event.from_raw(e, started) for e in events),
        faults=faults_in_window(configuration, started, ended),
    )
    after = {service: _primary(service, configuration) for service in services}
    return {
        "measurements": derived(
            record, ("failover_seconds", "detection_seconds", "promotion_seconds", "error_ratio")
        ),
        "primary_before": {s: _described(p) for s, p in before.items()},
        "primary_after": {s: _described(p) for s, p in after.items()},
        "events": sorted(events, key=lambda e: e["at_monotonic"]),
        "requests": len(samples),
    }


def _described(primary: tuple[str, str] | None) -> dict[str, str] | None:
    return None if primary is None else {"address": primary[0], "region": primary[1]}


def _watch_roles(
    services: Sequence[str],
    before: Mapping[str, tuple[str, str] | None],
    configuration: Mapping[str, Any],
    deadline: float,
    poll_seconds: float,
) -> list[dict[str, Any]]:
    """Poll the primaries until `deadline`; one event each time a different server is primary."""
    current = dict(before)
    events = []
    while time.monotonic() < deadline:
        for service in services:
            now = _primary(service, configuration)
            if now is not None and now != current[service]:
                events.append(
                    {
                        "kind": f"{service}.promoted",
                        "source": "role poll",
                        "at_monotonic": time.monotonic(),
                        "detail": {
                            "new_primary": now[0],
                            "region": now[1],
                            "old_primary": current[service][0] if current[service] else "",
                            # Polled: the change happened up to one interval before it was seen.
                            "exact": False,
                            "poll_interval_seconds": poll_seconds,
                        },
                    }
                )
                current[service] = now
        time.sleep(max(0.0, min(poll_seconds, deadline - time.monotonic())))
    return events


def _primary(service: str, configuration: Mapping[str, Any]) -> tuple[str, str] | None:
    """(address, region) of the primary now, or None when nobody can tell (harness.primaries)."""
    if service == "redis":
        found = primaries.redis_primary(configuration, timeout_seconds=0.5)
    elif service == "postgres":
        found = primaries.postgres_primary(configuration)
    else:
        raise ConfigError("arguments", "service", f"expected redis or postgres, got {service!r}")
    return None if found is None else (found.address, found.region)
