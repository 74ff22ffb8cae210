"""The run page's traffic section: the figures grading graded and the failover timeline in order."""

from __future__ import annotations

import re

from harness.model import Event, FaultRecord, Grade, RunRecord, Sample, Verdict
from harness.report._html import render_run_html
from harness.report._view import build_run_view

EAST, WEST = "us-east-1", "eu-west-1"


def _record() -> RunRecord:
    samples = []
    for client in (EAST, WEST):
        for tick in range(320):  # 16 Hz for 20 s; us-east-1's API dies at 10 s, rerouted at 10.6 s
            t = tick / 16
            down = client == EAST and 10.0 <= t < 10.6
            served = "" if down else (WEST if client == EAST and 10.6 <= t < 15.0 else client)
            samples.append(
                Sample(
                    "traffic",
                    t,
                    None if down else 0.001,
                    not down,
                    client,
                    0.001,
                    "HTTP 503" if down else "",
                    served,
                )
            )
    events = [
        Event(0.0, "traffic.started", "traffic", {"region": c, "rate_hz": 16.0, "timeout_seconds": 1.0})
        for c in (EAST, WEST)
    ]
    events += [
        Event(
            0.0,
            "traffic.settings",
            "traffic",
            {"client_regions": [EAST, WEST], "serving_regions": [EAST, WEST], "residency": {WEST: [WEST]}},
        ),
        Event(10.2, "traffic.check_failed", "traffic", {"region": EAST}),
        Event(10.6, "traffic.server_down", "traffic", {"region": EAST}),
        Event(15.0, "traffic.server_up", "traffic", {"region": EAST}),
    ]
    fault = FaultRecord(
        "f", "harness.actions.instances.stop_instance", f"api-{EAST}", 10.0, 14.5, True, "refuses"
    )
    return RunRecord(
        "r",
        "s",
        "t",
        "experiments/region-api-outage.yaml",
        "0",
        "2026-01-01T00:00:00+00:00",
        20.0,
        "completed",
        True,
        events=tuple(events),
        samples=tuple(samples),
        faults=(fault,),
    )


def test_the_traffic_section_shows_the_figures_and_the_steps_in_order() -> None:
    record = _record()
    html = render_run_html(build_run_view(record, Grade("r", "s", "t", Verdict.UNKNOWN, 0.0, ())))
    section = re.sub(r"<[^>]+>", " ", html.split("Traffic failover</h2>", 1)[1].split("<h2>", 1)[0])
    assert "626 ms" in section  # 10.625 s answered at 10.626 s, from the kill at 10.0 s
    steps = [
        "fault",
        "health check first failed",
        "balancer marked the region down",
        "first success elsewhere",
        "sustained OK",
        "fault undone",
        "balancer marked the region up",
    ]
    positions = [section.index(step) for step in steps]
    assert positions == sorted(positions)
    assert "Residency violations" in section


def test_a_run_without_the_traffic_canary_has_no_traffic_section() -> None:
    record = _record()
    plain = RunRecord(**{**{f: getattr(record, f) for f in record.__dataclass_fields__}, "samples": ()})
    html = render_run_html(build_run_view(plain, Grade("r", "s", "t", Verdict.UNKNOWN, 0.0, ())))
    assert "Traffic failover</h2>" not in html
