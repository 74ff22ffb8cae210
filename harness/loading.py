"""Load and validate scenarios (target profiles) and experiments.

Every problem becomes one ConfigError naming the file, the field, what was expected and what
was found: ``scenarios/x.yaml:targets.failover_time.at_most: expected a duration with a
unit such as 30s, 500ms or 5min, got 'fast'``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from harness import measure_names, units
from harness.errors import ConfigError, raise_all
from harness.model import (
    Comparison,
    ExperimentRef,
    Guardrails,
    HealthCheck,
    Link,
    PostgresSettings,
    RedisSettings,
    Region,
    Scenario,
    Target,
    TrafficSettings,
)

SCENARIO_DIRS = ("scenarios",)
HARNESS_EXTENSION = "harness"
CANARY_KINDS = ("redis", "http", "postgres")
SANDBOX_COMPONENTS = ("redis", "proxy", "postgres", "patroni", "api", "prometheus", "exporters", "balancer")
_JSON_TYPES = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
}


# Deeper than any real scenario, experiment or endpoints file; far below the depth at which the
# parsers, the schema validator or chaoslib would hit Python's recursion limit.
MAX_NESTING = 64
# Far more values than any real file holds; YAML aliases can otherwise expand a few lines into
# billions of values ("billion laughs") that every later walk would take forever over.
MAX_VALUES = 100_000


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(key, line)
        self.key, self.line = key, line


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *anchor` merges; explicit keys may override merged ones
                key = self.construct_object(key_node, deep=deep)
                try:
                    if key in seen:
                        raise _DuplicateKey(key, key_node.start_mark.line + 1)
                    seen.add(key)
                except TypeError:
                    continue  # an unhashable key; the base constructor names that problem
        return super().construct_mapping(node, deep=deep)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key, 0)
        seen[key] = value
    return seen


def _check_size(path: Path, value: Any) -> None:
    """Refuse runaway nesting or alias expansion; iterative, so any input is safe to measure."""
    stack, seen = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise ConfigError(
                path, "", f"too many values: expected at most {MAX_VALUES} (YAML aliases expand)"
            )
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > MAX_NESTING:
            raise _too_deep(path)
        stack.extend((child, depth + 1) for child in children)


def _too_deep(path: Path) -> ConfigError:
    return ConfigError(
        path, "", f"nested too deeply: expected at most {MAX_NESTING} levels of lists and mappings"
    )


def parse_text(path: Path, text: str) -> Any:
    """Parse YAML or JSON text of `path`: duplicate keys and runaway nesting are bad input."""
    try:
        if path.suffix == ".json":
            data = json.loads(text, object_pairs_hook=_json_object)
        else:
            data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: safe
    except RecursionError:
        raise _too_deep(path) from None
    except _DuplicateKey as exc:
        where = f"line {exc.line}" if exc.line else ""
        raise ConfigError(
            path, where, f"duplicate key {exc.key!r}: expected each key once per mapping"
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(path, f"line {exc.lineno}", f"malformed JSON: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(path, where, f"malformed YAML: {problem}") from None
    _check_size(path, data)
    return data


def read_document(path: Path) -> Any:
    """Parse a YAML or JSON file; errors name the file and the line."""
    if not path.exists():
        raise ConfigError(path, "", "file not found")
    if path.is_dir():
        raise ConfigError(path, "", "expected a file, found a directory")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "", f"cannot read: {exc}") from None
    return parse_text(path, text)


# ---------------------------------------------------------------- scenarios


@cache
def scenario_schema() -> dict[str, Any]:
    """The JSON Schema of target profiles, shipped with the package."""
    return json.loads(resources.files("harness").joinpath("schemas/scenario.schema.json").read_text())


def resolve_scenario_path(name_or_path: str | Path) -> Path:
    """A scenario file from a path, or from a bare name looked up in ./scenarios/, then among the
    example scenarios shipped with the package (harness.examples)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix in (".yaml", ".yml", ".json"):
        return path
    for directory in SCENARIO_DIRS:
        for suffix in (".yaml", ".yml", ".json"):
            candidate = Path(directory) / f"{name_or_path}{suffix}"
            if candidate.exists():
                return candidate
    from harness.examples import packaged_scenario

    return packaged_scenario(str(name_or_path)) or path


