"""``segflow stack``: real JVMs on spare ports in a private state dir (not the session stack)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SEGFLOW = [sys.executable, "-m", "segflow.cli"]


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _stack_env(state_dir: Path, **extra: str) -> dict[str, str]:
    kafka, controller, cql, storage = _free_ports(4)
    env = {key: value for key, value in os.environ.items() if not key.startswith("SEGFLOW_")}
    env.update(
        {
            "SEGFLOW_STACK__STATE_DIR": str(state_dir),
            "SEGFLOW_STACK__KAFKA_PORT": str(kafka),
            "SEGFLOW_STACK__KAFKA_CONTROLLER_PORT": str(controller),
            "SEGFLOW_STACK__CASSANDRA_PORT": str(cql),
            "SEGFLOW_STACK__CASSANDRA_STORAGE_PORT": str(storage),
            "SEGFLOW_STACK__KAFKA_HEAP_MB": "256",
            "SEGFLOW_STACK__CASSANDRA_HEAP_MB": "768",
            "SEGFLOW_STACK__START_TIMEOUT_S": "150",
        }
    )
    env.update(extra)
    return env


def _run(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SEGFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _node_pids(state_dir: Path) -> set[int]:
    """Live processes whose command line carries this state dir's node marker."""
    marker = "-Dsegflow.stack.node="
    found: set[int] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and str(state_dir.resolve()) in cmdline and state != "Z":
            found.add(int(proc.name))
    return found


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "stack"
    yield path
    for pid in _node_pids(path):
        os.kill(pid, 9)


def test_up_twice_reuses_and_down_leaves_nothing(state_dir: Path) -> None:
    env = _stack_env(state_dir)
    first = _run(["stack", "up"], env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "kafka: started" in first.stdout
    assert "cassandra: started" in first.stdout
    pids = _node_pids(state_dir)
    assert len(pids) == 2

    second = _run(["stack", "up"], env, timeout=60)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("already running, reused") == 2
    assert _node_pids(state_dir) == pids

    status = _run(["stack", "status"], env, timeout=60)
    assert status.returncode == 0
    assert status.stdout.count("ready (pid") == 2

    down = _run(["stack", "down"], env, timeout=120)
    assert down.returncode == 0, down.stderr
    assert _node_pids(state_dir) == set()
    assert _run(["stack", "status"], env, timeout=60).returncode == 1


def test_taken_port_fails_fast_with_clear_message(state_dir: Path) -> None:
    env = _stack_env(state_dir)
    taken = int(env["SEGFLOW_STACK__CASSANDRA_PORT"])
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", taken))
        blocker.listen()
        begin = time.monotonic()
        result = _run(["stack", "up"], env, timeout=60)
        elapsed = time.monotonic() - begin
    assert result.returncode == 1
    assert f"127.0.0.1:{taken}" in result.stderr
    assert "SEGFLOW_STACK__CASSANDRA_PORT" in result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 30
    assert _node_pids(state_dir) == set()


def test_node_dying_at_startup_fails_with_its_log(state_dir: Path, tmp_path: Path) -> None:
    real_java = shutil.which("java")
    assert real_java is not None
    fake = tmp_path / "crashing-java"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$*" in *StorageTool*) exec ' + real_java + ' "$@";; esac\n'
        "echo 'simulated JVM crash: bad option' >&2\n"
        "exit 1\n"
    )
    fake.chmod(0o755)
    env = _stack_env(state_dir, SEGFLOW_STACK__JAVA=str(fake))
    begin = time.monotonic()
    result = _run(["stack", "up"], env, timeout=120)
    elapsed = time.monotonic() - begin
    assert result.returncode == 1
    assert "exited during startup" in result.stderr
    assert "simulated JVM crash" in result.stderr
    assert elapsed < 60
    assert _node_pids(state_dir) == set()
