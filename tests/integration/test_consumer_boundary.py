"""Issue 13's boundary findings through the real consumer, Kafka and Cassandra.

A version at the contract's maximum (the last µs of year 9999) used to crash every consumer
in turn (``fromtimestamp(version / 1e6)``); a larger one is refused by the contract. Records
at the edges of their ranges are applied, the others dead-lettered, and consuming goes on.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import pytest

from segflow.contract.codec import encode
from segflow.contract.ids import MAX_VERSION
from segflow.contract.records import CommandRecord
from segflow.db.executions import ExecutionStore
from segflow.db.layout import event_shard
from segflow.db.membership import MembershipReader
from segflow.db.registry import SegmentRegistry
from segflow.settings import CassandraSettings, KafkaSettings
from tests.support.consumer_harness import (
    command,
    consume_settings,
    produce,
    read_topic,
    running_consumer,
    segment_and_execution,
    wait_landed,
)

pytestmark = pytest.mark.integration


def test_edge_records_are_applied_or_dead_lettered_and_consuming_goes_on(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings, cassandra_session: Any
) -> None:
    segment, eid = segment_and_execution(cassandra_session, "edge")
    store = ExecutionStore(cassandra_session)
    version = int(time.time() * 1_000_000)
    last = command(eid, "FEED_ADD", MAX_VERSION, "user_id:last", [segment])
    beyond = command(eid, "FEED_ADD", MAX_VERSION + 1, "user_id:beyond", [segment])
    padded = command(eid, "FEED_ADD", version, "email:Jane.Secret@example.com", [segment])
    replace_end = command(eid, "REPLACE_END", MAX_VERSION, None, [segment], member_count=2**63 - 1)
    cut = encode(command(eid, "FEED_ADD", version, "user_id:cut", [segment]))[:-3]
    users = [f"user_id:u{i}" for i in range(20)]
    records: list[tuple[int, CommandRecord | bytes]] = [
        (i, command(eid, "FEED_ADD", version + i, user, [segment])) for i, user in enumerate(users)
    ]
    records += [(20, last), (21, beyond), (22, padded), (23, cut)]
    produce(kafka_settings, records, eid)

    settings = consume_settings(kafka_settings, cassandra_settings)
    with running_consumer(settings):
        landed = wait_landed(store, eid, 24)
    assert (landed.commands_applied, landed.commands_dead_lettered) == (21, 3)

    registered = SegmentRegistry(cassandra_session, 4, 0).get(segment, fresh=True)
    assert registered is not None
    members = {m.user_key for m in MembershipReader(cassandra_session).members(registered)}
    assert members == {*users, "user_id:last"}
    events = cassandra_session.execute(
        f"SELECT user_key, operation FROM {cassandra_settings.keyspace}.membership_events "
        "WHERE segment_id = %s AND day = %s AND shard = %s",
        (segment, date(9999, 12, 31), event_shard("user_id:last")),
    )
    assert [(row.user_key, row.operation) for row in events] == [("user_id:last", "add")]

    letters = read_topic(kafka_settings, kafka_settings.dead_letter_topic, 3)
    reasons = sorted(
        (dict(m.headers())["dlq.reason"].decode(), dict(m.headers())["dlq.error"].decode())
        for m in letters
    )
    assert [reason for reason, _ in reasons] == ["invalid", "invalid", "undecodable"]
    errors = " ".join(error for _, error in reasons)
    assert "version: Input should be less than or equal to 253402300799999999" in errors
    assert "jane" not in errors.lower()

    # A replace ending at the largest version clears the feed layer below it (the member
    # written at that very version stays), and consuming goes on.
    produce(kafka_settings, [(24, replace_end)], eid)
    with running_consumer(settings):
        landed = wait_landed(store, eid, 25)
    assert landed.commands_applied == 22
    registered = SegmentRegistry(cassandra_session, 4, 0).get(segment, fresh=True)
    assert registered is not None
    left = {m.user_key for m in MembershipReader(cassandra_session).members(registered)}
    assert left == {"user_id:last"}
