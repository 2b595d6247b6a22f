"""Static checks of the Dockerfile (no Docker engine on CI machines to build it).

Parsed instruction by instruction: multi-stage, a pinned slim base, the runtime stage runs as
a numeric non-root user, probes /healthz, and its entry point is the segflow console script;
the build context (.dockerignore) is limited to what the wheel is built from.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def runtime_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def test_multi_stage_on_a_pinned_slim_base() -> None:
    steps = instructions()
    base = next(rest for keyword, rest in steps if keyword == "ARG" and "PYTHON_IMAGE" in rest)
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+", base)
    stages = [rest for keyword, rest in steps if keyword == "FROM"]
    assert len(stages) >= 2
    assert stages[0].endswith("AS build")
    copies = [rest for keyword, rest in runtime_stage() if keyword == "COPY"]
    assert copies == ["--from=build /opt/segflow /opt/segflow"]  # no sources, no toolchain


def test_build_stage_installs_binary_wheels_only() -> None:
    """No compiler in the slim base: every dependency must come as a wheel, never an sdist."""
    build_steps = instructions()[: len(instructions()) - len(runtime_stage())]
    runs = " ".join(rest for keyword, rest in build_steps if keyword == "RUN")
    assert "pip wheel --no-deps" in runs
    assert "--only-binary=:all:" in runs
    assert "--upgrade" not in runs  # the Python image pins pip; nothing floats


def test_runtime_runs_as_a_numeric_non_root_user() -> None:
    users = [rest for keyword, rest in runtime_stage() if keyword == "USER"]
    assert len(users) == 1
    uid = users[0].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0


def test_healthcheck_and_entry_point() -> None:
    stage = dict(runtime_stage())
    assert "/healthz" in stage["HEALTHCHECK"]
    assert "SEGFLOW_HEALTH_PORT" in stage["HEALTHCHECK"]
    assert json.loads(stage["ENTRYPOINT"]) == ["segflow"]
    assert json.loads(stage["CMD"]) == ["consume"]
    env = stage["ENV"]
    assert "SEGFLOW_CONSUMER__HTTP_HOST=0.0.0.0" in env
    assert "SEGFLOW_SERVE__HOST=0.0.0.0" in env


def test_build_context_is_only_the_sources() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    allowed = {rule.removeprefix("!").rstrip("/") for rule in rules if rule.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "README.md",
        "segflow",
        "consumer",
        "producer_tools",
        "http_api",
        "schemas",
    }
    copied = {
        rest.split()[0]
        for keyword, rest in instructions()
        if keyword == "COPY" and not rest.startswith("--from")
    }
    assert copied <= allowed
