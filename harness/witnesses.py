"""Two witnesses of one quantity: which measures witness each other and how far they may differ.

Where two independent sources measure the same thing, a check trusts neither alone. When both
have a value and they differ by more than the pair's tolerance, the check is `unknown` (the
report shows both values); when they agree, the check grades the worse of the two, so a
difference inside the tolerance can never turn a miss into a pass.

Pairs and tolerances (also in README "Two witnesses" and docs/measures.md):

* error ratio: `slo_error_ratio` (server-side, Prometheus) and `error_ratio` (client-side,
  canary). They may differ by at most 5 percentage points (0.05 absolute): Prometheus also
  counts the load generator's and health checks' requests, and never sees a request that did
  not reach the server (a cut link), so a small difference is expected; a canary timing out
  through a partition while the server reports 0 % is not.
* replication lag: `replication_lag_seconds` (marker written on the primary, read on every
  replica) and `replication_lag_exporter_seconds` (the exporters' lag, from Prometheus). They
  may differ by at most 2 s + 25 % of the larger: the Redis exporter reports whole seconds and
  both exporters are scraped at an interval, so the exporter lags the marker by up to a scrape.

* traffic error ratio: `traffic_balancer_error_ratio` (HAProxy's own 5xx count per client
  region) and `traffic_error_ratio` (the traffic canary), 5 percentage points: the balancer's
  window runs from scrape to scrape around the fault, and a canary timeout answered later by a
  server is a failure to the canary but not a 5xx to the balancer.

A lower bound ("at least x") contradicts the other witness only when the other's exact value is
below the bound by more than the tolerance; two lower bounds never contradict each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.model import Measurement


@dataclass(frozen=True, slots=True)
class Pair:
    a: str
    b: str
    absolute: float  # allowed difference, in the measures' unit
    relative: float  # plus this share of the larger value
    described: str  # the tolerance in words, for evidence lines

    def tolerance(self, x: float, y: float) -> float:
        return self.absolute + self.relative * max(abs(x), abs(y))


PAIRS = (
    Pair("slo_error_ratio", "error_ratio", 0.05, 0.0, "5 percentage points"),
    Pair(
        "replication_lag_seconds", "replication_lag_exporter_seconds", 2.0, 0.25, "2 s + 25 % of the larger"
    ),
    # The balancer's 5xx count against the traffic canary's failures (docs/measures.md, traffic).
    Pair("traffic_balancer_error_ratio", "traffic_error_ratio", 0.05, 0.0, "5 percentage points"),
)


def pair_of(measure: str) -> tuple[Pair, str] | None:
    """The pair a measure belongs to and its other witness's name, or None."""
    for pair in PAIRS:
        if measure == pair.a:
            return pair, pair.b
        if measure == pair.b:
            return pair, pair.a
    return None


def disagreement(pair: Pair, first: Measurement, second: Measurement) -> str | None:
    """Why two witnesses with values contradict each other beyond the pair's tolerance, or None."""
    x, y = first.value, second.value
    if x is None or y is None:
        return None
    tolerance = pair.tolerance(x, y)
    if first.lower_bound and second.lower_bound:
        return None
    if first.lower_bound or second.lower_bound:
        bound, exact = (first, second) if first.lower_bound else (second, first)
        if exact.value < bound.value - tolerance:  # type: ignore[operator]
            return (
                f"{exact.name} {exact.value:g} is below {bound.name}'s lower bound {bound.value:g} "
                f"by more than {pair.described}"
            )
        return None
    if abs(x - y) > tolerance:
        return f"{first.name} {x:g} and {second.name} {y:g} differ by more than {pair.described}"
    return None
