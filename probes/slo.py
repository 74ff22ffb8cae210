"""SLO measurements from Prometheus over the fault window: error ratio, p99 latency, saturation, burn rates.

The window runs from the first fault this run applied (the ledger's wall time) to 5 s after
the last one was undone (so the scrapes that follow count), or now; without a fault, the last
`window_seconds`. Counters that first appear inside the window count from their first scrape
(Prometheus's `increase`), so errors before it are not seen. The default queries
read the sandbox API's series (``harness_api_requests_total``,
``harness_api_request_duration_seconds``); pass `query` for any other system.

Prometheus unreachable, a failing query or no data → the measurement's value is None with the
reason as evidence: grading calls that unknown, never pass.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from harness import ledger
from harness.errors import ConfigError
from harness.units import parse_duration
from probes._window import missing

__all__ = ["burn_rates", "saturation_ratio", "slo_error_ratio", "slo_p99_latency_seconds"]

QUERY_TIMEOUT_SECONDS = 5
SCRAPE_SETTLE_SECONDS = 5.0  # the fault window runs on this long after the heal (a few scrapes)
# No 5xx series yet means no errors; no request series at all means no data (unknown).
ERROR_RATIO_QUERY = (
    '(sum(increase(harness_api_requests_total{{code=~"5.."}}[{window}])) or vector(0))'
    " / sum(increase(harness_api_requests_total[{window}]))"
)
P99_LATENCY_QUERY = (
    "histogram_quantile(0.99, sum by (le) (rate(harness_api_request_duration_seconds_bucket[{window}])))"
)
SATURATION_QUERY = "max(rate(process_cpu_seconds_total[{window}]))"


def slo_error_ratio(
    query: str | None = None, window_seconds: float = 300.0, configuration: Mapping[str, Any] | None = None
) -> dict:
    """Failed share of requests (0..1) over the fault window; `query` may use `{window}` (e.g. `90s`)."""
    return _instant("slo_error_ratio", "ratio", query or ERROR_RATIO_QUERY, window_seconds, configuration)


def slo_p99_latency_seconds(
    query: str | None = None, window_seconds: float = 300.0, configuration: Mapping[str, Any] | None = None
) -> dict:
    """99th percentile request latency (seconds) over the fault window, from a histogram."""
    return _instant(
        "slo_p99_latency_seconds", "seconds", query or P99_LATENCY_QUERY, window_seconds, configuration
    )


def saturation_ratio(
    query: str | None = None,
    limit_ratio: float | None = None,
    window_seconds: float = 300.0,
    measure: str = "cpu_saturation_ratio",
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Saturation (0..1; by default the busiest process's CPU share of one core) over the fault
    window, reported as `measure`; `limit_ratio` adds `within_limit` (None when there is no value)."""
    result = _instant(measure, "ratio", query or SATURATION_QUERY, window_seconds, configuration)
    if limit_ratio is not None:
        value = result["value"]
        result["within_limit"] = None if value is None else value <= limit_ratio
    return result