def _field(path_parts: Any) -> str:
    return ".".join(str(p) for p in path_parts)


def _describe(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _schema_error_message(error: jsonschema.ValidationError) -> tuple[str, str]:
    """(field, problem) for the most useful reading of a schema error."""
    field = _field(error.absolute_path)
    validator, expected = error.validator, error.validator_value
    if validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        name = unknown[0] if unknown else "?"
        field = f"{field}.{name}" if field else name
        return field, f"unknown field (expected one of: {', '.join(allowed)})"
    if validator == "required":
        missing = next((k for k in expected if k not in error.instance), "?")
        return (f"{field}.{missing}" if field else missing), "missing required field"
    if validator == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        wanted = " or ".join(_JSON_TYPES.get(k, k) for k in kinds)
        return field, f"expected {wanted}, got {_describe(error.instance)}"
    if validator == "enum":
        return field, f"expected one of {', '.join(map(str, expected))}, got {_describe(error.instance)}"
    if validator == "oneOf" and isinstance(error.instance, dict):
        return field, "expected exactly one of at_most or at_least"
    if validator == "pattern":
        return field, f"expected a value matching {expected}, got {_describe(error.instance)}"
    if validator in ("minimum", "minItems", "maxItems", "minProperties"):
        return field, f"{error.message}"
    return field, error.message


def _validate_schema(path: Path, data: Any) -> None:
    if not isinstance(data, dict):
        raise ConfigError(path, "", f"expected a mapping at the top level, got {_describe(data)}")
    validator = jsonschema.Draft202012Validator(scenario_schema())
    errors = sorted(
        validator.iter_errors(data), key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path])
    )
    # Every problem, one line each; a field named twice (e.g. by oneOf's branches) only once.
    problems: list[ConfigError] = []
    fields: set[str] = set()
    for error in errors:
        field, problem = _schema_error_message(error)
        if field not in fields:
            fields.add(field)
            problems.append(ConfigError(path, field, problem))
    raise_all(problems)


def _parse(path: Path, field: str, value: Any, parser) -> float:
    try:
        return parser(value)
    except ValueError as exc:
        raise ConfigError(path, field, str(exc)) from None


def _parse_regions(path: Path, data: list[dict[str, Any]]) -> tuple[Region, ...]:
    regions, seen = [], set()
    for index, item in enumerate(data):
        name = item["name"]
        if name in seen:
            raise ConfigError(path, f"regions.{index}.name", f"duplicate region {name!r}")
        seen.add(name)
        rate = item.get("requests")
        rpm = _parse(path, f"regions.{index}.requests", rate, units.parse_rate) * 60 if rate else None
        regions.append(
            Region(
                name=name,
                primary=bool(item.get("primary", False)),
                availability_zones=tuple(item.get("availability_zones", ())),
                requests_per_minute=rpm,
                in_sandbox=bool(item.get("sandbox", True)),
            )
        )
    primaries = [r.name for r in regions if r.primary]
    if len(primaries) > 1:
        raise ConfigError(path, "regions", f"expected one primary region, found {', '.join(primaries)}")
    if not any(r.in_sandbox for r in regions):
        raise ConfigError(path, "regions", "expected at least one region with sandbox: true")
    return tuple(regions)


def _parse_links(path: Path, data: list[dict[str, Any]], regions: tuple[Region, ...]) -> tuple[Link, ...]:
    names = {r.name for r in regions}
    links, pairs = [], set()
    for index, item in enumerate(data):
        a, b = item["between"]
        for position, region in enumerate((a, b)):
            if region not in names:
                raise ConfigError(
                    path,
                    f"links.{index}.between.{position}",
                    f"unknown region {region!r} (regions: {', '.join(sorted(names))})",
                )
        if a == b:
            raise ConfigError(path, f"links.{index}.between", f"a link joins two regions, got {a!r} twice")
        pair = frozenset((a, b))
        if pair in pairs:
            raise ConfigError(path, f"links.{index}.between", f"duplicate link between {a} and {b}")
        pairs.add(pair)
        latency = item["latency"]
        if isinstance(latency, str) and latency.strip().startswith("-"):
            raise ConfigError(
                path, f"links.{index}.latency", f"expected a non-negative duration, got {latency!r}"
            )
        links.append(Link(a, b, _parse(path, f"links.{index}.latency", latency, units.parse_duration)))
    return tuple(links)


