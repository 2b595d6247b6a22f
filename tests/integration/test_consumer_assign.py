"""Partitions assigned while the consumer holds an unwritten batch stay paused (issue 13).

``_on_assign`` used to pause the new partitions before the assignment had taken effect (the
client assigns after the callback returns), so the pause was lost and they were fetched while
the batch was held. Driven through the loop's own rebalance callback on the real broker.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from consumer.runtime import build
from segflow.settings import CassandraSettings, KafkaSettings
from tests.support.consumer_harness import consume_settings, produce, wait_until

pytestmark = pytest.mark.integration
RECORDS = 30


@pytest.mark.parametrize("state", ["paused", "holding-before-any-assignment"])
def test_partitions_assigned_while_holding_are_not_fetched(
    state: str, kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings
) -> None:
    produce(kafka_settings, [(i, b"poison %d" % i) for i in range(RECORDS)], None, 3)
    wired = build(consume_settings(kafka_settings, cassandra_settings))
    loop: Any = wired.loop
    consumer = loop._consumer
    try:
        if state == "paused":
            loop._paused = True
        else:
            loop._held_messages = []  # unplanned records held (Cassandra was down)
            loop._pause()
        consumer.subscribe(
            [kafka_settings.commands_topic], on_assign=loop._on_assign, on_revoke=loop._on_revoke
        )
        fetched: list[Any] = []

        def assigned_and_polled() -> bool:
            fetched.extend(m for m in consumer.consume(10, 0.5) if m.error() is None)
            return len(loop._assigned) == kafka_settings.topic_partitions

        wait_until(assigned_and_polled, 60, "the partitions to be assigned")
        # The records are on the broker: a consumer that is not paused gets them in one poll.
        polls_until = time.monotonic() + 5
        while time.monotonic() < polls_until and not fetched:
            fetched.extend(m for m in consumer.consume(10, 0.5) if m.error() is None)
        assert fetched == [], f"{len(fetched)} records fetched while a batch was held"
        consumer.resume(consumer.assignment())

        def all_fetched() -> bool:
            fetched.extend(m for m in consumer.consume(10, 0.5) if m.error() is None)
            return len(fetched) >= RECORDS

        wait_until(all_fetched, 60, "the records once resumed")
    finally:
        consumer.close()
        wired.close()
