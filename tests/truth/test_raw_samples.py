"""Raw probe and canary dicts become samples without guessing: a string where a boolean belongs is
bad evidence, never a success."""

from __future__ import annotations

import pytest

from harness.model import RecordError, Sample


def test_a_string_ok_is_refused_not_read_as_true() -> None:
    with pytest.raises(RecordError, match="ok"):
        Sample.from_raw({"at_monotonic": 10.5, "ok": "false", "region": "eu"}, 10.0, probe="canary")


def test_a_boolean_ok_is_kept() -> None:
    sample = Sample.from_raw({"at_monotonic": 10.5, "ok": False, "region": "eu"}, 10.0, probe="canary")
    assert (sample.ok, sample.at_seconds, sample.region) == (False, 0.5, "eu")
    assert Sample.from_raw({"at_monotonic": 11.0}, 10.0, probe="lag").ok is True
