"""Locust user classes for harness.actions.load: one class per region, each paced to that region's rate.

Run only by harness.actions.load, as a Locust subprocess (never imported in-process: importing locust
after requests or boto3 fails with RecursionError). The regions come from the
HARNESS_LOAD_TARGETS environment variable: a JSON list of
``{"region": ..., "url": ..., "requests_per_second": ..., "users": ...}``.
Each user writes an item, then reads it back, through the regional API.
"""

from __future__ import annotations

import itertools
import json
import os

from locust import HttpUser, constant_throughput, task

__all__: list[str] = []  # Locust finds the user classes in the module globals

ITEMS = "/api/v1/items/"
_keys = itertools.count(1)


class _RegionalUser(HttpUser):
    abstract = True
    region = ""

    @task
    def write_then_read(self) -> None:
        key = f"load-{self.region}-{os.getpid()}-{next(_keys)}"
        self.client.post(f"{ITEMS}{key}", json={"value": key}, name=f"{self.region} write")
        self.client.get(f"{ITEMS}{key}", name=f"{self.region} read")


def _user_class(target: dict) -> type[HttpUser]:
    users = max(1, int(target["users"]))
    # Each iteration sends two requests (write, read): pace iterations at half the request rate.
    per_user_iterations = float(target["requests_per_second"]) / 2 / users
    return type(
        f"Region_{target['region'].replace('-', '_')}",
        (_RegionalUser,),
        {
            "__module__": __name__,
            "region": target["region"],
            "host": target["url"],
            "fixed_count": users,
            "wait_time": constant_throughput(per_user_iterations),
        },
    )


globals().update(
    (made.__name__, made)
    for made in map(_user_class, json.loads(os.environ.get("HARNESS_LOAD_TARGETS", "[]")))
)
