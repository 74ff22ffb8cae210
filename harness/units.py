"""Parse quantities with explicit units: durations, ratios, sizes and rates.

Every parser returns the base unit (seconds, ratio 0..1, bytes, per second) or raises
ValueError with a message saying what was expected; loaders turn that into a ConfigError.
"""

from __future__ import annotations

import math
import re

_NUMBER = r"(?P<number>[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
_DURATION = re.compile(
    rf"^\s*{_NUMBER}\s*(?P<unit>us|µs|ms|s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)\s*$"
)
_DURATION_FACTORS = {
    "us": 1e-6, "µs": 1e-6, "ms": 1e-3,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}  # fmt: skip
_SIZE = re.compile(rf"^\s*{_NUMBER}\s*(?P<unit>B|KB|MB|GB|KiB|MiB|GiB)?\s*$")
_SIZE_FACTORS = {
    None: 1,
    "B": 1,
    "KB": 1e3,
    "MB": 1e6,
    "GB": 1e9,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}
_RATE = re.compile(rf"^\s*{_NUMBER}\s*(?:/|per\s+)(?P<unit>s|sec|second|m|min|minute|h|hour)\s*$")
_FREQUENCY = re.compile(rf"^\s*{_NUMBER}\s*Hz\s*$")


def _reject_bool(value: object, expected: str) -> None:
    if isinstance(value, bool):
        raise ValueError(f"expected {expected}, got {value!r}")


def parse_duration(value: object) -> float:
    """Seconds from '30s', '500ms', '5min', '1h'. Bare numbers are refused: the unit must be explicit."""
    expected = "a duration with a unit such as 30s, 500ms or 5min"
    _reject_bool(value, expected)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match["number"]) * _DURATION_FACTORS[match["unit"]]
        if math.isfinite(seconds):
            return seconds
    raise ValueError(f"expected {expected}, got {value!r}")


def parse_ratio(value: object) -> float:
    """A ratio 0..1 from '1%', '0.5 %' or '99.95%'."""
    expected = "a percentage such as 1% or 99.9%"
    _reject_bool(value, expected)
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            percent = float(value.strip()[:-1])
        except ValueError:
            pass
        else:
            if 0.0 <= percent <= 100.0:
                return percent / 100.0
            raise ValueError(f"expected a percentage between 0% and 100%, got {value!r}")
    raise ValueError(f"expected {expected}, got {value!r}")


def parse_size(value: object) -> float:
    """Bytes from an integer or '10MB', '512KiB'."""
    expected = "a size such as 1048576, 10MB or 512KiB"
    _reject_bool(value, expected)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if isinstance(value, str) and (match := _SIZE.match(value)):
        return float(match["number"]) * _SIZE_FACTORS[match["unit"]]
    raise ValueError(f"expected {expected}, got {value!r}")


def parse_rate(value: object) -> float:
    """Events per second from '1000/min', '10/s' or '5 per second'."""
    expected = "a rate such as 1000/min or 10/s"
    _reject_bool(value, expected)
    if isinstance(value, str) and (match := _RATE.match(value)):
        per = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
        return float(match["number"]) / per[match["unit"]]
    raise ValueError(f"expected {expected}, got {value!r}")


def parse_frequency(value: object) -> float:
    """Hertz from '20Hz'."""
    expected = "a frequency such as 20Hz"
    _reject_bool(value, expected)
    if isinstance(value, str) and (match := _FREQUENCY.match(value)):
        return float(match["number"])
    raise ValueError(f"expected {expected}, got {value!r}")


def parse_count(value: object) -> float:
    """A non-negative whole number."""
    _reject_bool(value, "a whole number")
    if isinstance(value, int):
        return float(value)
    raise ValueError(f"expected a whole number, got {value!r}")


def format_quantity(value: float | None, unit: str) -> str:
    """Human form of a base-unit value: 1.234 s, 250 ms, 0.5%, 3, 1.2 MB."""
    if value is None:
        return "n/a"
    if unit == "seconds":
        if abs(value) < 1:
            return f"{value * 1000:.0f} ms"
        if abs(value) < 120:
            return f"{value:.2f} s"
        return f"{value / 60:.1f} min"
    if unit == "ratio":
        return f"{value * 100:.3g}%"
    if unit == "bytes":
        for factor, suffix in ((1e9, "GB"), (1e6, "MB"), (1e3, "KB")):
            if abs(value) >= factor:
                return f"{value / factor:.3g} {suffix}"
        return f"{value:.0f} B"
    if unit == "rps":
        return f"{value:.3g}/s"
    return f"{value:g}"


PARSERS_BY_UNIT = {
    "seconds": parse_duration,
    "ratio": parse_ratio,
    "bytes": parse_size,
    "rps": parse_rate,
    "count": parse_count,
}

UNIT_BY_SUFFIX = {
    "_seconds": "seconds",
    "_ratio": "ratio",
    "_bytes": "bytes",
    "_rps": "rps",
    "_count": "count",
}


def unit_of_measure(measure: str) -> str | None:
    """A measure's base unit from its name's suffix (failover_seconds → seconds), or None."""
    return next((unit for suffix, unit in UNIT_BY_SUFFIX.items() if measure.endswith(suffix)), None)
