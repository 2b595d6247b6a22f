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


def test_kafka_sigkill_during_dead_letter_heavy_consumption(world: ChaosWorld) -> None:
    """One record in four is poison (three too large to dead-letter whole): the broker dies
    while the consumer is busy dead-lettering, and comes back."""
    world.consumer()
    load = world.workload(12000, poison_every=4, big_poison=3)
    world.produce(load)
    deadline = time.monotonic() + 60
    while _landed(world, load.execution_id) < 1500 and time.monotonic() < deadline:
        time.sleep(0.05)
    world.nodes.kill("kafka")
    time.sleep(2)
    world.nodes.restart()
    world.fault_over()
    world.verify("Kafka SIGKILL + restart while 1 record in 4 is dead-lettered")
