"""Kafka and Cassandra JVMs killed (SIGKILL) or frozen (SIGSTOP) under a running pipeline."""

from __future__ import annotations

import time

import pytest

from tests.chaos.harness import ChaosWorld

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


def _landed(world: ChaosWorld, execution_id: str) -> int:
    execution = world.store.get(execution_id)
    return execution.landed if execution else 0


@pytest.mark.chaos_ci
def test_cassandra_sigkill_restart_mid_stream(world: ChaosWorld) -> None:
    world.consumer()
    first, second = world.workload(4000, poison_every=250), world.workload(4000, poison_every=250)
    world.produce(first)
    deadline = time.monotonic() + 60
    while _landed(world, first.execution_id) < 1000 and time.monotonic() < deadline:
        time.sleep(0.05)
    world.nodes.kill("cassandra")
    world.produce(second)  # the stream goes on while the node is dead
    time.sleep(3)
    world.nodes.restart()
    world.fault_over()
    world.verify("Cassandra SIGKILL mid-stream, restart")
