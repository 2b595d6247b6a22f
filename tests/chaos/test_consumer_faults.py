"""Consumer processes killed, stopped and starved: group members kill -9'd in turn, SIGTERM
with ``--workers 2`` while a batch is held, and a Cassandra that keeps stalling."""

from __future__ import annotations

import time

import pytest

from tests.chaos.harness import ChaosWorld, ConsumerProc

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


def test_rolling_kill9_of_three_group_members(world: ChaosWorld) -> None:
    """Three members; every 4 s one is kill -9'd and started again, while the full operation
    mix (replaces overlapping override users, ties, expiries, poison) streams in."""
    members: list[ConsumerProc] = [world.consumer(batch_size=200) for _ in range(3)]
    loads = [world.workload(3000, poison_every=300) for _ in range(6)]
    feeder = world.feed(loads, every_s=4)

    def kill_one(i: int) -> None:
        victim = members[i % 3]
        victim.kill9()
        members[i % 3] = world.consumer(batch_size=200, wait=False)

    world.every(4.0, kill_one, 36.0)
    feeder.join()
    world.fault_over()
    world.verify("kill -9 of 1 of 3 members every 4 s for 36 s", timeout_s=240)


@pytest.mark.chaos_ci
def test_sigterm_while_a_batch_is_held_with_two_workers(world: ChaosWorld) -> None:
    """Cassandra frozen, so both workers hold their batch; SIGTERM to the parent must stop
    both within the shutdown bound with exit 0, committing nothing unwritten."""
    consumer = world.consumer(workers=2, shutdown_timeout_s=4, write_deadline_s=5)
    first, second = world.workload(3000, poison_every=100), world.workload(2000, poison_every=100)
    world.produce(first)
    time.sleep(1.0)
    world.nodes.freeze("cassandra")
    try:
        world.produce(second)
        time.sleep(3.0)  # both workers now hold a batch they cannot write
        begin = time.monotonic()
        consumer.term()
        code = consumer.wait(60)
        stopped_s = time.monotonic() - begin
    finally:
        world.nodes.thaw("cassandra")
    assert code == 0, consumer.log.read_text()[-3000:]
    # shutdown_timeout_s (4) + the pending Cassandra timeouts; far below the 20 s kill grace
    assert stopped_s < 30, f"the workers took {stopped_s:.0f}s to stop"
    world.fault_over()
    world.consumer(workers=2)  # the next run re-reads whatever was not committed
    world.verify("Cassandra frozen, SIGTERM to `consume --workers 2` holding batches")


def test_slow_cassandra_with_production_poll_settings(world: ChaosWorld) -> None:
    """Cassandra stopped 8 s / running 2 s for 70 s under the default (production) consumer
    settings: the member must stay in its group and lose nothing."""
    world.consumer()
    loads = [world.workload(2500, poison_every=500) for _ in range(4)]
    feeder = world.feed(loads, every_s=12)
    world.freeze_cycle("cassandra", stopped_s=8, running_s=2, duration_s=70)
    feeder.join()
    world.fault_over()
    world.verify("Cassandra SIGSTOP 8 s / SIGCONT 2 s for 70 s", timeout_s=300)
