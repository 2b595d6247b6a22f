"""Node loss on the 3-node stack, each run checked against the reference model (I1-I6 of
the chaos harness: nothing lost, Cassandra's two views equal the model).

Topics have 3 replicas and ``min.insync.replicas`` 2, the keyspace 3 replicas, the consumer
writes at LOCAL_QUORUM: one node of each kind may die without an acknowledged write being
lost. Every scenario prints the harness line plus ``consumer_lag_peak`` (the largest committed
lag of the group, sampled every second).

Cassandra node 1 is the contact point of the processes these scenarios start, so the Cassandra
node killed is node 2 or 3; the broker killed is the leader of partition 0 of the commands
topic, whichever it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from segflow.db.executions import Status
from segflow.kafka_admin import admin_client
from tests.chaos.cluster.conftest import LagWatch, report
from tests.chaos.harness import RESULTS, ChaosWorld
from tests.chaos.test_upload_faults import _ended, _running, _upload

pytestmark = pytest.mark.cluster


def _landed(world: ChaosWorld, execution_id: str) -> int:
    execution = world.store.get(execution_id)
    return execution.landed if execution else 0


def _until(what: Callable[[], bool], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not what() and time.monotonic() < deadline:
        time.sleep(0.05)


def leader_broker(world: ChaosWorld, partition: int = 0) -> str:
    """The node name of the broker leading ``partition`` of the commands topic."""
    topic = world.kafka.commands_topic
    metadata = admin_client(world.kafka).list_topics(topic, timeout=30)
    return f"kafka-{metadata.topics[topic].partitions[partition].leader}"


@contextmanager
def watched(world: ChaosWorld) -> Iterator[list[float]]:
    """Sample the group's lag during the scenario, and print the cluster line at the end.

    The scenario appends the seconds each ``restart`` took (kill to the node answering again
    is that plus the few seconds the scenario keeps it down): the line's ``restart_s``.
    """
    watch = LagWatch(world.kafka, f"chaos-{world.tag}")
    restarts: list[float] = []
    try:
        yield restarts
    finally:
        peak = watch.stop()
        if RESULTS and RESULTS[-1].scenario == world.name:
            report(RESULTS[-1], peak, sum(restarts))


def test_cassandra_node_kill9_mid_stream_at_local_quorum(world: ChaosWorld) -> None:
    world.consumer()
    first, second = world.workload(4000, poison_every=250), world.workload(4000, poison_every=250)
    with watched(world) as restarts:
        world.produce(first)
        _until(lambda: _landed(world, first.execution_id) >= 1000)
        world.nodes.kill("cassandra-2")
        world.produce(second)  # the stream goes on at LOCAL_QUORUM: 2 of 3 replicas
        _until(lambda: _landed(world, second.execution_id) >= 1000, 180)
        restarts.append(world.nodes.restart())  # hints replay what node 2 missed
        world.fault_over()
        world.verify("Cassandra node 2 kill -9 mid-stream (LOCAL_QUORUM), restart", 600)


def test_leader_broker_kill9_mid_upload(world: ChaosWorld, tmp_path: Path) -> None:
    lines = 30_000
    world.consumer()
    source = world.upload_file(tmp_path / "leader.ndjson", lines)
    with watched(world) as restarts:
        proc = _upload(world, source, SEGFLOW_UPLOAD__QUEUE_MAX_MESSAGES="5000")
        execution = _running(world, proc)
        leader = leader_broker(world)
        world.nodes.kill(leader)
        time.sleep(5)
        restarts.append(world.nodes.restart())
        world.fault_over()
        code = proc.wait(600)
        assert code == 0, proc.log.read_text()[-3000:]  # acks=all, 2 in-sync replicas left
        _ended(world, execution, Status.SUCCEEDED)
        world.expect_upload(execution.execution_id, lines)
        world.verify(f"{leader} (leader of partition 0) kill -9 mid-upload, restart", 600)


def test_leader_broker_kill9_mid_consumption(world: ChaosWorld) -> None:
    world.consumer()
    load = world.workload(8000, poison_every=200)
    with watched(world) as restarts:
        world.produce(load)
        _until(lambda: _landed(world, load.execution_id) >= 1500)
        leader = leader_broker(world)
        world.nodes.kill(leader)
        time.sleep(5)
        restarts.append(world.nodes.restart())
        world.fault_over()
        world.verify(f"{leader} (leader of partition 0) kill -9 mid-consumption, restart", 600)


def test_one_node_of_each_lost_at_once(world: ChaosWorld) -> None:
    world.consumer()
    first, second = world.workload(4000, poison_every=250), world.workload(4000, poison_every=250)
    with watched(world) as restarts:
        world.produce(first)
        _until(lambda: _landed(world, first.execution_id) >= 1000)
        leader = leader_broker(world)
        world.nodes.kill(leader)
        world.nodes.kill("cassandra-3")
        world.produce(second)
        _until(lambda: _landed(world, second.execution_id) >= 1000, 180)
        restarts.append(world.nodes.restart())
        world.fault_over()
        world.verify(f"{leader} + cassandra-3 kill -9 at once mid-stream, restart", 600)


def test_group_of_three_consumers_across_every_loss(world: ChaosWorld) -> None:
    """Three ``segflow consume`` processes in one group while a Cassandra node, the leader
    broker, and then one of each die and come back, one after the other."""
    for _ in range(3):
        world.consumer()
    loads = [world.workload(3000, poison_every=300) for _ in range(4)]
    with watched(world) as restarts:
        world.produce(loads[0])
        _until(lambda: _landed(world, loads[0].execution_id) >= 1000)
        world.nodes.kill("cassandra-2")
        world.produce(loads[1])
        _until(lambda: _landed(world, loads[1].execution_id) >= 500, 180)
        restarts.append(world.nodes.restart())
        leader = leader_broker(world)
        world.nodes.kill(leader)
        world.produce(loads[2])
        _until(lambda: _landed(world, loads[2].execution_id) >= 500, 180)
        restarts.append(world.nodes.restart())
        other = leader_broker(world, 1)
        world.nodes.kill(other)
        world.nodes.kill("cassandra-3")
        world.produce(loads[3])
        _until(lambda: _landed(world, loads[3].execution_id) >= 500, 180)
        restarts.append(world.nodes.restart())
        world.fault_over()
        world.verify(
            f"3 consumers; cassandra-2, then {leader}, then {other} + cassandra-3, kill -9 "
            "and restart",
            900,
        )
