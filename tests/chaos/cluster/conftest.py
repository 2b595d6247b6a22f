"""Fixtures of the node-loss suite (``make chaos-cluster``): a 3-node local stack.

The session's endpoints come from ``segflow stack up`` with ``SEGFLOW_STACK__NODES=3`` (the
make target sets it); topics and the session keyspace then get 3 replicas
(``Endpoints.replication_factor``). Against anything else the suite fails, saying why.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from typing import Any

import pytest

from segflow.settings import KafkaSettings, StackProcessSettings, StackSettings
from segflow.stack import topology
from segflow.stack.manager import node_process
from tests.chaos.harness import Figures, StackNodes, format_line
from tests.support.consumer_harness import committed_lag
from tests.support.endpoints import Endpoints

SEGFLOW = [sys.executable, "-m", "segflow.cli"]


@pytest.fixture(scope="session")
def cluster_stack(endpoints: Endpoints) -> StackSettings:
    """The 3-node local stack's settings (the session started or reused it)."""
    settings = StackProcessSettings().stack
    assert endpoints.origin.startswith("local stack"), (
        f"the cluster suite kills the local stack's JVMs and cannot with {endpoints.origin}"
    )
    assert settings.nodes >= 3, "run it through `make chaos-cluster` (SEGFLOW_STACK__NODES=3)"
    assert endpoints.replication_factor == 3
    return settings


def stack_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``segflow stack ...`` in a subprocess, with this session's stack settings."""
    return subprocess.run(
        [*SEGFLOW, "stack", *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ClusterNodes(StackNodes):
    """``StackNodes`` over every node of the cluster, by name (``kafka-2``, ``cassandra-3``)."""

    def __init__(self, settings: StackSettings) -> None:
        super().__init__(settings)
        self._procs = {spec.name: node_process(spec) for spec in topology.nodes(settings)}


@pytest.fixture(scope="session")
def stack_nodes(cluster_stack: StackSettings) -> StackNodes:
    """Every JVM of the 3-node stack (the chaos world's ``world.nodes``)."""
    return ClusterNodes(cluster_stack)


class LagWatch:
    """Samples a group's committed lag every second in a thread; ``peak`` is the largest."""

    def __init__(self, kafka: KafkaSettings, group: str) -> None:
        self.peak = 0
        self._stop = threading.Event()

        def run() -> None:
            while not self._stop.wait(1.0):
                with contextlib.suppress(Exception):  # a broker down: no sample this time
                    self.peak = max(self.peak, committed_lag(kafka, group))

        self._thread = threading.Thread(target=run, name="lag-watch", daemon=True)
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=30)
        return self.peak


CLUSTER_RESULTS: list[tuple[Figures, int, float]] = []


def report(figures: Figures, lag_peak: int, restart_s: float) -> None:
    """Print the scenario's cluster line (the harness line, the lag peak and the seconds the
    killed nodes took to answer again) and keep it."""
    CLUSTER_RESULTS.append((figures, lag_peak, restart_s))
    print(
        f"{format_line(figures)} consumer_lag_peak={lag_peak} node_restart_s={restart_s:.0f}",
        flush=True,
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The node-loss table ``make chaos-cluster`` ends with."""
    if not CLUSTER_RESULTS:
        return
    terminalreporter.write_sep("=", "node-loss scenarios (3-node stack)")
    terminalreporter.write_line(
        "| scenario | fault | commands | lost | divergent | node restart s | recovery s "
        "| lag peak | wall s | result |"
    )
    terminalreporter.write_line("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for f, peak, restart in CLUSTER_RESULTS:
        terminalreporter.write_line(
            f"| {f.scenario} | {f.fault} | {f.commands} | {f.lost} | {f.divergent} | "
            f"{restart:.0f} | {f.recovery_s:.1f} | {peak} | {f.wall_s:.0f} | "
            f"{'ok' if f.ok else 'FAILED'} |"
        )
