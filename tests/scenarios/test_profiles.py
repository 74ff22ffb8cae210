"""The five target profiles load, and the numbers they take from the seed documents are there.

Profiles cite their seeds as `seed NNN line L: "text"`. These tests read the seed files
(../shared/seeds beside the clone) and check that every quoted text sits on its cited line, and
that a sample of profile values equals the number the seed states at the place the profile cites.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.loading import load_scenario
from harness.model import Scenario
from harness.units import parse_duration

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"
SEEDS = REPO.parent / "shared" / "seeds"
PROFILES = {
    "aeon-nova": "000",
    "anfl-ops": "001",
    "finnexus": "002",
    "novacron": "003",
    "email-triage": "004",
}
CITATION = re.compile(r'seed (\d{3}) line (\d+): "([^"]+)"')
REFERENCE = re.compile(r"seed \d{3} line \d+")
NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")

needs_seeds = pytest.mark.skipif(
    not SEEDS.is_dir(),
    reason=f"seed documents not found at {SEEDS} (expected ../shared/seeds beside the clone)",
)


def seed_lines(seed: str) -> list[str]:
    """The lines of seed NNN, numbered from 1 at index 1."""
    matches = sorted(SEEDS.glob(f"{seed}_*.txt"))
    assert len(matches) == 1, f"expected one seed file {seed}_*.txt in {SEEDS}, found {matches}"
    return ["", *matches[0].read_text(encoding="utf-8").splitlines()]


def profile_path(name: str) -> Path:
    return SCENARIOS / f"{name}.yaml"


def profile_data(name: str) -> dict[str, Any]:
    return yaml.safe_load(profile_path(name).read_text(encoding="utf-8"))


def strings_in(value: Any) -> Iterator[str]:
    """Every string in a parsed YAML document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(key)
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def comment_text(text: str) -> str:
    """The file's comments joined into one string, so citations may wrap across comment lines."""
    comments = []
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("#"):
            comments.append(stripped[1:].strip())
        elif " # " in line:
            comments.append(line.split(" # ", 1)[1].strip())
        else:
            comments.append("\n")  # a non-comment line ends a wrapped comment
    return " ".join(comments)


def citation_texts(name: str) -> list[str]:
    """Every place a profile can cite its seed: its parsed strings and its comments."""
    return [*strings_in(profile_data(name)), comment_text(profile_path(name).read_text(encoding="utf-8"))]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_passes_validation(name: str) -> None:
    scenario = load_scenario(profile_path(name))
    assert scenario.name == name
    assert scenario.targets
    assert scenario.primary_region is not None and scenario.primary_region.in_sandbox
    assert all(t.source for t in scenario.targets), "every target names where its number comes from"


def citation_problems(texts: Iterable[str]) -> tuple[list[str], int]:
    """Problems with the seed citations in `texts`, and how many citations were checked."""
    problems, checked = [], 0
    for text in texts:
        if len(CITATION.findall(text)) != len(REFERENCE.findall(text)):
            problems.append(f"a seed reference without a quoted text in {text[:200]!r}")
        for seed, line, quoted in CITATION.findall(text):
            lines, number = seed_lines(seed), int(line)
            if number >= len(lines):
                problems.append(f"seed {seed} has no line {number}")
            elif quoted not in lines[number]:
                problems.append(f"seed {seed} line {number} is {lines[number]!r}, not {quoted!r}")
            checked += 1
    return problems, checked


@needs_seeds
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_citation_quotes_its_cited_line(name: str) -> None:
    problems, checked = citation_problems(citation_texts(name))
    assert not problems, f"{name}: " + "; ".join(problems)
    assert checked >= 10, f"{name}: only {checked} citations"


@needs_seeds
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_target_cites_its_own_seed(name: str) -> None:
    scenario = load_scenario(profile_path(name))
    seed = PROFILES[name]
    assert scenario.source.endswith(".txt") and (REPO / scenario.source).resolve().parent == SEEDS.resolve()
    assert Path(scenario.source).name.startswith(f"{seed}_")
    for target in scenario.targets:
        cited = {s for s, _, _ in CITATION.findall(target.source)}
        assert cited == {seed}, f"{name}: target {target.name} cites seeds {cited}, expected {seed}"


@dataclass(frozen=True)
class Sample:
    """A profile value, where the profile cites it, and how the seed states it."""

    profile: str
    field: str
    value: Callable[[Scenario], float | str]  # in the seed's own unit
    citation: Callable[[dict[str, Any]], str]  # the profile text that cites the seed for it
    seed_text: str  # the seed's wording of the number, on the cited line

    def __str__(self) -> str:
        return f"{self.profile}:{self.field}"


def target(name: str) -> Callable[[dict[str, Any]], str]:
    return lambda data: data["targets"][name]["source"]


def limit(name: str, factor: float = 1.0) -> Callable[[Scenario], float]:
    return lambda s: s.target(name).limit * factor


def region_rpm(name: str) -> Callable[[Scenario], float]:
    return lambda s: next(r for r in s.regions if r.name == name).requests_per_minute


def region_note(name: str) -> Callable[[dict[str, Any]], str]:
    return lambda data: next(r for r in data["regions"] if r["name"] == name)["note"]


def health_check_source(data: dict[str, Any]) -> str:
    return data["settings"]["health_check"]["source"]


def setting(*keys: str) -> Callable[[Scenario], Any]:
    def get(s: Scenario) -> Any:
        value: Any = s.settings
        for key in keys:
            value = value[key]
        return value

    return get