def _parse_limit(path: Path, field: str, value: Any, unit: str) -> float:
    if (isinstance(value, str) and value.strip().startswith("-")) or (
        isinstance(value, int | float) and value < 0
    ):
        raise ConfigError(path, field, f"expected a non-negative limit, got {_describe(value)}")
    return _parse(path, field, value, units.PARSERS_BY_UNIT[unit])


def _parse_targets(path: Path, data: Mapping[str, dict[str, Any]]) -> tuple[Target, ...]:
    targets, problems = [], []
    for name, item in data.items():
        measure = item["measure"]
        if not measure_names.is_known(measure):
            # A name no code produces would grade `unknown` forever: most likely a typo.
            problems.append(
                ConfigError(
                    path,
                    f"targets.{name}.measure",
                    f"unknown measure {measure!r} (valid: {', '.join(measure_names.valid_names())})",
                )
            )
            continue
        unit = units.unit_of_measure(measure)
        comparison = Comparison.AT_MOST if "at_most" in item else Comparison.AT_LEAST
        key = comparison.value
        try:
            limit = _parse_limit(path, f"targets.{name}.{key}", item[key], unit)
        except ConfigError as problem:
            problems.append(problem)  # every bad target named, not only the first
            continue
        targets.append(
            Target(
                name=name,
                measure=measure,
                limit=limit,
                unit=unit,
                comparison=comparison,
                critical=bool(item.get("critical", False)),
                weight=item.get("weight"),
                description=item.get("description", ""),
                source=item.get("source", ""),
            )
        )
    raise_all(problems)
    return tuple(targets)


def _parse_experiments(
    path: Path, data: list[dict[str, Any]], targets: tuple[Target, ...]
) -> tuple[ExperimentRef, ...]:
    known = {t.name for t in targets}
    refs = []
    for index, item in enumerate(data):
        experiment_path = resolve_experiment_path(path, item["path"])
        if not experiment_path.exists():
            raise ConfigError(path, f"experiments.{index}.path", f"experiment file not found: {item['path']}")
        for position, target in enumerate(item.get("targets", ())):
            if target not in known:
                raise ConfigError(
                    path,
                    f"experiments.{index}.targets.{position}",
                    f"unknown target {target!r} (targets: {', '.join(sorted(known))})",
                )
        refs.append(
            ExperimentRef(
                path=item["path"],
                cadence=item.get("cadence", "daily"),
                weight=item.get("weight", 1),
                critical=bool(item.get("critical", False)),
                targets=tuple(item.get("targets", ())),
            )
        )
    return tuple(refs)


def resolve_experiment_path(scenario_path: Path, experiment: str) -> Path:
    """An experiment path from a scenario: relative to the working directory, else to the project root
    (the scenario's parent directory's parent), else to the scenario's own directory."""
    candidate = Path(experiment)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    for base in (scenario_path.parent.parent, scenario_path.parent):
        if (base / candidate).exists():
            return base / candidate
    return candidate


POSTGRES_TOPOLOGIES = ("primary-standby", "active-active")


def check_postgres_topology(where: Any, postgres: PostgresSettings, regions: tuple[Region, ...]) -> None:
    """An active-active store needs two sandbox regions to replicate between, and no Patroni
    (Patroni manages one primary and its standbys; a multi-writer store has no primary)."""
    if postgres.topology not in POSTGRES_TOPOLOGIES:
        raise ConfigError(
            where,
            "postgres.topology",
            f"expected one of {', '.join(POSTGRES_TOPOLOGIES)}, got {postgres.topology!r}",
        )
    if postgres.topology != "active-active":
        return
    local = [r.name for r in regions if r.in_sandbox]
    if len(local) < 2:
        raise ConfigError(
            where,
            "postgres.topology",
            f"active-active needs two or more regions with sandbox: true, got {len(local)}"
            f" ({', '.join(local) or 'none'})",
        )
    if postgres.failover == "patroni":
        raise ConfigError(
            where,
            "postgres.failover",
            "patroni manages a primary and its standbys; with topology active-active every region "
            "writes and nothing is promoted (use failover: manual or leave it out)",
        )


