"""The Containerfile installs exactly what `make` installs (same script, same pip extras), on Debian 12,
as a non-root user with `harness` as the entrypoint, in the layout the exported manifests expect.
No container runtime here: the files are read, not built."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

from harness import schedule

ROOT = Path(__file__).resolve().parents[2]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _commands(shell: str) -> list[list[str]]:
    """The simple commands of a `a && b; c` shell line, as argument lists."""
    return [shlex.split(part) for part in re.split(r"&&|;|\|\|", shell) if part.strip()]


def _pip_installs(commands: list[list[str]]) -> list[list[str]]:
    """What each `pip install` installs: its arguments without options' noise, `--upgrade pip` apart."""
    installs = []
    for words in commands:
        if "pip" in words and "install" in words:
            rest = words[words.index("install") + 1 :]
            installs.append(
                [w for w in rest if w not in ("-q", "--disable-pip-version-check", "--no-cache-dir")]
            )
    return installs


def _makefile_recipes() -> dict[str, list[str]]:
    text = (ROOT / "Makefile").read_text()
    variables = dict(re.findall(r"^([A-Z_]+) :?= (.*)$", text, re.MULTILINE))
    recipes: dict[str, list[str]] = {}
    target = None
    for line in text.splitlines():
        if match := re.match(r"^([^\t#][^:=]*):(?!=)", line):
            target = match.group(1).strip()
            recipes[target] = []
        elif line.startswith("\t") and target:
            command = line.strip().lstrip("@")
            for _ in range(3):  # $(BIN) → $(VENV)/bin → .venv/bin
                command = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), command)
            recipes[target].append(command)
    return recipes


def test_the_containerfile_installs_what_make_installs() -> None:
    recipes = _makefile_recipes()
    make_commands = [c for line in recipes["$(INSTALLED)"] + recipes["system"] for c in _commands(line)]
    steps = _instructions((ROOT / "Containerfile").read_text())
    image_commands = [c for keyword, rest in steps if keyword == "RUN" for c in _commands(rest)]

    # Same system packages: the same script, run as root in the image (make runs it as its user).
    assert ["scripts/install-system-packages"] in make_commands
    assert ["scripts/install-system-packages"] in image_commands
    assert ("COPY", "scripts/install-system-packages scripts/install-system-packages") in steps
    # Same Python packages: the same pip installs, same extras, same editable project, same .venv.
    assert (
        _pip_installs(make_commands)
        == _pip_installs(image_commands)
        == [["--upgrade", "pip"], ["-e", ".[test]"]]
    )
    assert ["python3", "-m", "venv", ".venv"] in image_commands
    assert any(c[0] == ".venv/bin/python" for c in image_commands if "pip" in c)
    assert any(c[0] == ".venv/bin/python" for c in make_commands if "pip" in c)


def test_the_image_is_debian_12_non_root_with_the_harness_entrypoint() -> None:
    steps = _instructions((ROOT / "Containerfile").read_text())
    (base,) = [rest for keyword, rest in steps if keyword == "FROM"]
    assert re.fullmatch(r"debian:(12|bookworm)(-slim)?(@sha256:[0-9a-f]{64})?", base), base
    # Debian 12's python3 is 3.11, the version pyproject.toml asks for.
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11,<3.12"
    users = [rest for keyword, rest in steps if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert users[-1].split(":")[0] == str(schedule.IMAGE_UID)  # the uid the manifests' pods run as
    (entrypoint,) = [json.loads(rest) for keyword, rest in steps if keyword == "ENTRYPOINT"]
    assert entrypoint == ["harness"]
    # The layout the exported CronJobs and Locust Deployments rely on.
    assert ("WORKDIR", "/opt/harness") in steps
    assert schedule.LOCUSTFILE_IN_IMAGE == "/opt/harness/harness/actions/locustfile.py"
    assert (ROOT / "harness/actions/locustfile.py").exists()
    environment = " ".join(rest for keyword, rest in steps if keyword == "ENV")
    assert f"HARNESS_STATE_DIR={schedule.STATE_MOUNT}" in environment
    assert "PATH=/opt/harness/.venv/bin:" in environment  # `harness` and `python -m locust` from the venv
    copied = {rest.split()[0] for keyword, rest in steps if keyword == "COPY"}
    assert {"harness", "scenarios", "experiments"} <= copied  # scenario paths of the jobs resolve
