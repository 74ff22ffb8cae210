"""Time `sandbox up` and `sandbox down`: aeon-nova (3 regions, Patroni) and the built-in N-region sandboxes.

    .venv/bin/python benchmarks/sandbox.py [--repeat 5] [--regions 3 5] [--json out.json]
    .venv/bin/python benchmarks/sandbox.py --baseline-ref REV [--repeat 5]

`--baseline-ref` instead takes turns, in fresh processes, between this tree and the harness of
git revision REV, both on REV's aeon-nova file, and prints both and their ratio: a same-run
comparison that load from other work on the machine hits alike.

Targets (issue 22): aeon-nova's full sandbox up ≤ 5 s and down ≤ 1 s (medians). Figures:

* cold: a fresh interpreter on a machine with no PostgreSQL template cached (its own empty
  temporary directory): imports, initdb of the template, then `up`; `down` after it.
* warm: further `up`/`down` rounds in one process, template cached (what a test session or a
  suite of experiments pays per sandbox).

Where the time goes (aeon-nova, 2 cores, measured with the `progress` timestamps and the
components' logs): Patroni is the critical path; everything else is ready within about 1.5 s
in parallel. Before issue 22: etcd 0.2 s, the primary's Patroni 3.8 s (0.6 s to load Python,
~1 s to copy the template onto the ext4 disk, PostgreSQL start, then Patroni's fixed 1 s wait
after a custom bootstrap and a 1 s HA loop), the replicas' Patroni started only then and took
2.4 s (load, pg_basebackup of 46 MB onto disk, start, streaming); down 2.4-3.6 s, nearly all
of it Patroni's clean stop (it retries the DCS and its peers for seconds after its PostgreSQL
is down, then got SIGKILLed at the grace limit). Now: data directories in memory (/dev/shm
when it has 1 GiB free: copy 0.9 s -> 0.1 s, base backups likewise), the replicas' Patroni
started as soon as the primary's holds the initialize key (they load while it bootstraps and
clone the moment its leader key appears), standbys and Patroni replicas made by copying the
template (same system identifier and timeline as the primary, which keeps the WAL since) instead
of pg_basebackup while the sandbox starts, and `down` signals everything at once (Patroni
killed, its PostgreSQL fast-stopped directly) with one bounded wait over a single scan of the
process table per tick. What is left on the critical path is Patroni's own: its Python start,
its one-second sleep after a custom bootstrap, and one HA loop (loop_wait 1 s).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import sandbox
from harness.loading import load_scenario
from harness.sandbox import postgres
from harness.sandbox.examples import example_scenario

UP_TARGET_SECONDS = 5.0
DOWN_TARGET_SECONDS = 1.0
SCENARIO = "aeon-nova"

_COLD_CHILD = """
import json, sys, time
started = time.monotonic()
from harness import sandbox
from harness.loading import load_scenario
box = sandbox.up(load_scenario({scenario!r}), {directory!r})
up = time.monotonic() - started
started = time.monotonic()
sandbox.down({directory!r})
print(json.dumps({{"up": up, "down": time.monotonic() - started}}))
"""


_ROUND_CHILD = """
import json, sys, time
from harness import sandbox
from harness.loading import load_scenario
scenario = load_scenario({scenario!r})
started = time.monotonic()
try:
    sandbox.up(scenario, {directory!r})
    up = time.monotonic() - started
finally:
    started = time.monotonic()
    sandbox.down({directory!r})
