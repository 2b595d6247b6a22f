"""docker-compose.yml is checked by a real Compose parser, not by reading YAML by hand.

The checker (``.ci/tools/composecheck``, Go) loads the file with compose-go, the library
``docker compose`` itself uses: JSON-schema validation, interpolation (``${VAR:-default}``),
normalization and the project consistency checks, then segflow's own rules (healthchecks or
adopted one-shots, ports on 127.0.0.1, pinned images). It is built once per session into
``.segflow/bin/`` and rebuilt only when its sources change. No Docker engine is needed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from segflow.settings import ConsumeSettings, MigrateSettings, SegflowSettings, ServeSettings
from tests.support.settings_env import unknown_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
TOOL_DIR = ROOT / ".ci" / "tools" / "composecheck"
BIN_DIR = ROOT / ".segflow" / "bin"
BINARY = BIN_DIR / "composecheck"
STAMP = BIN_DIR / "composecheck.sha256"

EXPECTED_SERVICES = {
    "kafka",
    "cassandra",
    "kafka-init",
    "cassandra-migrate",
    "stack-ready",
    "consumer",
    "export-api",
    "prometheus",
    "grafana",
}
BUILD_TIMEOUT_S = 600
RUN_TIMEOUT_S = 60

Compose = dict[str, Any]


def _source_hash() -> str:
    """Hash of everything the binary is built from (Go sources, go.mod, go.sum)."""
    digest = hashlib.sha256()
    files = sorted(
        path
        for path in TOOL_DIR.rglob("*")
        if path.is_file() and (path.suffix == ".go" or path.name in {"go.mod", "go.sum"})
    )
    for path in files:
        digest.update(path.relative_to(TOOL_DIR).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def _build_checker() -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail(
            "the Go toolchain (`go`) is not on PATH: it is required to build the Compose file "
            f"checker in {TOOL_DIR.relative_to(ROOT)} (install Go >= 1.24)",
            pytrace=False,
        )
    wanted = _source_hash()
    if BINARY.is_file() and STAMP.is_file() and STAMP.read_text().strip() == wanted:
        return BINARY
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    partial = BIN_DIR / f"composecheck.{os.getpid()}.tmp"
    env = {
        **os.environ,
        # go.mod/go.sum are the pins: never rewrite them from a test run.
        "GOFLAGS": "-mod=readonly -buildvcs=false",
        "CGO_ENABLED": "0",
    }
    result = subprocess.run(
        [go, "build", "-trimpath", "-o", str(partial), "."],
        cwd=TOOL_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        pytest.fail(
            f"building {TOOL_DIR.relative_to(ROOT)} failed (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}",
            pytrace=False,
        )
    partial.replace(BINARY)
    STAMP.write_text(wanted + "\n")
    return BINARY


@pytest.fixture(scope="session")
def composecheck() -> Path:
    """Path of the checker binary, (re)built when its sources changed."""
    return _build_checker()


def _run(binary: Path, compose_file: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # Interpolation reads the environment like `docker compose` does: start from a clean one
    # for the variables the file uses, so a developer's shell cannot change the outcome.
    clean = {key: value for key, value in os.environ.items() if key != "SEGFLOW_TOPIC_PARTITIONS"}
    return subprocess.run(
        [str(binary), str(compose_file)],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def _services_line(stdout: str) -> set[str]:
    for line in stdout.splitlines():
        if line.startswith("services:"):
            return set(line.removeprefix("services:").split())
    raise AssertionError(f"no 'services:' line in the checker's output:\n{stdout}")


def _write_variant(tmp_path: Path, mutate: Callable[[Compose], None]) -> Path:
    compose: Compose = yaml.safe_load(COMPOSE_FILE.read_text())
    mutate(compose)
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(compose, sort_keys=False))
    return path


def test_docker_compose_file_is_valid(composecheck: Path) -> None:
    result = _run(composecheck, COMPOSE_FILE)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    assert _services_line(result.stdout) == EXPECTED_SERVICES


def test_an_unchanged_copy_is_valid(composecheck: Path, tmp_path: Path) -> None:
    """Control for the negative cases: the YAML round trip alone breaks nothing."""
    result = _run(composecheck, _write_variant(tmp_path, lambda compose: None))
    assert result.returncode == 0, result.stderr
    assert _services_line(result.stdout) == EXPECTED_SERVICES


def _unknown_top_level_key(compose: Compose) -> None:
    compose["servics"] = {}


def _depends_on_missing_service(compose: Compose) -> None:
    compose["services"]["kafka-init"]["depends_on"] = {"kafak": {"condition": "service_healthy"}}


def _obsolete_version_key(compose: Compose) -> None:
    compose["version"] = "3.8"


def _port_on_every_interface(compose: Compose) -> None:
    compose["services"]["cassandra"]["ports"] = ["9042:9042"]


def _one_shot_nobody_waits_for(compose: Compose) -> None:
    for service in compose["services"].values():
        depends = service.get("depends_on", {})
        depends.pop("cassandra-migrate", None)
        if not depends:
            service.pop("depends_on", None)


def _long_running_without_healthcheck(compose: Compose) -> None:
    del compose["services"]["kafka"]["healthcheck"]


def _wrong_probe(compose: Compose) -> None:
    compose["services"]["cassandra"]["healthcheck"]["test"] = ["CMD", "true"]


def _undeclared_volume(compose: Compose) -> None:
    del compose["volumes"]["kafka-data"]


def _moving_image_tag(compose: Compose) -> None:
    compose["services"]["stack-ready"]["image"] = "python:3.11-slim"


def _untagged_image(compose: Compose) -> None:
    compose["services"]["grafana"]["image"] = "grafana/grafana"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        pytest.param(_unknown_top_level_key, "'servics' not allowed", id="unknown-top-level-key"),
        pytest.param(
            _depends_on_missing_service,
            'depends on undefined service "kafak"',
            id="depends-on-missing-service",
        ),
        pytest.param(_obsolete_version_key, "`version:` is obsolete", id="version-key"),
        pytest.param(_port_on_every_interface, "bind it to 127.0.0.1", id="port-not-loopback"),
        pytest.param(
            _one_shot_nobody_waits_for, "service_completed_successfully", id="one-shot-unadopted"
        ),
        pytest.param(
            _long_running_without_healthcheck, "neither has a healthcheck", id="no-healthcheck"
        ),
        pytest.param(_wrong_probe, "not the expected probe", id="wrong-probe"),
        pytest.param(_undeclared_volume, "kafka-data", id="undeclared-volume"),
        pytest.param(
            _moving_image_tag, 'image "python:3.11-slim" is not pinned', id="moving-image-tag"
        ),
        pytest.param(_untagged_image, 'image "grafana/grafana" is not pinned', id="untagged-image"),
    ],
)
def test_a_broken_compose_file_is_rejected(
    composecheck: Path, tmp_path: Path, mutate: Callable[[Compose], None], message: str
) -> None:
    result = _run(composecheck, _write_variant(tmp_path, mutate))
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr
    assert "INVALID" in result.stderr


def test_interpolated_partition_count_is_checked(composecheck: Path) -> None:
    """${SEGFLOW_TOPIC_PARTITIONS:-6} is resolved as docker compose would resolve it."""
    assert _run(composecheck, COMPOSE_FILE, SEGFLOW_TOPIC_PARTITIONS="12").returncode == 0
    result = _run(composecheck, COMPOSE_FILE, SEGFLOW_TOPIC_PARTITIONS="zero")
    assert result.returncode == 1
    assert 'SEGFLOW_TOPIC_PARTITIONS="zero" is not a positive integer' in result.stderr


def test_full_stack_services_are_wired_for_production_use() -> None:
    """Consumers: 2 replicas; consumer and API grace periods beyond their shutdown bounds;
    mounted files exist.

    Both segflow services probe /readyz, so `up --wait` means "consuming / serving".
    """
    compose: Compose = yaml.safe_load(COMPOSE_FILE.read_text())
    services = compose["services"]
    consumer = services["consumer"]
    assert consumer["deploy"]["replicas"] == 2
    shutdown_s = int(consumer["environment"]["SEGFLOW_CONSUMER__SHUTDOWN_TIMEOUT_S"])
    assert int(consumer["stop_grace_period"].removesuffix("s")) > shutdown_s
    api = services["export-api"]  # the ingestion requests in flight get their bound too
    api_shutdown_s = int(api["environment"]["SEGFLOW_SERVE__SHUTDOWN_TIMEOUT_S"])
    assert int(api["stop_grace_period"].removesuffix("s")) > api_shutdown_s
    assert services["export-api"]["command"] == ["serve"]
    for name, port in (("consumer", 9400), ("export-api", 8080)):
        assert services[name]["build"]["context"] == "."
        assert f"http://127.0.0.1:{port}/readyz" in " ".join(services[name]["healthcheck"]["test"])
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


@pytest.mark.parametrize(
    ("service", "model"),
    [
        ("consumer", ConsumeSettings),
        ("export-api", ServeSettings),
        ("cassandra-migrate", MigrateSettings),
    ],
)
def test_segflow_services_set_only_settings_their_process_reads(
    service: str, model: type[SegflowSettings]
) -> None:
    """A misspelt SEGFLOW_* variable would be ignored silently by the settings model."""
    compose: Compose = yaml.safe_load(COMPOSE_FILE.read_text())
    names = list(compose["services"][service]["environment"])
    assert any(name.startswith("SEGFLOW_") for name in names)
    assert unknown_settings(model, names) == []