def _parse_postgres(path: Path, data: Mapping[str, Any], regions: tuple[Region, ...]) -> PostgresSettings:
    settings = PostgresSettings(
        failover=data.get("failover", "manual"), topology=data.get("topology", "primary-standby")
    )
    check_postgres_topology(path, settings, regions)
    return settings


def parse_scenario(path: Path, data: Any) -> Scenario:
    """A Scenario from parsed YAML, or ConfigError naming the first problem."""
    _validate_schema(path, data)
    regions = _parse_regions(path, data["regions"])
    links = _parse_links(path, data.get("links", []), regions)
    redis = data.get("redis", {})
    defaults = RedisSettings()
    redis_settings = RedisSettings(
        sentinel_quorum=redis.get("sentinel_quorum", defaults.sentinel_quorum),
        sentinels=redis.get("sentinels", defaults.sentinels),
        down_after_seconds=_parse(path, "redis.down_after", redis["down_after"], units.parse_duration)
        if "down_after" in redis
        else defaults.down_after_seconds,
        failover_timeout_seconds=_parse(
            path, "redis.failover_timeout", redis["failover_timeout"], units.parse_duration
        )
        if "failover_timeout" in redis
        else defaults.failover_timeout_seconds,
    )
    if redis_settings.sentinel_quorum > redis_settings.sentinels:
        raise ConfigError(
            path,
            "redis.sentinel_quorum",
            f"quorum {redis_settings.sentinel_quorum} exceeds the {redis_settings.sentinels} sentinels",
        )
    guardrails = data.get("guardrails", {})
    targets = _parse_targets(path, data["targets"])
    canary_rate = data.get("canary", {}).get("rate")
    rate_hz = _parse(path, "canary.rate", canary_rate, units.parse_frequency) if canary_rate else 20.0
    if not 1.0 <= rate_hz <= 100.0:
        raise ConfigError(
            path, "canary.rate", f"expected 1Hz to 100Hz (10-50Hz is typical), got {canary_rate!r}"
        )
    environment = data.get("environment", "sandbox")
    return Scenario(
        name=data["name"],
        path=str(path),
        description=data.get("description", ""),
        source=data.get("source", ""),
        environment=environment,
        allow_production=bool(data.get("allow_production", False)),
        regions=regions,
        links=links,
        redis=redis_settings,
        postgres=_parse_postgres(path, data.get("postgres", {}), regions),
        targets=targets,
        experiments=_parse_experiments(path, data.get("experiments", []), targets),
        guardrails=Guardrails(
            max_error_ratio=_parse(
                path, "guardrails.max_error_ratio", guardrails["max_error_ratio"], units.parse_ratio
            )
            if "max_error_ratio" in guardrails
            else None,
            window_seconds=_parse(path, "guardrails.window", guardrails["window"], units.parse_duration)
            if "window" in guardrails
            else Guardrails().window_seconds,
            max_duration_seconds=_parse(
                path, "guardrails.max_duration", guardrails["max_duration"], units.parse_duration
            )
            if "max_duration" in guardrails
            else None,
        ),
        canary_rate_hz=rate_hz,
        settings=data.get("settings", {}),
        load_workers=data.get("load", {}).get("workers"),
        traffic=parse_traffic(path, data["traffic"], regions) if "traffic" in data else None,
    )


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load and validate a target profile by path or by name (scenarios/<name>.yaml)."""
    path = resolve_scenario_path(name_or_path)
    return parse_scenario(path, read_document(path))


# ---------------------------------------------------------------- the traffic layer

# Names go into the balancer's configuration (backend names, header values): a safe alphabet only.
_TRAFFIC_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# The health-check path goes into `option httpchk GET <path>`: no spaces, quotes or newlines.
_CHECK_PATH = re.compile(r"^/[A-Za-z0-9._~/%?=&+-]*$")


def _traffic_region(path: Path, field: str, name: Any, known: Collection[str], problems: list) -> bool:
    """Whether `name` is one of the scenario's regions; a problem naming the field otherwise."""
    if name in known:
        return True
    problems.append(ConfigError(path, field, f"unknown region {name!r} (regions: {', '.join(known)})"))
    return False