def burn_rates(
    slo_ratio: float = 0.999,
    windows: Sequence[str] = ("5m", "1h"),
    query: str | None = None,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Error-budget burn rate per window (error ratio ÷ (1 - `slo_ratio`)); 1 spends the budget exactly.

    Windows are durations ending now (`5m`, `1h`, `6h`). Measurements are named
    `burn_rate_<seconds>s_ratio`; `burning` says whether every window burns above 1
    (the multi-window alert condition), None when a window has no value.
    """
    if isinstance(slo_ratio, bool) or not isinstance(slo_ratio, int | float) or not 0 < slo_ratio < 1:
        raise ConfigError("arguments", "slo_ratio", f"expected a ratio between 0 and 1, got {slo_ratio!r}")
    budget = 1 - slo_ratio
    measurements, rates = [], []
    for index, window in enumerate(windows):
        try:
            seconds = parse_duration(window)
        except ValueError as exc:
            raise ConfigError("arguments", f"windows.{index}", str(exc)) from None
        name = f"burn_rate_{round(seconds)}s_ratio"
        promql = (query or ERROR_RATIO_QUERY).format(window=_promql_duration(seconds))
        try:
            value = _query(configuration or {}, promql, time.time())
        except ConnectionError as exc:
            measurements.append(missing(name, "ratio", "prometheus", str(exc)))
            rates.append(None)
            continue
        if value is None:
            measurements.append(missing(name, "ratio", "prometheus", f"no data for {promql}"))
            rates.append(None)
            continue
        rate = value / budget
        rates.append(rate)
        measurements.append(
            {"name": name, "value": rate, "unit": "ratio", "source": "prometheus", "lower_bound": False,
             "evidence": f"error ratio {value:.4%} over {window} against a budget of {budget:.4%}"}
        )  # fmt: skip
    burning = None if any(r is None for r in rates) else all(r > 1 for r in rates)
    return {"measurements": measurements, "burning": burning}


# ---------------------------------------------------------------- Prometheus access


def range_values(
    configuration: Mapping[str, Any], promql: str, window_seconds: float, step_seconds: float = 1.0
) -> list[tuple[float, float]]:
    """(monotonic time, value) points of `promql` over the last `window_seconds`, every `step_seconds`.

    Points of every series returned are merged in time order. Raises ConnectionError when
    Prometheus is unreachable or refuses the query.
    """
    client = _client(configuration)
    end = time.time()
    offset = time.monotonic() - end  # wall → monotonic for the samples
    try:
        series = client.custom_query_range(
            promql,
            start_time=datetime.fromtimestamp(end - window_seconds, UTC),
            end_time=datetime.fromtimestamp(end, UTC),
            step=f"{step_seconds:g}s",
        )
    except Exception as exc:
        raise ConnectionError(f"prometheus at {client.url}: {type(exc).__name__}: {exc}"[:300]) from None
    finally:
        client.close()
    points = [
        (float(at) + offset, float(value))
        for item in series
        for at, value in item.get("values", [])
        if math.isfinite(float(value))
    ]
    return sorted(points)


def _client(configuration: Mapping[str, Any]) -> Any:
    from prometheus_api_client import PrometheusConnect
    from urllib3.util.retry import Retry

    url = configuration.get("prometheus_url")
    if not url:
        raise ConfigError(
            "configuration", "prometheus_url", "expected the Prometheus base URL (sandbox endpoints.json)"
        )
    return PrometheusConnect(url=url, timeout=QUERY_TIMEOUT_SECONDS, retry=Retry(total=1, backoff_factor=0.1))


def _query(configuration: Mapping[str, Any], promql: str, at_wall: float) -> float | None:
    """The value of an instant query at `at_wall` (the largest, if several series); None: no data."""
    client = _client(configuration)
    try:
        result = client.custom_query(promql, params={"time": f"{at_wall:.3f}"})
    except Exception as exc:
        raise ConnectionError(f"prometheus at {client.url}: {type(exc).__name__}: {exc}"[:300]) from None
    finally:
        client.close()
    values = [float(item["value"][1]) for item in result if "value" in item]
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) if finite else None


def _promql_duration(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds))}s"


def fault_window(configuration: Mapping[str, Any], window_seconds: float) -> tuple[float, float, str]:
    """(start, end) wall times of this run's faults, or the last `window_seconds`; and how it was chosen."""
    run_id = configuration.get("run_id")
    applied: dict[str, float] = {}
    undone: dict[str, float] = {}
    for entry in ledger.read_entries(ledger.state_dir(configuration)):
        if entry.get("event") == "applied" and (not run_id or entry.get("run_id") in (run_id, "")):
            applied[entry["fault_id"]] = entry["wall"]
        elif entry.get("event") == "undone":
            undone[entry["fault_id"]] = entry["wall"]
    now = time.time()
    if run_id and applied:
        start = min(applied.values())
        still_open = any(fault not in undone for fault in applied)
        # Requests answered just before the heal are scraped after it: extend the window a little.
        end = now if still_open else min(now, max(undone[f] for f in applied) + SCRAPE_SETTLE_SECONDS)
        return start, end, f"fault window of run {run_id}"
    return now - window_seconds, now, f"last {window_seconds:g} s"


def _instant(
    name: str, unit: str, template: str, window_seconds: float, configuration: Mapping[str, Any] | None
) -> dict:
    configuration = configuration or {}
    if not 0 < window_seconds <= 86400 * 31:
        raise ConfigError(
            "arguments", "window_seconds", f"expected 0 < seconds ≤ 31 days, got {window_seconds!r}"
        )
    start, end, how = fault_window(configuration, window_seconds)
    promql = template.format(window=_promql_duration(end - start))
    base = {"query": promql, "window_start_wall": start, "window_end_wall": end}
    try:
        value = _query(configuration, promql, end)
    except ConnectionError as exc:
        return {**base, "value": None, "measurements": [missing(name, unit, "prometheus", str(exc))]}
    if value is None:
        evidence = f"no data for {promql} ({how})"
        return {**base, "value": None, "measurements": [missing(name, unit, "prometheus", evidence)]}
    measurement = {"name": name, "value": value, "unit": unit, "source": "prometheus", "lower_bound": False,
                   "evidence": f"{promql} = {value:.6g} ({how})"}  # fmt: skip
    return {**base, "value": value, "measurements": [measurement]}
