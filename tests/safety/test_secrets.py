"""Secrets from the `secrets` block and from the environment never reach a file the run writes."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .trials import EXPERIMENTS, ROOT, Estate, run_harness, wait_until_steady

SECRETS = {
    "static secret": "s3cr3t-XYZ-123",
    "secret from the environment": "env-SECRET-445566",
    "credential in configuration from the environment": "cfg-TOKEN-998877",
}


def test_no_secret_in_any_file_the_run_wrote_or_in_its_output(estate: Estate, tmp_path: Path) -> None:
    out, state = tmp_path / "out", tmp_path / "state"
    started = time.time()
    env = {
        "SAFETY_DB_TOKEN": SECRETS["secret from the environment"],
        "SAFETY_API_TOKEN": SECRETS["credential in configuration from the environment"],
    }
    result = run_harness(
        estate, state, "run", str(EXPERIMENTS / "secrets.yaml"), "--scenario", str(estate.scenario_path),
        "--endpoints", str(estate.endpoints_path), "--out", str(out), env=env,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr  # activities failed on purpose: verdict unknown
    written = [p for p in [*out.rglob("*"), *state.rglob("*")] if p.is_file()]
    # and anything the run wrote in its working directory (chaostoolkit.log, say)
    written += [p for p in ROOT.iterdir() if p.is_file() and p.stat().st_mtime >= started]
    assert any(p.name == "run.json" for p in written) and any(p.suffix == ".sqlite3" for p in written)
    for what, value in SECRETS.items():
        for path in written:
            assert value.encode() not in path.read_bytes(), f"{what} found in {path}"
        assert value not in result.stdout + result.stderr, f"{what} printed"
    (run_file,) = out.glob("*/run.json")
    journal = json.loads(run_file.read_text())["record"]["journal"]
    echoed = next(e for e in journal["run"] if e["activity"]["name"] == "echo-secrets")
    assert echoed["output"]["stdout"].split() == ["***", "***", "***"]  # used, then scrubbed
    assert "'***' does not appear to be an IPv4" in json.dumps(journal)  # the error quoted it, scrubbed
    assert wait_until_steady(estate, state) == []
