"""Background probes stop within 2 s when the run is interrupted (`<run_dir>/stop`, or
harness.interrupts' cancellation), returning what they saw: a rollback never waits for them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.probes import _cancel
from harness.probes.canary import canary_samples
from harness.probes.health import health_checks
from tests.probes.conftest import ApiStandIn


def _stopped_within(probe: Callable[[], dict[str, Any]], run_dir: Path) -> tuple[float, dict[str, Any]]:
    output: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: output.update(probe()), daemon=True)
    thread.start()
    time.sleep(1.0)
    asked = time.monotonic()
    (run_dir / _cancel.STOP_FILE).touch()
    thread.join(timeout=30)
    assert not thread.is_alive()
    return time.monotonic() - asked, output


def _configuration(api: ApiStandIn, run_dir: Path) -> dict[str, Any]:
    url = f"http://127.0.0.1:{api.server_port}"
    return {"run_dir": str(run_dir), "regions": {"us-east-1": {"api_url": url, "primary": True}}}


def test_health_checks_stop_when_asked(api: ApiStandIn, tmp_path: Path) -> None:
    configuration = _configuration(api, tmp_path)
    seconds, output = _stopped_within(lambda: health_checks(600, 1.0, configuration=configuration), tmp_path)
    assert seconds < 2.0
    assert output["samples"] and all(s["ok"] for s in output["samples"])
    assert output["measurements"][0]["name"] == "health_declared_down_seconds"


def test_canary_samples_stop_when_asked(api: ApiStandIn, tmp_path: Path) -> None:
    configuration = _configuration(api, tmp_path)
    seconds, output = _stopped_within(
        lambda: canary_samples(600, ["http"], 20, configuration=configuration), tmp_path
    )
    assert seconds < 2.0
    assert output["requests"] >= 10
