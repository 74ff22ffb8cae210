"""Built-in scenarios for tests and benchmarks: N regions at NovaCron's 5 / 50 / 200 ms tiers."""

from __future__ import annotations

from harness.model import Link, PostgresSettings, RedisSettings, Region, Scenario

REGION_NAMES = ("us-east-1", "eu-west-1", "ap-southeast-1", "us-west-2", "sa-east-1", "eu-central-1")
TIER_LATENCY_SECONDS = (0.005, 0.05, 0.2)


def example_scenario(region_count: int = 3, *, failover: str = "manual") -> Scenario:
    """A sandbox-only scenario: the first region primary, links to it at 5, 50, 200, 5, ... ms one-way."""
    if not 1 <= region_count <= len(REGION_NAMES):
        raise ValueError(f"expected 1 to {len(REGION_NAMES)} regions, got {region_count}")
    names = REGION_NAMES[:region_count]
    links = tuple(
        Link(names[0], name, TIER_LATENCY_SECONDS[(index - 1) % len(TIER_LATENCY_SECONDS)])
        for index, name in enumerate(names)
        if index > 0
    )
    return Scenario(
        name=f"sandbox-{region_count}-regions",
        path=f"<built-in sandbox-{region_count}-regions>",
        regions=tuple(Region(name, primary=index == 0) for index, name in enumerate(names)),
        links=links,
        redis=RedisSettings(
            sentinel_quorum=2, sentinels=3, down_after_seconds=1.0, failover_timeout_seconds=3.0
        ),
        postgres=PostgresSettings(failover=failover),
    )
