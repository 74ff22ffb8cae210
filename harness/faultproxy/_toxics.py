"""Toxic definitions: the JSON shape, defaults, and the checks that keep bad values out (spec §3, §4)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from ._errors import ApiError, bad_body, invalid_value

ATTRIBUTES_BY_TYPE: dict[str, tuple[str, ...]] = {
    "latency": ("latency", "jitter"),
    "bandwidth": ("rate",),
    "slow_close": ("delay",),
    "timeout": ("timeout",),
    "reset_peer": ("timeout",),
    "slicer": ("average_size", "size_variation", "delay"),
    "limit_data": ("bytes",),
    "noop": (),
}
STREAMS = ("upstream", "downstream")
INT32_MAX = 2**31 - 1
BYTES_MAX = 2**53 - 1

_ids = itertools.count(1)


@dataclass(slots=True)
class Toxic:
    """One toxic on a proxy. Updated in place; `version` changes on every update."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, int]
    version: int = 0
    id: int = field(default_factory=lambda: next(_ids))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }


@dataclass(frozen=True, slots=True)
class ToxicRequest:
    """A parsed create request whose name, stream and type are known, before the duplicate check."""

    name: str
    type: str
    stream: str
    toxicity: Any
    attributes: Any


def _optional(body: dict[str, Any], key: str, kinds: type | tuple[type, ...]) -> Any:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise bad_body(f"{key}: expected {_kind_name(kinds)}, got a boolean")
    if not isinstance(value, kinds):
        raise bad_body(f"{key}: expected {_kind_name(kinds)}, got {type(value).__name__}")
    return value


def _kind_name(kinds: type | tuple[type, ...]) -> str:
    names = {str: "a string", dict: "an object", bool: "a boolean", int: "a number", float: "a number"}
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(dict.fromkeys(names[k] for k in kinds))


def parse_create(body: Any) -> ToxicRequest:
    """Check a create body in Toxiproxy's order: parse, stream, default name, type."""
    if not isinstance(body, dict):
        raise bad_body("expected a JSON object")
    type_ = _optional(body, "type", str)
    name = _optional(body, "name", str)
    stream = _optional(body, "stream", str)
    toxicity = _optional(body, "toxicity", (int, float))
    attributes = _optional(body, "attributes", dict)
    stream = "downstream" if stream is None else stream.lower()
    if stream not in STREAMS:
        raise ApiError(400, "stream was invalid, can be either upstream or downstream")
    if not name:
        name = f"{type_ or ''}_{stream}"
    if type_ not in ATTRIBUTES_BY_TYPE:
        raise ApiError(400, "invalid toxic type")
    if "/" in name:
        raise invalid_value("name", "must not contain '/'")
    return ToxicRequest(name, type_, stream, toxicity, attributes)


def build(request: ToxicRequest) -> Toxic:
    """The toxic a checked request describes; raise a 400 for any §4 value."""
    attributes = merge_attributes(
        request.type, dict.fromkeys(ATTRIBUTES_BY_TYPE[request.type], 0), request.attributes
    )
    toxicity = 1.0 if request.toxicity is None else check_toxicity(request.toxicity)
    return Toxic(request.name, request.type, request.stream, toxicity, attributes)


def parse_update(toxic: Toxic, body: Any) -> tuple[dict[str, int], float]:
    """New attributes (merged into the current ones) and toxicity for an update body."""
    if not isinstance(body, dict):
        raise bad_body("expected a JSON object")
    attributes = _optional(body, "attributes", dict)
    toxicity = _optional(body, "toxicity", (int, float))
    merged = merge_attributes(toxic.type, dict(toxic.attributes), attributes)
    return merged, toxic.toxicity if toxicity is None else check_toxicity(toxicity)


def check_toxicity(value: int | float) -> float:
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise invalid_value("toxicity", f"must be between 0 and 1, got {value}")
    return float(value)


def merge_attributes(type_: str, current: dict[str, int], changes: dict[str, Any] | None) -> dict[str, int]:
    """`current` updated with the known keys of `changes`, checked as a whole."""
    for key in ATTRIBUTES_BY_TYPE[type_]:
        value = (changes or {}).get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid_value(key, f"must be an integer, got {value!r}")
        limit = BYTES_MAX if key == "bytes" else INT32_MAX
        if value < 0:
            raise invalid_value(key, f"must not be negative, got {value}")
        if value > limit:
            raise invalid_value(key, f"must be at most {limit}, got {value}")
        current[key] = value
    if type_ == "bandwidth" and current["rate"] < 1:
        raise invalid_value("rate", "must be at least 1 KB/s (for a blackhole use timeout=0)")
    if type_ == "slicer":
        if current["average_size"] < 1:
            raise invalid_value("average_size", "must be at least 1")
        if current["size_variation"] > current["average_size"]:
            raise invalid_value("size_variation", "must not exceed average_size")
    return current