SAMPLES = [
    Sample("aeon-nova", "redis.sentinel_quorum", lambda s: s.redis.sentinel_quorum,
           lambda d: d["redis"]["note"], "quorum: 2"),
    Sample("aeon-nova", "redis.failover_timeout", lambda s: s.redis.failover_timeout_seconds * 1000,
           lambda d: d["redis"]["note"], "failover_timeout: 5000"),
    Sample("aeon-nova", "targets.promotion_time", limit("promotion_time"), target("promotion_time"),
           "promotion_time: 30s"),
    Sample("aeon-nova", "targets.detection_time", limit("detection_time"), target("detection_time"),
           "detection_time: 10s"),
    Sample("aeon-nova", "targets.error_rate", limit("error_rate", 100), target("error_rate"),
           "error_rate_threshold: 1%"),
    Sample("aeon-nova", "targets.latency", limit("latency", 1000), target("latency"),
           "latency_threshold: 500ms"),
    Sample("aeon-nova", "targets.rto", limit("rto", 1 / 3600), target("rto"), "rto: 4 hours"),
    Sample("anfl-ops", "targets.latency", limit("latency", 1000), target("latency"), "latency_ms: 200"),
    Sample("anfl-ops", "targets.error_rate", limit("error_rate"), target("error_rate"), "error_rate: 0.01"),
    Sample("anfl-ops", "targets.saturation", limit("saturation", 100), target("saturation"),
           "cpu_utilization: 85"),
    Sample("finnexus", "settings.health_check.endpoint", setting("health_check", "endpoint"),
           health_check_source, "`/api/v1/health`"),
    Sample("finnexus", "settings.health_check.interval",
           lambda s: parse_duration(setting("health_check", "interval")(s)),
           health_check_source, "Every 30 seconds"),
    Sample("finnexus", "settings.health_check.timeout",
           lambda s: parse_duration(setting("health_check", "timeout")(s)),
           health_check_source, "Timeout**: 5 seconds"),
    Sample("finnexus", "settings.health_check.failure_threshold",
           setting("health_check", "failure_threshold"), health_check_source, "3 consecutive failures"),
    Sample("finnexus", "targets.replication_lag", limit("replication_lag", 1 / 60), target("replication_lag"),
           "Database Replication Lag**: > 5 minutes"),
    Sample("finnexus", "targets.rto", limit("rto", 1 / 60), target("rto"),
           "Critical Services**: < 5 minutes"),
    Sample("finnexus", "targets.rpo", limit("rpo", 1 / 60), target("rpo"), "Critical Data**: < 1 minute"),
    Sample("novacron", "targets.failover_time", limit("failover_time"), target("failover_time"),
           "Failover Time**: <30 seconds"),
    Sample("novacron", "targets.replication_lag", limit("replication_lag"), target("replication_lag"),
           "Replication Lag**: <5 seconds P99"),
    Sample("novacron", "targets.rto", limit("rto", 1 / 60), target("rto"), "(RTO)**: <15 minutes"),
    Sample("novacron", "targets.rpo", limit("rpo", 1 / 60), target("rpo"), "(RPO)**: <5 minutes"),
    Sample("email-triage", "regions.us-east-1.requests", region_rpm("us-east-1"), region_note("us-east-1"),
           "email_processing_capacity: 1000/minute"),
    Sample("email-triage", "regions.eu-west-1.requests", region_rpm("eu-west-1"), region_note("eu-west-1"),
           "email_processing_capacity: 800/minute"),
    Sample("email-triage", "regions.ap-southeast-1.requests", region_rpm("ap-southeast-1"),
           region_note("ap-southeast-1"), "email_processing_capacity: 600/minute"),
    Sample("email-triage", "targets.failover_time", limit("failover_time"), target("failover_time"),
           "Sub-60-second failover"),
    Sample("email-triage", "targets.rpo", limit("rpo", 1 / 60), target("rpo"), "15-minute RPO"),
]  # fmt: skip


@needs_seeds
@pytest.mark.parametrize("sample", SAMPLES, ids=str)
def test_profile_number_appears_at_the_cited_place(sample: Sample) -> None:
    seed = PROFILES[sample.profile]
    citation = sample.citation(profile_data(sample.profile))
    cited_lines = [int(line) for s, line, _ in CITATION.findall(citation) if s == seed]
    lines = seed_lines(seed)
    assert any(sample.seed_text in lines[n] for n in cited_lines if n < len(lines)), (
        f"{sample}: none of the cited lines {cited_lines} of seed {seed} says {sample.seed_text!r}"
    )
    value = sample.value(load_scenario(profile_path(sample.profile)))
    if isinstance(value, str):
        assert value in sample.seed_text
    else:
        stated = float(NUMBER.search(sample.seed_text)[0])
        assert math.isclose(value, stated, rel_tol=1e-9), f"{sample}: profile has {value}, seed says {stated}"


@needs_seeds
def test_citation_check_catches_wrong_citations() -> None:
    assert citation_problems(['seed 000 line 113: "quorum: 2"']) == ([], 1)
    wrong_line, _ = citation_problems(['seed 000 line 114: "quorum: 2"'])
    unquoted, _ = citation_problems(["seed 000 line 113 says the quorum"])
    past_end, _ = citation_problems(['seed 000 line 9999: "quorum: 2"'])
    assert wrong_line and unquoted and past_end


def test_comments_wrapped_over_lines_are_joined() -> None:
    text = '# seed 000 line 76: "name:\n# network_partition"\nkey: value # seed 000 line 77: "weekly"\n'
    assert CITATION.findall(comment_text(text)) == [
        ("000", "76", "name: network_partition"),
        ("000", "77", "weekly"),
    ]


def test_harness_validate_accepts_every_profile() -> None:
    paths = [str(profile_path(name)) for name in sorted(PROFILES)]
    done = subprocess.run(
        [sys.executable, "-m", "harness", "validate", *paths],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (done.stdout + done.stderr).count("(scenario)") == len(PROFILES)
