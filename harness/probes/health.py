"""HTTP health checks the way a load balancer runs them: interval, timeout, failure threshold."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness.errors import ConfigError
from harness.probes import _cancel

__all__ = ["api_healthy", "health_checks"]

HEALTH_PATH = "/api/v1/health"


def api_healthy(
    region: str | None = None,
    path: str = HEALTH_PATH,
    timeout_seconds: float = 5.0,
    configuration: Mapping[str, Any] | None = None,
) -> bool:
    """True when `region`'s API (every region's, if None) answers `path` with 2xx within `timeout_seconds`."""
    urls = _urls(configuration, [region] if region else None, path)
    return all(_check(url, timeout_seconds)[0] for url in urls.values())


def health_checks(
    duration_seconds: float,
    interval_seconds: float = 30.0,
    timeout_seconds: float = 5.0,
    failure_threshold: int = 3,
    regions: Sequence[str] | None = None,
    path: str = HEALTH_PATH,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Check every region's API each `interval_seconds` for `duration_seconds` (for `background: true`).

    A region is declared down after `failure_threshold` consecutive failures (no 2xx within
    `timeout_seconds`) and up again at its next success. Returns within 0.1 s of a stop request
    (an interrupted run), plus a check in flight. Returns `samples` (probe `health`,
    value: response seconds), `transitions` per region and the measurement
    health_declared_down_seconds: the longest time any region was declared down (a lower bound
    when still down at the end).
    """
    if not 0 < interval_seconds <= duration_seconds <= 86400:
        raise ConfigError(
            "arguments",
            "interval_seconds",
            f"expected 0 < interval ≤ duration ≤ 1 day, got {interval_seconds!r}",
        )
    if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int) or failure_threshold < 1:
        raise ConfigError(
            "arguments", "failure_threshold", f"expected a whole number ≥ 1, got {failure_threshold!r}"
        )
    urls = _urls(configuration, regions, path)
    samples: list[dict[str, Any]] = []
    failures = dict.fromkeys(urls, 0)
    down_since: dict[str, float | None] = dict.fromkeys(urls)
    transitions: dict[str, list[dict[str, Any]]] = {region: [] for region in urls}
    longest, longest_region = 0.0, ""
    deadline = time.monotonic() + duration_seconds
    next_check = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        while next_check < deadline:
            at = time.monotonic()
            results = dict(
                zip(urls, pool.map(lambda url: _check(url, timeout_seconds), urls.values()), strict=True)
            )
            for region, (ok, seconds, error) in results.items():
                samples.append(
                    {"probe": "health", "region": region, "at_monotonic": at, "ok": ok,
                     "value": seconds if ok else None, "latency_seconds": seconds, "error": error}
                )  # fmt: skip
                failures[region] = 0 if ok else failures[region] + 1
                since = down_since[region]
                if since is None and failures[region] >= failure_threshold:
                    down_since[region] = at
                    transitions[region].append({"state": "down", "at_monotonic": at})
                elif since is not None and ok:
                    down_since[region] = None
                    transitions[region].append({"state": "up", "at_monotonic": at})
                    if at - since > longest:
                        longest, longest_region = at - since, region
            next_check += interval_seconds
            if _cancel.wait(min(next_check, deadline) - time.monotonic(), configuration):
                break  # the run was interrupted: report what was seen so far
    ended = time.monotonic()
    still_down = {r: ended - s for r, s in down_since.items() if s is not None}
    for region, seconds in still_down.items():
        if seconds > longest:
            longest, longest_region = seconds, region
    evidence = (
        f"{longest_region} declared down for {longest:.3f} s"
        + (" and still down" if longest_region in still_down else "")
        if longest_region
        else f"no region reached {failure_threshold} consecutive failures"
    )
    measurement = {"name": "health_declared_down_seconds", "value": longest, "unit": "seconds",
                   "source": "health", "evidence": evidence, "lower_bound": bool(still_down)}  # fmt: skip
    return {"samples": samples, "transitions": transitions, "measurements": [measurement]}


def _urls(
    configuration: Mapping[str, Any] | None, regions: Sequence[str] | None, path: str
) -> dict[str, str]:
    known = {
        r: info["api_url"]
        for r, info in (configuration or {}).get("regions", {}).items()
        if info.get("api_url")
    }
    if not known:
        raise ConfigError("configuration", "regions", "expected an api_url in at least one region")
    wanted = list(regions) if regions else list(known)
    unknown = [r for r in wanted if r not in known]
    if unknown:
        raise ConfigError(
            "arguments", "regions", f"no api_url for {unknown} (regions with one: {sorted(known)})"
        )
    return {region: known[region].rstrip("/") + path for region in wanted}


def _check(url: str, timeout_seconds: float) -> tuple[bool, float, str]:
    """(2xx?, response seconds, error) for one GET."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout_seconds) as response:
            response.read()
            return 200 <= response.status < 300, time.monotonic() - started, ""
    except urllib.error.HTTPError as error:
        return False, time.monotonic() - started, f"HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return False, time.monotonic() - started, f"{type(error).__name__}: {error}"[:200]
