"""Fixtures of the chaos suite: the stack's nodes, one ``ChaosWorld`` per scenario, the table.

Scenarios need the local JVM stack (``segflow stack up``, started by the session if needed):
they signal its nodes by pid. Against any other endpoints they fail, saying why.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segflow.settings import CassandraSettings, StackProcessSettings
from tests.chaos.harness import RESULTS, ChaosWorld, StackNodes, format_table
from tests.support.consumer_harness import unique_topics
from tests.support.endpoints import Endpoints


def _log_dir(name: str) -> Path:
    """Kept after the run (pytest's tmp dirs are rotated by any other session): the
    processes' logs of the scenario's last run, ``$CHAOS_LOG_DIR/<scenario>``."""
    path = Path(os.environ.get("CHAOS_LOG_DIR", ".segflow/chaos-logs")) / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="session")
def stack_nodes(endpoints: Endpoints) -> StackNodes:
    """The local stack's Kafka and Cassandra JVMs."""
    assert endpoints.origin.startswith("local stack"), (
        f"the chaos suite signals the local stack's JVMs and cannot with {endpoints.origin}"
    )
    return StackNodes(StackProcessSettings().stack)


@pytest.fixture
def world(
    request: pytest.FixtureRequest,
    endpoints: Endpoints,
    cassandra_settings: CassandraSettings,
    cassandra_session: Any,
    stack_nodes: StackNodes,
) -> Iterator[ChaosWorld]:
    """Fresh topics (6 partitions), the session keyspace, a log directory, the stack."""
    name = request.node.name.removeprefix("test_")
    with unique_topics(endpoints, "chaos", 6) as kafka:
        chaos = ChaosWorld(
            name,
            kafka,
            cassandra_settings,
            cassandra_session,
            stack_nodes,
            _log_dir(name),
        )
        try:
            yield chaos
        finally:
            chaos.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The table of every scenario run (``make chaos`` ends with it)."""
    if RESULTS:
        terminalreporter.write_sep("=", "chaos scenarios")
        terminalreporter.write_line(format_table(RESULTS))
