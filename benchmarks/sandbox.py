"""Time `sandbox up` and `sandbox down` for the full sandbox of 3 and of 5 regions, five times each.

    .venv/bin/python benchmarks/sandbox.py [--repeat 5] [--regions 3 5] [--json out.json]

Targets (DESIGN.md): up ≤ 10 s and down ≤ 3 s for 3 regions. The first `up` on a machine
also builds the PostgreSQL template (initdb, about 2 s); it is done before timing starts and
reported separately.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness import sandbox
from harness.sandbox import postgres
from harness.sandbox.examples import example_scenario

UP_TARGET_SECONDS = 10.0
DOWN_TARGET_SECONDS = 3.0


def measure(region_count: int, repeat: int, base: Path) -> dict:
    """Seconds of each up and down, and how many components each sandbox had."""
    ups, downs, components = [], [], 0
    for attempt in range(repeat):
        directory = base / f"{region_count}-regions-{attempt}"
        started = time.monotonic()
        try:
            box = sandbox.up(example_scenario(region_count), directory)
            ups.append(time.monotonic() - started)
            components = len(box.endpoints["components"])
        finally:
            started = time.monotonic()
            sandbox.down(directory)
            downs.append(time.monotonic() - started)
    return {"regions": region_count, "components": components, "up_seconds": ups, "down_seconds": downs}


def _summary(values: list[float]) -> str:
    return f"median {statistics.median(values):5.2f} s  max {max(values):5.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--regions", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    args = parser.parse_args()

    started = time.monotonic()
    postgres.template(postgres.run_as())
    print(f"PostgreSQL template ready in {time.monotonic() - started:.2f} s (cached after the first run)")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as base:
        for count in args.regions:
            result = measure(count, args.repeat, Path(base))
            results.append(result)
            print(
                f"{count} regions, {result['components']} components: "
                f"up {_summary(result['up_seconds'])} | down {_summary(result['down_seconds'])}"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    three = next((r for r in results if r["regions"] == 3), None)
    if three is None:
        return 0
    up_ok = max(three["up_seconds"]) <= UP_TARGET_SECONDS
    down_ok = max(three["down_seconds"]) <= DOWN_TARGET_SECONDS
    print(
        f"targets for 3 regions: up ≤ {UP_TARGET_SECONDS:g} s {'met' if up_ok else 'MISSED'}, "
        f"down ≤ {DOWN_TARGET_SECONDS:g} s {'met' if down_ok else 'MISSED'}"
    )
    return 0 if up_ok and down_ok else 1


if __name__ == "__main__":
    sys.exit(main())
