"""Fixtures of the node-loss suite (``make chaos-cluster``): a 3-node local stack.

The session's endpoints come from ``segflow stack up`` with ``SEGFLOW_STACK__NODES=3`` (the
make target sets it); topics and the session keyspace then get 3 replicas
(``Endpoints.replication_factor``). Against anything else the suite fails, saying why.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from segflow.settings import StackProcessSettings, StackSettings
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
