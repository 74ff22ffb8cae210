"""Locust user classes for harness.actions.load: one class per region, each paced to that region's rate.

Run only by Locust processes (never imported in-process: importing locust after requests or boto3
fails with RecursionError). The same file serves a single Locust process, a master and its workers,
on this machine or elsewhere (the container image, `harness schedule export --with-locust-workers`).

The regions come from the HARNESS_LOAD_TARGETS environment variable: a JSON list of
``{"region": ..., "url": ..., "requests_per_second": ..., "users": ...}``. A target without a
``url`` takes its region's ``api_url`` from the endpoints file named by HARNESS_ENDPOINTS (the
Kubernetes Secret the exported Deployments mount). A swarm may retune the rates without a restart:
the harness posts ``harness_targets`` (the same JSON) with it, and the master forwards it to its
workers; each user then paces itself to its region's new rate.

Each user writes an item, then reads it back, through the regional API.

On a master (or a single process) the web UI on loopback gains ``GET /harness/stats``: every
request entry as Locust serializes it (with its response-time histogram, like ``--json-file``)
plus the workers the master knows. A worker sends its final statistics as soon as its users stop,
so a master stopped through its web API holds every request its workers made. The master also
counts the requests each worker reported (``requests_by_worker``; written on quit to the file
HARNESS_LOAD_PER_WORKER_FILE names).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from typing import Any

from locust import HttpUser, events, task
from locust.runners import MasterRunner, WorkerRunner

__all__: list[str] = []  # Locust finds the user classes in the module globals

ITEMS = "/api/v1/items/"
_keys = itertools.count(1)


def _targets() -> list[dict[str, Any]]:
    targets = json.loads(os.environ.get("HARNESS_LOAD_TARGETS") or "[]")
    if any(not t.get("url") for t in targets) and os.environ.get("HARNESS_ENDPOINTS"):
        with open(os.environ["HARNESS_ENDPOINTS"]) as handle:
            regions = json.load(handle).get("regions", {})
        for target in targets:
            target["url"] = target.get("url") or regions.get(target["region"], {}).get("api_url", "")
    return targets


class _RegionalUser(HttpUser):
    abstract = True
    region = ""
    requests_per_second = 1.0  # this region's rate over all its users, on every worker together
    users = 1  # this class's users over all workers (its fixed_count)
    _started = 0.0

    def wait_time(self) -> float:
        """Pace iterations (a write and a read) at this user's share of the region's rate; a slow
        iteration is not made up for with a burst."""
        interval = 1 / (self._requests_per_second() / 2 / self.users)
        now = time.perf_counter()
        self._started = max((self._started or now) + interval, now)
        return self._started - now

    def _requests_per_second(self) -> float:
        options = self.environment.parsed_options
        override = getattr(options, "harness_targets", "") if options is not None else ""
        for target in json.loads(override or "[]"):
            if target.get("region") == self.region and float(target.get("requests_per_second", 0)) > 0:
                return float(target["requests_per_second"])
        return self.requests_per_second

    @task
    def write_then_read(self) -> None:
        key = f"load-{self.region}-{os.getpid()}-{next(_keys)}"
        self.client.post(f"{ITEMS}{key}", json={"value": key}, name=f"{self.region} write")
        self.client.get(f"{ITEMS}{key}", name=f"{self.region} read")


def _user_class(target: dict) -> type[HttpUser]:
    return type(
        f"Region_{target['region'].replace('-', '_')}",
        (_RegionalUser,),
        {
            "__module__": __name__,
            "region": target["region"],
            "host": target["url"],
            "fixed_count": max(1, int(target["users"])),
            "users": max(1, int(target["users"])),
            "requests_per_second": float(target["requests_per_second"]),
        },
    )


globals().update((made.__name__, made) for made in map(_user_class, _targets()))


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    parser.add_argument(
        "--harness-targets", default="", include_in_web_ui=False, help="per-region rates (JSON)"
    )


@events.test_stop.add_listener
def _flush_worker_stats(environment: Any, **_: Any) -> None:
    # A worker otherwise reports every 3 s: its last seconds of requests would miss a master
    # stopped through its web API (Locust itself flushes only on quit).
    if isinstance(environment.runner, WorkerRunner):
        environment.runner._send_stats()


# Requests each worker reported to this master (worker id → count): Locust aggregates them into one
# set of statistics; this shows every worker took its share.
_per_worker: dict[str, int] = {}


@events.worker_report.add_listener
def _count_worker_requests(client_id: str, data: dict[str, Any]) -> None:
    reported = sum(entry["num_requests"] for entry in data.get("stats", ()))
    _per_worker[client_id] = _per_worker.get(client_id, 0) + reported


@events.quit.add_listener
def _save_per_worker(**_: Any) -> None:
    # After the master's quit has collected its workers' final reports.
    if path := os.environ.get("HARNESS_LOAD_PER_WORKER_FILE"):
        with open(path, "w") as handle:
            json.dump(_per_worker, handle)


@events.init.add_listener
def _stats_route(environment: Any, web_ui: Any = None, **_: Any) -> None:
    if web_ui is None:
        return
    from flask import jsonify

    @web_ui.app.route("/harness/stats")
    def harness_stats() -> Any:
        runner = environment.runner
        entries = [e.serialize() for e in runner.stats.entries.values() if e.num_requests or e.num_failures]
        workers = (
            [{"id": w.id, "state": w.state, "user_count": w.user_count} for w in runner.clients.values()]
            if isinstance(runner, MasterRunner)
            else []
        )
        return jsonify(
            {
                "state": runner.state,
                "user_count": runner.user_count,
                "distributed": isinstance(runner, MasterRunner),
                "worker_count": runner.worker_count if isinstance(runner, MasterRunner) else 0,
                "workers": workers,
                "entries": entries,
                "requests_by_worker": _per_worker,
                "total_requests": runner.stats.total.num_requests,
            }
        )