def _traffic_duration(path: Path, field: str, value: Any, default: float, problems: list) -> float:
    if value is None:
        return default
    if isinstance(value, str) and value.strip().startswith("-"):
        problems.append(ConfigError(path, field, f"expected a positive duration, got {value!r}"))
        return default
    try:
        seconds = units.parse_duration(value)
    except ValueError as error:
        problems.append(ConfigError(path, field, str(error)))
        return default
    if seconds <= 0:
        problems.append(ConfigError(path, field, f"expected a positive duration, got {value!r}"))
        return default
    return seconds


def _traffic_count(path: Path, field: str, value: Any, default: int, problems: list) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(ConfigError(path, field, f"expected a whole number of at least 1, got {value!r}"))
        return default
    return value


def parse_traffic(path: Path, data: Mapping[str, Any], regions: tuple[Region, ...]) -> TrafficSettings:
    """The scenario's `traffic:` section, every problem named (file, field, what was expected)."""
    problems: list[ConfigError] = []
    names = tuple(r.name for r in regions)
    local = tuple(r.name for r in regions if r.in_sandbox)
    defaults = HealthCheck()
    check = data.get("health_check") or {}
    check_path = check.get("path", defaults.path)
    if not _CHECK_PATH.match(check_path):
        problems.append(
            ConfigError(
                path, "traffic.health_check.path", f"expected a URL path such as /health, got {check_path!r}"
            )
        )
    health = HealthCheck(
        path=check_path,
        interval_seconds=_traffic_duration(
            path, "traffic.health_check.interval", check.get("interval"), defaults.interval_seconds, problems
        ),
        timeout_seconds=_traffic_duration(
            path, "traffic.health_check.timeout", check.get("timeout"), defaults.timeout_seconds, problems
        ),
        fall=_traffic_count(path, "traffic.health_check.fall", check.get("fall"), defaults.fall, problems),
        rise=_traffic_count(path, "traffic.health_check.rise", check.get("rise"), defaults.rise, problems),
    )
    clients = tuple(data.get("client_regions") or names)
    for index, client in enumerate(clients):
        if not _TRAFFIC_NAME.match(client):
            problems.append(
                ConfigError(
                    path,
                    f"traffic.client_regions.{index}",
                    f"expected lowercase letters, digits and dashes, got {client!r}",
                )
            )
        elif client in clients[:index]:
            problems.append(
                ConfigError(path, f"traffic.client_regions.{index}", f"duplicate client region {client!r}")
            )
    routing = data.get("routing") or {}
    residency: dict[str, tuple[str, ...]] = {}
    for client, allowed in (data.get("residency") or {}).items():
        field = f"traffic.residency.{client}"
        if client not in clients:
            problems.append(
                ConfigError(
                    path, field, f"unknown client region {client!r} (client regions: {', '.join(clients)})"
                )
            )
            continue
        good = [
            region
            for index, region in enumerate(allowed)
            if _traffic_region(path, f"{field}.{index}", region, names, problems)
        ]
        if len(good) == len(allowed) and not any(r in local for r in good):
            problems.append(
                ConfigError(
                    path,
                    field,
                    f"leaves client region {client!r} no allowed region "
                    f"(expected at least one of the sandbox regions: {', '.join(local)})",
                )
            )
        residency[client] = tuple(good)
    home: dict[str, str] = {}
    for client, region in (routing.get("home") or {}).items():
        field = f"traffic.routing.home.{client}"
        if client not in clients:
            problems.append(
                ConfigError(
                    path, field, f"unknown client region {client!r} (client regions: {', '.join(clients)})"
                )
            )
        elif _traffic_region(path, field, region, names, problems):
            if client in residency and region not in residency[client]:
                problems.append(
                    ConfigError(
                        path,
                        field,
                        f"home region {region!r} is forbidden by traffic.residency.{client} "
                        f"(allowed: {', '.join(residency[client])})",
                    )
                )
            home[client] = region
    failover: dict[str, tuple[str, ...]] = {}
    for client, order in (routing.get("failover") or {}).items():
        field = f"traffic.routing.failover.{client}"
        if client not in clients:
            problems.append(
                ConfigError(
                    path, field, f"unknown client region {client!r} (client regions: {', '.join(clients)})"
                )
            )
            continue
        for index, region in enumerate(order):
            if not _traffic_region(path, f"{field}.{index}", region, names, problems):
                continue
            if client in residency and region not in residency[client]:
                problems.append(
                    ConfigError(
                        path,
                        f"{field}.{index}",
                        f"region {region!r} is forbidden by traffic.residency.{client} "
                        f"(allowed: {', '.join(residency[client])})",
                    )
                )
        failover[client] = tuple(order)
    weights: dict[str, int] = {}
    for region, weight in (routing.get("weights") or {}).items():
        field = f"traffic.routing.weights.{region}"
        if not _traffic_region(path, field, region, names, problems):
            continue
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 256:
            problems.append(
                ConfigError(path, field, f"expected a whole number from 1 to 256, got {weight!r}")
            )
            continue
        weights[region] = weight
    raise_all(problems)
    settings = TrafficSettings(
        health=health,
        client_regions=clients,
        policy=routing.get("policy", "failover"),
        home=home,
        failover=failover,
        weights=weights,
        residency=residency,
        note=str(data.get("note", "")),
    )
    for client in clients:
        if not settings.serving_order(client, local):
            problems.append(
                ConfigError(
                    path,
                    "traffic",
                    f"client region {client!r} has no region to serve it in the sandbox "
                    f"(its home, failover order and residency rule leave none of: {', '.join(local)})",
                )
            )
    raise_all(problems)
    return settings