print(json.dumps({{"up": up, "down": time.monotonic() - started}}))
"""


def checkout(revision: str, folder: Path) -> Path:
    """The harness package and scenarios of git `revision`, unpacked in `folder`."""
    root = Path(__file__).resolve().parent.parent
    folder.mkdir(mode=0o755, exist_ok=True)
    command = ["git", "-C", str(root), "archive", revision, "harness", "scenarios", "experiments"]
    archive = subprocess.run(command, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def child_round(scenario: str, directory: Path, tree: Path | None) -> dict[str, float]:
    """One up + down in a fresh interpreter (this tree, or the harness of `tree`)."""
    code = _ROUND_CHILD.format(scenario=scenario, directory=str(directory))
    environment = {**os.environ, "PYTHONPATH": str(tree)} if tree else None
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tree,  # `-c` puts the working directory first on sys.path, ahead of PYTHONPATH
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(
            f"round failed ({'baseline' if tree else 'this tree'}): {done.stderr.strip()[-500:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def versus(revision: str, repeat: int, base: Path) -> int:
    """aeon-nova as `revision` defines it, up and down by `revision`'s harness and by this tree's,
    taking turns in one run: the same scenario file, the same load on the machine."""
    tree = checkout(revision, base / "baseline")
    scenario = str(tree / "scenarios" / f"{SCENARIO}.yaml")
    figures: dict[str, dict[str, list[float]]] = {
        "this tree": {"up": [], "down": []},
        revision: {"up": [], "down": []},
    }
    for attempt in range(repeat):
        for name, where in (("this tree", None), (revision, tree)):
            result = child_round(scenario, base / f"versus-{attempt}-{where is None}", where)
            for key in ("up", "down"):
                figures[name][key].append(result[key])
    for name, values in figures.items():
        print(
            f"{SCENARIO} ({revision}'s scenario file), {name}, x{repeat} interleaved: "
            f"up {_summary(values['up'])} | down {_summary(values['down'])}"
        )
    mine, theirs = figures["this tree"], figures[revision]
    print(
        f"this tree / {revision}: up {statistics.median(mine['up']) / statistics.median(theirs['up']):.2f}x, "
        f"down {statistics.median(mine['down']) / statistics.median(theirs['down']):.2f}x (medians)"
    )
    return 0


def cold(base: Path) -> dict[str, float]:
    """One `up` + `down` in a fresh interpreter whose temporary directory holds no template."""
    scratch = base / "cold-tmp"
    scratch.mkdir(mode=0o755)  # PostgreSQL's user (when the harness is root) must reach the template
    code = _COLD_CHILD.format(scenario=SCENARIO, directory=str(base / "cold"))
    environment = {**os.environ, "TMPDIR": str(scratch)}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"cold run failed: {done.stderr.strip().splitlines()[-1:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return {**figures, "process": wall}


def measure(name: str, scenario, repeat: int, base: Path) -> dict:
    """Seconds of each up and down, and how many components each sandbox had."""
    ups, downs, components = [], [], 0
    for attempt in range(repeat):
        directory = base / f"{name}-{attempt}"
        started = time.monotonic()
        try:
            box = sandbox.up(scenario, directory)
            ups.append(time.monotonic() - started)
            components = len(box.endpoints["components"])
        finally:
            started = time.monotonic()
            sandbox.down(directory)
            downs.append(time.monotonic() - started)
    return {"name": name, "components": components, "up_seconds": ups, "down_seconds": downs}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _summary(values: list[float]) -> str:
    return f"median {statistics.median(values):5.2f} s  min {min(values):5.2f} s  max {max(values):5.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--regions", type=int, nargs="*", default=[3, 5], help="built-in sandboxes to time too"
    )
    parser.add_argument("--no-cold", action="store_true", help="skip the fresh-process, no-template run")
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    parser.add_argument(
        "--baseline-ref", help="only compare with the harness of this git revision, interleaved"
    )
    args = parser.parse_args()
    if args.baseline_ref:
        with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as folder:
            Path(folder).chmod(0o755)
            print(f"load average at start: {_load()} ({os.cpu_count()} cores)")
            code = versus(args.baseline_ref, args.repeat, Path(folder))
            print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            return code

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as folder:
        base = Path(folder)
        base.chmod(0o755)
        if not args.no_cold:
            results["cold"] = cold(base)
            figures = results["cold"]
            print(
                f"{SCENARIO} cold (fresh process, template built): up {figures['up']:.2f} s "
                f"down {figures['down']:.2f} s (process {figures['process']:.2f} s)"
            )
        started = time.monotonic()
        postgres.template(postgres.run_as())
        print(f"PostgreSQL template ready in {time.monotonic() - started:.2f} s (cached after the first run)")
        runs = [(SCENARIO, load_scenario(SCENARIO))]
        runs += [(f"builtin-{count}-regions", example_scenario(count)) for count in args.regions]
        results["warm"] = []
        for name, scenario in runs:
            result = measure(name, scenario, args.repeat, base)
            results["warm"].append(result)
            print(
                f"{name}, {result['components']} components, warm x{args.repeat}: "
                f"up {_summary(result['up_seconds'])} | down {_summary(result['down_seconds'])}"
            )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    main_run = results["warm"][0]
    up = statistics.median(main_run["up_seconds"])
    down = statistics.median(main_run["down_seconds"])
    up_ok, down_ok = up <= UP_TARGET_SECONDS, down <= DOWN_TARGET_SECONDS
    print(
        f"targets for {SCENARIO} (medians, warm): up {up:.2f} ≤ {UP_TARGET_SECONDS:g} s "
        f"{'met' if up_ok else 'MISSED'}, down {down:.2f} ≤ {DOWN_TARGET_SECONDS:g} s "
        f"{'met' if down_ok else 'MISSED'}"
    )
    return 0 if up_ok and down_ok else 1


if __name__ == "__main__":
    sys.exit(main())
