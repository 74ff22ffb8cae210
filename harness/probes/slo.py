"""SLO measurements from Prometheus over the fault window: error ratio, p99 latency, saturation, burn rates.

The fault window runs from the first fault this run applied (the ledger's wall time; load is not
a fault) to when the last one was undone, or now. Without a fault, the last `window_seconds`.

* `slo_error_ratio`: user requests answered 5xx ÷ user requests in the worst region, from the
  counters' raw samples scraped inside the window (exact counts of requests answered during it;
  up to one scrape interval at each edge is not seen). The sandbox API creates every (route,
  code) series at 0 when it starts, and ``/metrics`` and ``/api/v1/health`` (routes ``metrics``
  and ``health``) are not user requests.
* `cpu_saturation_ratio`: CPU seconds per second used by the system under test's server processes
  (process-exporter) ÷ the cores of their host (node_exporter), over the window, the busiest
  host's. Never a figure for Prometheus, the exporters or the load generator: without those
  series it is unknown.

Prometheus unreachable, a failing query or no data → the measurement's value is None with the
reason as evidence: grading calls that unknown, never pass.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from harness import ledger
from harness.errors import ConfigError
from harness.probes import _cancel
from harness.probes._window import missing
from harness.units import parse_duration

__all__ = ["burn_rates", "saturation_ratio", "slo_error_ratio", "slo_p99_latency_seconds"]

QUERY_TIMEOUT_SECONDS = 5
SCRAPE_SECONDS = 1.0  # the sandbox's scrape interval: a counter read this long after a moment has seen it
_SETTLE_SECONDS = 0.5  # and a little more, for the scrape to be stored
# User requests of the sandbox API: every route but the scrape and the health checks.
REQUESTS_SELECTOR = 'harness_api_requests_total{route!~"metrics|health"}'
ERRORS_SELECTOR = 'harness_api_requests_total{route!~"metrics|health",code=~"5.."}'
# Rate form, for burn rates over windows ending now (the API's series exist from its start).
ERROR_RATIO_QUERY = (
    f"(sum(increase({ERRORS_SELECTOR}[{{window}}])) or vector(0))"
    f" / sum(increase({REQUESTS_SELECTOR}[{{window}}]))"
)
P99_LATENCY_QUERY = (
    "histogram_quantile(0.99, sum by (le) "
    '(rate(harness_api_request_duration_seconds_bucket{route!~"metrics|health"}[{window}])))'
)
# CPU, per host: node_exporter and process-exporter run on each host under their own ports, so
# series are matched on the host part of `instance`.
_BY_HOST = 'label_replace({series}, "host", "$1", "instance", "(.*):[0-9]+")'
CORES_QUERY = "count by (host) (" + _BY_HOST.format(series='node_cpu_seconds_total{mode="idle"}') + ")"
HOST_CPU_QUERY = (
    "sum by (host) ("
    + _BY_HOST.format(series='rate(node_cpu_seconds_total{mode!~"idle|iowait|steal"}[{window}])')
    + ") / on (host) "
    + CORES_QUERY
)
SUT_CPU_QUERY = (
    "sum by (host) ("
    + _BY_HOST.format(series="rate(namedprocess_namegroup_cpu_seconds_total[{window}])")
    + ") / on (host) "
    + CORES_QUERY
)
PROCESS_CPU_QUERY = (
    "sum by (host, groupname) ("
    + _BY_HOST.format(series="rate(namedprocess_namegroup_cpu_seconds_total[{window}])")
    + ") / on (host) group_left "
    + CORES_QUERY
)


def slo_error_ratio(
    query: str | None = None,
    window_seconds: float = 300.0,
    requests: str = REQUESTS_SELECTOR,
    errors: str = ERRORS_SELECTOR,
    configuration: Mapping[str, Any] | None = None,
) -> dict:
    """Share of user requests answered 5xx (0..1) over the fault window, from counter values.

    `requests` and `errors` select counters (by default the sandbox API's user requests and
    their 5xx). Their increase per series between the first and the last scrape inside the
    window gives exact counts of requests answered during it (up to one scrape interval at each
    edge unseen); a series born inside the window counts from 0, a counter reset inside the
    window makes the ratio unknown. The value is the worst region's ratio (regions
    with no user request in the window are left out; none at all is unknown), per-region
    ratios are `samples`. `query` instead evaluates one ratio PromQL (which may use `{window}`,
    e.g. `90s`) at the window's end.
    """
    configuration = configuration or {}
    _check_window(window_seconds)
    if query is not None:
        return _instant("slo_error_ratio", "ratio", query, window_seconds, configuration)
    start, end, how = fault_window(configuration, window_seconds)
    base = {"query": f"{errors} / {requests}", "window_start_wall": start, "window_end_wall": end}
    if _cancel.wait(end + _SETTLE_SECONDS - time.time(), configuration):
        evidence = "cancelled before the window's last scrape"
        return {
            **base,
            "value": None,
            "measurements": [missing("slo_error_ratio", "ratio", "prometheus", evidence)],
        }
    try:
        total = _increase(configuration, requests, start, end)
        failed = _increase(configuration, errors, start, end)
    except (ConnectionError, ValueError) as exc:
        return {
            **base,
            "value": None,
            "measurements": [missing("slo_error_ratio", "ratio", "prometheus", str(exc))],
        }
    per_region: dict[str, list[float]] = {}
    for labels, count in total.items():
        per_region.setdefault(dict(labels).get("region", ""), [0.0, 0.0])[1] += count
    for labels, count in failed.items():
        per_region.setdefault(dict(labels).get("region", ""), [0.0, 0.0])[0] += count
    served = {region: (e, n) for region, (e, n) in per_region.items() if n > 0}
    if not served and not total:
        evidence = (
            f"fewer than two scrapes of {requests} inside the fault window ({end - start:.3f} s): "
            f"Prometheus cannot count its requests ({how})"
        )
        return {
            **base,
            "value": None,
            "measurements": [missing("slo_error_ratio", "ratio", "prometheus", evidence)],
        }
    if not served:
        evidence = f"no user request counted by {requests} in the window ({how})"
        return {
            **base,
            "value": None,
            "measurements": [missing("slo_error_ratio", "ratio", "prometheus", evidence)],
        }
    # The worst region, as the canary's error_ratio (its witness) is: a region cut off is the blast
    # radius, not diluted by the regions that were fine.
    worst_region, (errors_count, requests_count) = max(
        served.items(), key=lambda item: item[1][0] / item[1][1]
    )
    ratio = errors_count / requests_count
    offset = time.monotonic() - time.time()
    samples = [
        {"probe": "slo_error_ratio", "at_monotonic": start + offset, "value": e / n, "ok": True,
         "region": region, "error": ""}
        for region, (e, n) in sorted(served.items())
    ]  # fmt: skip
    detail = ", ".join(f"{region or '?'} {e:g}/{n:g}" for region, (e, n) in sorted(served.items()))
    evidence = (
        f"worst region {worst_region or '?'}: {errors_count:g} of {requests_count:g} user requests answered "
        f"5xx (all regions: {detail}; {how})"
    )
    measurement = {"name": "slo_error_ratio", "value": ratio, "unit": "ratio", "source": "prometheus",
                   "evidence": evidence, "lower_bound": False}  # fmt: skip
    return {**base, "value": ratio, "samples": samples, "measurements": [measurement]}


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
    """CPU saturation (0..1) of the system under test over the fault window, reported as `measure`.

    By default: the CPU seconds per second the system under test's server processes use
    (process-exporter groups), ÷ the cores of their host (node_exporter); the value is the
    busiest host's. Also returns per host the SUT's share (`hosts`) and everything's
    (`hosts_busy`, the machine including other programs), per process group (`process_groups`),
    and all as `samples` (probe `cpu_saturation`). Without either exporter's series the value is
    None (unknown), never another process's figure. `query` replaces the graded query (may use
    `{window}`). `limit_ratio` adds `within_limit` (None when there is no value).
    """
    configuration = configuration or {}
    _check_window(window_seconds)
    start, end, how = fault_window(configuration, window_seconds)
    window = _promql_duration(end - start)
    graded = (query or SUT_CPU_QUERY).replace("{window}", window)
    base: dict[str, Any] = {"query": graded, "window_start_wall": start, "window_end_wall": end}
    result: dict[str, Any]
    if _cancel.wait(end + SCRAPE_SECONDS + _SETTLE_SECONDS - time.time(), configuration):
        result = {
            **base,
            "value": None,
            "measurements": [missing(measure, "ratio", "prometheus", "cancelled")],
        }
    else:
        try:
            sut = _vector(configuration, graded, end)
            busy = {} if query else _vector(configuration, HOST_CPU_QUERY.replace("{window}", window), end)
            groups = (
                {} if query else _vector(configuration, PROCESS_CPU_QUERY.replace("{window}", window), end)
            )
        except ConnectionError as exc:
            sut, busy, groups, problem = {}, {}, {}, str(exc)
        else:
            problem = (
                f"no data for {graded}: the system under test's CPU is not measured (needs node_exporter "
                "for the cores and process-exporter for its server processes)"
            )
        result = _saturation(measure, base, sut, busy, groups, problem, how, start)
    if limit_ratio is not None:
        value = result["value"]
        result["within_limit"] = None if value is None else value <= limit_ratio
    return result


def _saturation(
    measure: str,
    base: dict[str, Any],
    sut: Mapping[tuple[tuple[str, str], ...], float],
    busy: Mapping[tuple[tuple[str, str], ...], float],
    groups: Mapping[tuple[tuple[str, str], ...], float],
    problem: str,
    how: str,
    start_wall: float,
) -> dict[str, Any]:
    def host(labels: tuple[tuple[str, str], ...]) -> str:
        found = dict(labels)
        return found.get("host") or found.get("instance") or "host"

    by_host = {host(labels): value for labels, value in sut.items()}
    busy_host = {host(labels): value for labels, value in busy.items()}
    by_group = {dict(labels).get("groupname", "?"): value for labels, value in groups.items()}
    offset = time.monotonic() - time.time()
    samples = [
        {"probe": "cpu_saturation", "at_monotonic": start_wall + offset, "value": value, "ok": True,
         "region": name, "error": ""}
        for name, value in (*sorted(by_host.items()), *sorted(by_group.items()))
    ]  # fmt: skip
    output = {
        **base,
        "hosts": by_host,
        "hosts_busy": busy_host,
        "process_groups": by_group,
        "samples": samples,
    }
    if not by_host:
        return {**output, "value": None, "measurements": [missing(measure, "ratio", "prometheus", problem)]}
    name, value = max(by_host.items(), key=lambda item: item[1])
    busiest = sorted(by_group.items(), key=lambda item: -item[1])[:3]
    processes = ", ".join(f"{group} {share:.1%}" for group, share in busiest)
    machine = (
        f"; the host, everything on it included, {busy_host[name]:.1%} busy" if name in busy_host else ""
    )
    evidence = (
        f"system under test: its server processes use {value:.1%} of host {name}'s cores"
        + (f" (busiest: {processes})" if processes else "")
        + f"{machine} ({how})"
    )
    measurement = {"name": measure, "value": value, "unit": "ratio", "evidence": evidence,
                   "source": "prometheus (system under test)", "lower_bound": False}  # fmt: skip
    return {**output, "value": value, "measurements": [measurement]}


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
        promql = (query or ERROR_RATIO_QUERY).replace("{window}", _promql_duration(seconds))
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
    end = time.time()
    offset = time.monotonic() - end  # wall → monotonic for the samples
    series = _ask(
        configuration,
        lambda client: client.custom_query_range(
            promql,
            start_time=datetime.fromtimestamp(end - window_seconds, UTC),
            end_time=datetime.fromtimestamp(end, UTC),
            step=f"{step_seconds:g}s",
        ),
    )
    points = [
        (float(at) + offset, float(value))
        for item in series
        for at, value in item.get("values", [])
        if math.isfinite(float(value))
    ]
    return sorted(points)


def _ask(configuration: Mapping[str, Any], question: Callable[[Any], Any]) -> Any:
    """What `question(client)` returns from a fresh Prometheus client; ConnectionError when
    Prometheus is unreachable or refuses the query."""
    client = _client(configuration)
    try:
        return question(client)
    except Exception as exc:
        raise ConnectionError(f"prometheus at {client.url}: {type(exc).__name__}: {exc}"[:300]) from None
    finally:
        client.close()


def _instant_result(configuration: Mapping[str, Any], promql: str, at_wall: float) -> list[dict[str, Any]]:
    """The raw result of an instant query evaluated at `at_wall`."""
    return _ask(configuration, lambda client: client.custom_query(promql, params={"time": f"{at_wall:.3f}"}))


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
    result = _instant_result(configuration, promql, at_wall)
    values = [float(item["value"][1]) for item in result if "value" in item]
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) if finite else None


def range_series(
    configuration: Mapping[str, Any],
    promql: str,
    start_wall: float,
    end_wall: float,
    step_seconds: float = 1.0,
) -> list[tuple[dict[str, str], dict[float, float]]]:
    """Each series of `promql` over [start, end]: (labels, {wall time: value}).

    Raises ConnectionError when Prometheus is unreachable or refuses the query.
    """
    series = _ask(
        configuration,
        lambda client: client.custom_query_range(
            promql,
            start_time=datetime.fromtimestamp(start_wall, UTC),
            end_time=datetime.fromtimestamp(max(end_wall, start_wall), UTC),
            step=f"{step_seconds:g}s",
        ),
    )
    return [
        (
            dict(item.get("metric", {})),
            {float(at): float(value) for at, value in item.get("values", []) if math.isfinite(float(value))},
        )
        for item in series
    ]


def _vector(
    configuration: Mapping[str, Any], promql: str, at_wall: float
) -> dict[tuple[tuple[str, str], ...], float]:
    """Every series of an instant query at `at_wall`: sorted labels → value."""
    result = _instant_result(configuration, promql, at_wall)
    found = {}
    for item in result:
        value = float(item.get("value", (0, "nan"))[1])
        if math.isfinite(value):
            labels = {k: v for k, v in item.get("metric", {}).items() if k != "__name__"}
            found[tuple(sorted(labels.items()))] = value
    return found


def _increase(
    configuration: Mapping[str, Any], selector: str, start_wall: float, end_wall: float
) -> dict[tuple[tuple[str, str], ...], float]:
    """Per series, how much a counter grew between its first and last scrape inside (start, end].

    Only scrapes inside the window count, so every request counted was answered during it
    (up to one scrape interval at each edge is not seen); a series with fewer than two is left
    out (nothing known). A series with no sample at or before `start` was born inside the
    window and counts from 0. Raises ValueError when a counter went
    down (a reset: the count would be short).
    """
    window = _promql_duration(end_wall - start_wall)
    inside = _samples(configuration, f"{selector}[{window}]", end_wall)
    existed = _vector(configuration, selector, start_wall)
    grew = {}
    for labels, points in inside.items():
        if len(points) < 2 and labels in existed:
            continue  # one scrape inside the window says nothing of what happened in it
        values = [value for _, value in sorted(points)]
        if any(later < earlier for earlier, later in pairwise(values)):
            raise ValueError(f"a counter of {selector} was reset inside the window {dict(labels)}")
        grew[labels] = values[-1] - (values[0] if labels in existed else 0.0)
    return grew


def _samples(
    configuration: Mapping[str, Any], promql: str, at_wall: float
) -> dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]:
    """The raw samples of a range-vector query at `at_wall`: sorted labels → [(time, value)]."""
    result = _instant_result(configuration, promql, at_wall)
    found = {}
    for item in result:
        labels = {k: v for k, v in item.get("metric", {}).items() if k != "__name__"}
        points = [(float(t), float(v)) for t, v in item.get("values", []) if math.isfinite(float(v))]
        if points:
            found[tuple(sorted(labels.items()))] = points
    return found


def _check_window(window_seconds: float) -> None:
    if (
        isinstance(window_seconds, bool)
        or not isinstance(window_seconds, int | float)
        or not (0 < window_seconds <= 86400 * 31)
    ):
        raise ConfigError(
            "arguments", "window_seconds", f"expected 0 < seconds ≤ 31 days, got {window_seconds!r}"
        )


def _promql_duration(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds * 1000))}ms"


def fault_window(configuration: Mapping[str, Any], window_seconds: float) -> tuple[float, float, str]:
    """(start, end) wall times of this run's faults, or the last `window_seconds`; and how it was chosen.

    Load (harness.actions.load.*) is not a fault: the window runs from the first disruption applied to
    when the last one was undone (now, while one is still applied).
    """
    run_id = configuration.get("run_id")
    applied: dict[str, float] = {}
    undone: dict[str, float] = {}
    for entry in ledger.read_entries(ledger.state_dir(configuration)):
        if entry.get("event") == "applied" and (not run_id or entry.get("run_id") in (run_id, "")):
            if not str(entry.get("action", "")).startswith(("harness.actions.load.", "actions.load.")):
                applied[entry["fault_id"]] = entry["wall"]
        elif entry.get("event") == "undone":
            undone[entry["fault_id"]] = entry["wall"]
    now = time.time()
    if run_id and applied:
        start = min(applied.values())
        still_open = any(fault not in undone for fault in applied)
        end = now if still_open else min(now, max(undone[f] for f in applied))
        return start, end, f"fault window of run {run_id}"
    return now - window_seconds, now, f"last {window_seconds:g} s"


def _instant(
    name: str, unit: str, template: str, window_seconds: float, configuration: Mapping[str, Any] | None
) -> dict:
    configuration = configuration or {}
    _check_window(window_seconds)
    start, end, how = fault_window(configuration, window_seconds)
    promql = template.replace("{window}", _promql_duration(end - start))
    base = {"query": promql, "window_start_wall": start, "window_end_wall": end}
    if _cancel.wait(end + SCRAPE_SECONDS + _SETTLE_SECONDS - time.time(), configuration):
        return {**base, "value": None, "measurements": [missing(name, unit, "prometheus", "cancelled")]}
    try:
        value = _query(configuration, promql, end + SCRAPE_SECONDS)
    except ConnectionError as exc:
        return {**base, "value": None, "measurements": [missing(name, unit, "prometheus", str(exc))]}
    if value is None:
        evidence = f"no data for {promql} ({how})"
        return {**base, "value": None, "measurements": [missing(name, unit, "prometheus", evidence)]}
    measurement = {"name": name, "value": value, "unit": unit, "source": "prometheus", "lower_bound": False,
                   "evidence": f"{promql} = {value:.6g} ({how})"}  # fmt: skip
    return {**base, "value": value, "measurements": [measurement]}