# ---------------------------------------------------------------- experiments


def _validate_harness_extension(path: Path, experiment: Mapping[str, Any]) -> None:
    for index, extension in enumerate(experiment.get("extensions", []) or []):
        if not isinstance(extension, dict) or extension.get("name") != HARNESS_EXTENSION:
            continue
        field = f"extensions.{index}"
        allowed = {"name", "canary", "sandbox_components", "measures", "postgres_topology"}
        for key in extension:
            if key not in allowed:
                raise ConfigError(
                    path, f"{field}.{key}", f"unknown field (expected one of: {', '.join(sorted(allowed))})"
                )
        canary = extension.get("canary") or {}
        if not isinstance(canary, dict):
            raise ConfigError(path, f"{field}.canary", f"expected a mapping, got {_describe(canary)}")
        for key in canary:
            if key not in ("kinds", "rate"):
                raise ConfigError(
                    path, f"{field}.canary.{key}", "unknown field (expected one of: kinds, rate)"
                )
        kinds = canary.get("kinds") or []
        if not isinstance(kinds, list):
            raise ConfigError(path, f"{field}.canary.kinds", f"expected a list, got {_describe(kinds)}")
        for position, kind in enumerate(kinds):
            if kind not in CANARY_KINDS:
                raise ConfigError(
                    path,
                    f"{field}.canary.kinds.{position}",
                    f"expected one of {', '.join(CANARY_KINDS)}, got {kind!r}",
                )
        if "rate" in canary:
            _parse(path, f"{field}.canary.rate", canary["rate"], units.parse_frequency)
        if "postgres_topology" in extension and extension["postgres_topology"] not in POSTGRES_TOPOLOGIES:
            raise ConfigError(
                path,
                f"{field}.postgres_topology",
                f"expected one of {', '.join(POSTGRES_TOPOLOGIES)}, got {extension['postgres_topology']!r}",
            )
        components = extension.get("sandbox_components") or []
        if not isinstance(components, list):
            raise ConfigError(
                path, f"{field}.sandbox_components", f"expected a list, got {_describe(components)}"
            )
        for position, component in enumerate(components):
            if component not in SANDBOX_COMPONENTS:
                raise ConfigError(
                    path,
                    f"{field}.sandbox_components.{position}",
                    f"expected one of {', '.join(SANDBOX_COMPONENTS)}, got {component!r}",
                )


