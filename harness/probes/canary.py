"""The client-side canary as Chaos Toolkit probes, for experiments run with plain `chaos run`.

The harness runner runs canaries alongside every experiment by itself; these probes give a
plain `chaos run` the same measurements. Each request is timestamped with the monotonic clock,
so an outage is resolved to the loop's interval (50 ms at 20 Hz), not a scrape interval.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.canary import REQUEST_TIMEOUT_SECONDS, Canary, targets_from_endpoints
from harness.errors import ConfigError
from harness.model import Sample
from harness.probes import _cancel
from harness.probes._window import derived, faults_in_window, window_record

__all__ = ["canary_healthy", "canary_samples", "read_canary_log"]

MEASURES = ("failover_seconds", "rto_seconds", "error_ratio", "canary_p99_latency_seconds")
_HEALTH_CHECK_SECONDS = 0.3


def canary_samples(
    duration_seconds: float,
    kinds: Sequence[str] = ("redis",),
    rate_hz: float = 20.0,
    timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Run the canary for `duration_seconds` (meant for `background: true`) and measure the outage.

    One write-then-read per tick per target (`kinds`: redis through Sentinel, http per region,
    postgres on the primary); a request slower than `timeout_seconds` fails. Appends every
    sample to `<run_dir>/canary.jsonl` when run_dir is configured. Returns `samples` and
    `measurements` (failover_seconds, rto_seconds, error_ratio, canary_p99_latency_seconds)
    timed against the faults the ledger recorded meanwhile.
    """
    if not 0 < duration_seconds <= 3600:
        raise ConfigError(
            "arguments", "duration_seconds", f"expected 0 < seconds ≤ 3600, got {duration_seconds!r}"
        )
    if not 0 < rate_hz <= 200:
        raise ConfigError("arguments", "rate_hz", f"expected 0 < Hz ≤ 200, got {rate_hz!r}")
    targets = _targets(configuration, kinds)
    run_dir = (configuration or {}).get("run_dir")
    log_path = Path(run_dir) / "canary.jsonl" if run_dir else None
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    canaries = [
        Canary(t, rate_hz, log_path, timeout_seconds, max_duration_seconds=duration_seconds) for t in targets
    ]
    started = time.monotonic()
    for canary in canaries:
        canary.start()
    try:
        _cancel.wait(duration_seconds, configuration)  # an interrupted run stops it within 0.1 s
    finally:
        samples = [sample for canary in canaries for sample in canary.stop()]
    ended = time.monotonic()
    record = window_record(
        "canary",
        started,
        ended,
        samples=(Sample.from_raw(s, started) for s in samples),
        faults=faults_in_window(configuration, started, ended),
    )
    return {"samples": samples, "measurements": derived(record, MEASURES), "requests": len(samples)}


def canary_healthy(
    kinds: Sequence[str] = ("redis",),
    timeout_seconds: float = 2.0,
    configuration: Mapping[str, Any] | None = None,
) -> bool:
    """True when every canary target answers write-then-read for 0.3 s, each within `timeout_seconds`.

    The generous default timeout lets a region behind a long link open its connections.
    """
    canaries = [
        Canary(t, 20.0, timeout_seconds=timeout_seconds, max_duration_seconds=_HEALTH_CHECK_SECONDS)
        for t in _targets(configuration, kinds)
    ]
    for canary in canaries:
        canary.start()
    time.sleep(_HEALTH_CHECK_SECONDS)
    samples = [sample for canary in canaries for sample in canary.stop()]
    return bool(samples) and all(s["ok"] for s in samples)


def read_canary_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every canary sample written to `<run_dir>/canary.jsonl` so far, oldest first per canary.

    A line being written while this reads (torn, not yet JSON) is skipped.
    """
    path = Path(run_dir) / "canary.jsonl"
    if not path.exists():
        return []
    samples = []
    for line in path.read_text().splitlines():
        try:
            samples.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return samples


def _targets(configuration: Mapping[str, Any] | None, kinds: Sequence[str]) -> list:
    if isinstance(kinds, str) or not kinds or any(k not in ("redis", "http", "postgres") for k in kinds):
        raise ConfigError("arguments", "kinds", f"expected a list of redis, http, postgres; got {kinds!r}")
    targets = targets_from_endpoints(configuration or {}, kinds)
    if not targets:
        raise ConfigError(
            "configuration",
            "regions",
            f"no endpoint for canary kinds {list(kinds)} (sandbox endpoints.json keys)",
        )
    return targets
