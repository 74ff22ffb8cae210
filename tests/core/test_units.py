"""Unit parsing: explicit units in, base units out, clear errors otherwise."""

from __future__ import annotations

import pytest

from harness import units


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("500ms", 0.5), ("5min", 300.0), ("4h", 14400.0), ("1.5 s", 1.5), ("250us", 0.00025)],
)
def test_durations(text, seconds) -> None:
    assert units.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["fast", 30, "30", "-5s", "5 parsecs", True, None, "nan s"])
def test_durations_need_an_explicit_unit(bad) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        units.parse_duration(bad)


@pytest.mark.parametrize(("text", "ratio"), [("1%", 0.01), ("99.95%", 0.9995), ("0 %", 0.0), ("100%", 1.0)])
def test_ratios(text, ratio) -> None:
    assert units.parse_ratio(text) == pytest.approx(ratio)


@pytest.mark.parametrize("bad", ["0.01", 0.01, "101%", "-1%", "x%"])
def test_ratio_errors(bad) -> None:
    with pytest.raises(ValueError, match="percentage"):
        units.parse_ratio(bad)


def test_rates_sizes_frequencies_counts() -> None:
    assert units.parse_rate("1000/min") == pytest.approx(1000 / 60)
    assert units.parse_rate("10/s") == 10.0
    assert units.parse_size("10MB") == 10e6
    assert units.parse_size("1KiB") == 1024
    assert units.parse_frequency("20Hz") == 20.0
    assert units.parse_count(3) == 3.0
    with pytest.raises(ValueError):
        units.parse_count(True)


@pytest.mark.parametrize(
    ("measure", "unit"),
    [
        ("failover_seconds", "seconds"),
        ("error_ratio", "ratio"),
        ("lost_writes_count", "count"),
        ("foo", None),
    ],
)
def test_unit_of_measure(measure, unit) -> None:
    assert units.unit_of_measure(measure) == unit


def test_format_quantity() -> None:
    assert units.format_quantity(0.25, "seconds") == "250 ms"
    assert units.format_quantity(4.2, "seconds") == "4.20 s"
    assert units.format_quantity(0.01, "ratio") == "1%"
    assert units.format_quantity(None, "seconds") == "n/a"