def harness_extension(experiment: Mapping[str, Any]) -> dict[str, Any]:
    """The experiment's `harness` extension block, or an empty one."""
    for extension in experiment.get("extensions", []) or []:
        if isinstance(extension, dict) and extension.get("name") == HARNESS_EXTENSION:
            return extension
    return {}


def load_experiment(path: str | Path) -> dict[str, Any]:
    """Load an experiment and validate it with chaoslib's own validator and our extension's rules."""
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid

    path = Path(path)
    experiment = read_document(path)
    if not isinstance(experiment, dict):
        raise ConfigError(path, "", f"expected an experiment mapping, got {_describe(experiment)}")
    _check_experiment_shape(path, experiment)
    chaoslib_logger = logging.getLogger("chaostoolkit")
    previous = chaoslib_logger.level
    chaoslib_logger.setLevel(logging.ERROR)
    try:
        ensure_experiment_is_valid(experiment)
    except ChaosException as exc:
        raise ConfigError(path, "", f"invalid experiment: {exc}") from None
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        # chaoslib assumes well-shaped activities; whatever it trips on is still bad input.
        raise ConfigError(path, "", f"invalid experiment: malformed activity or field ({exc})") from None
    finally:
        chaoslib_logger.setLevel(previous)
    _validate_harness_extension(path, experiment)
    return experiment


_EXPERIMENT_SHAPES = {
    "title": (str, "a string"),
    "description": (str, "a string"),
    "tags": (list, "a list"),
    "configuration": (dict, "a mapping"),
    "secrets": (dict, "a mapping"),
    "extensions": (list, "a list"),
    "steady-state-hypothesis": (dict, "a mapping"),
    "method": (list, "a list"),
    "rollbacks": (list, "a list"),
    "controls": (list, "a list"),
}


def _check_experiment_shape(path: Path, experiment: Mapping[str, Any]) -> None:
    """Top-level fields and activities have the types chaoslib's validator assumes; all problems."""
    problems: list[ConfigError] = []
    for key, (kind, expected) in _EXPERIMENT_SHAPES.items():
        if key in experiment and not isinstance(experiment[key], kind):
            problems.append(ConfigError(path, key, f"expected {expected}, got {_describe(experiment[key])}"))
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    probes = hypothesis.get("probes", []) if isinstance(hypothesis, dict) else []
    if not isinstance(probes, list):
        problems.append(
            ConfigError(path, "steady-state-hypothesis.probes", f"expected a list, got {_describe(probes)}")
        )
        probes = []
    for section, activities in (
        ("steady-state-hypothesis.probes", probes),
        ("method", experiment.get("method", [])),
        ("rollbacks", experiment.get("rollbacks", [])),
    ):
        if not isinstance(activities, list):
            continue  # named above
        for index, activity in enumerate(activities):
            if not isinstance(activity, dict):
                problems.append(
                    ConfigError(
                        path, f"{section}.{index}", f"expected an activity mapping, got {_describe(activity)}"
                    )
                )
                continue
            provider = activity.get("provider")
            if "ref" not in activity and not isinstance(provider, dict):
                problems.append(
                    ConfigError(
                        path, f"{section}.{index}.provider", f"expected a mapping, got {_describe(provider)}"
                    )
                )
                continue
            arguments = provider.get("arguments", {}) if isinstance(provider, dict) else {}
            if not isinstance(arguments, dict | list | str):  # a string for process providers
                problems.append(
                    ConfigError(
                        path,
                        f"{section}.{index}.provider.arguments",
                        f"expected a mapping, got {_describe(arguments)}",
                    )
                )
    raise_all(problems)


def validate_file(path: str | Path) -> str:
    """Validate a scenario or an experiment file; returns which it was."""
    path = Path(path)
    data = read_document(path)
    if isinstance(data, dict) and ("method" in data or "steady-state-hypothesis" in data or "title" in data):
        load_experiment(path)
        return "experiment"
    parse_scenario(path, data)
    return "scenario"
