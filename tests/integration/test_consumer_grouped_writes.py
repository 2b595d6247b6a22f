"""Grouped writes against the real node: each statement keeps its own WRITETIME and TTL inside
an UNLOGGED batch, in every grouping mode; a record Cassandra refuses is dead-lettered
(``write_rejected``) while the rest of its batch lands and the offsets move on."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from consumer.runtime import build
from consumer.writer import PermanentWriteError
from segflow.db.executions import ExecutionStore
from segflow.db.layout import bucket_of
from segflow.db.registry import SegmentRegistry
from segflow.settings import CassandraSettings, KafkaSettings
from tests.support.consumer_harness import (
    command,
    committed_lag,
    consume_settings,
    produce,
    read_topic,
    running_consumer,
    wait_landed,
    wait_until,
)

pytestmark = pytest.mark.integration

MODES = ["REPLICA_SET", "PARTITION_KEY", "DISABLED"]
BUCKETS = 4


@pytest.mark.parametrize("mode", MODES)
def test_grouped_statements_keep_their_own_writetime_and_ttl(
    mode: str,
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Any,
) -> None:
    segment = f"wt-{uuid.uuid4().hex[:8]}"
    SegmentRegistry(cassandra_session, BUCKETS, 0).create(segment, bucket_count=BUCKETS)
    store = ExecutionStore(cassandra_session)
    eid = store.create("wt", "wt.ndjson", "producer", uuid.uuid4().hex, 1).execution_id
    planned_at = time.time()
    now_ms = int(planned_at * 1000)
    base = int(planned_at * 1_000_000) - 5_000_000
    # Distinct versions, and expiries 1000 s apart: a statement taking a neighbour's timestamp
    # or TTL inside a batch would be off by at least 1 µs / 1000 s.
    expected: dict[str, tuple[int, int | None]] = {}
    records = []
    for i in range(120):
        user = f"user_id:w{i}"
        version = base + i * 7
        expiry_s = None if i % 5 == 0 else 100_000 + 1000 * i
        expires_at_ms = None if expiry_s is None else now_ms + expiry_s * 1000
        records.append(
            (i, command(eid, "FEED_ADD", version, user, [segment], expires_at_ms=expires_at_ms))
        )
        expected[user] = (version, expiry_s)
    settings = consume_settings(
        kafka_settings, cassandra_settings, write_grouping=mode, group_max_rows=50, batch_size=500
    )
    # Produced before the consumer starts, so its first polls see them all: the grouping
    # asserted below does not depend on how a loaded machine spreads them over polls.
    produce(kafka_settings, records, eid)
    with running_consumer(settings) as consumer:
        wait_landed(store, eid, len(records))
        requests = consumer.metrics.grouped_requests._value.get()
        statements = consumer.metrics.cassandra_writes._value.get()
    if mode == "DISABLED":
        assert requests == statements
    elif mode == "PARTITION_KEY":
        # Only the feed rows share partitions (4 buckets); by-user rows and change events
        # (1024 shards) are one partition per user here.
        assert requests < statements - 100, "statements were not grouped"
    else:
        assert requests < statements / 2, "statements were not grouped"

    by_segment = cassandra_session.prepare(
        "SELECT WRITETIME(command_id) AS wt, TTL(command_id) AS ttl FROM {ks}.feed_by_segment "
        "WHERE segment_id = ? AND bucket = ? AND user_key = ?"
    )
    by_user = cassandra_session.prepare(
        "SELECT WRITETIME(feed_member) AS wt, TTL(feed_member) AS ttl FROM {ks}.segments_by_user "
        "WHERE user_key = ? AND segment_id = ?"
    )
    events = cassandra_session.prepare(
        "SELECT WRITETIME(operation) AS wt, TTL(operation) AS ttl, version "
        "FROM {ks}.membership_events WHERE segment_id = ? AND day = ? AND shard = ?"
    )
    for user, (version, expiry_s) in expected.items():
        rows = [
            cassandra_session.execute(by_segment, (segment, bucket_of(user, BUCKETS), user)).one(),
            cassandra_session.execute(by_user, (user, segment)).one(),
        ]
        # The TTLs count down from planning to this read (rows are read one by one, which
        # takes seconds on a loaded machine): the bound is the time elapsed up to now.
        elapsed = time.time() - planned_at
        for row in rows:
            assert row is not None, user
            assert row.wt == version, user
            if expiry_s is None:
                assert row.ttl is None, user
            else:
                # The TTL counts down from planning: within the time this test took of it.
                assert expiry_s - elapsed - 1 <= row.ttl <= expiry_s, (user, row.ttl, expiry_s)
    event_ttl = settings.consumer.events_ttl_days * 86400
    from segflow.db.layout import event_day, event_shard

    seen = 0
    for shard in {event_shard(user) for user in expected}:
        day = event_day(base)
        event_rows = list(cassandra_session.execute(events, (segment, day, shard)))
        elapsed = time.time() - planned_at
        for row in event_rows:
            assert row.wt == row.version
            assert event_ttl - elapsed - 1 <= row.ttl <= event_ttl
            seen += 1
    assert seen == len(expected)


def test_a_record_cassandra_refuses_is_dead_lettered_and_the_batch_lands(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Cassandra 5.0 (storage_compatibility_mode CASSANDRA_4, the default) refuses expirations
    # past 2038-01-19: a FEED_ADD "in until 2045" sent with its TTL gets InvalidRequest. The
    # planner now stores such rows without a TTL (test_far_expiry); with that guard lifted the
    # refusal is real again, and it must not hold its partition: the record is dead-lettered
    # and every other record of its batch is applied.
    monkeypatch.setattr("consumer.plan.MAX_TTL_EXPIRY_MS", 2**62)
    segment = f"rej-{uuid.uuid4().hex[:8]}"
    SegmentRegistry(cassandra_session, BUCKETS, 0).create(segment, bucket_count=BUCKETS)
    store = ExecutionStore(cassandra_session)
    eid = store.create("rej", "rej.ndjson", "producer", uuid.uuid4().hex, 1).execution_id
    version = int(time.time() * 1_000_000)
    far = int(datetime(2045, 1, 1, tzinfo=UTC).timestamp() * 1000)
    records = [
        (i, command(eid, "FEED_ADD", version + i, f"user_id:r{i}", [segment])) for i in range(60)
    ]
    refused = command(eid, "FEED_ADD", version + 100, "user_id:late", [segment])
    refused["expires_at_ms"] = far
    records.insert(30, (60, refused))
    settings = consume_settings(kafka_settings, cassandra_settings, batch_size=500)
    with running_consumer(settings) as consumer:
        produce(kafka_settings, records, eid, shuffle_partitions=1)
        landed = wait_landed(store, eid, len(records))
        wait_until(
            lambda: committed_lag(kafka_settings, settings.consumer.group_id) == 0,
            30,
            "the batch's offsets to be committed",
        )
        assert consumer.metrics.rejected_writes._value.get() >= 1
    assert landed.commands_dead_lettered == 1
    assert landed.commands_applied == len(records) - 1
    letters = read_topic(kafka_settings, kafka_settings.dead_letter_topic, 1)
    assert len(letters) == 1
    headers = dict(letters[0].headers())
    assert headers["dlq.reason"] == b"write_rejected"
    assert b"InvalidRequest" in headers["dlq.error"]
    assert b"user_id:late" not in headers["dlq.error"]
    members = cassandra_session.execute(
        "SELECT user_key FROM {ks}.feed_by_segment WHERE segment_id = %s AND bucket IN (0,1,2,3)",
        (segment,),
    )
    assert {row.user_key for row in members} == {f"user_id:r{i}" for i in range(60)}


def test_a_refusal_no_record_explains_stops_the_consumer_without_dead_letters(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings, cassandra_session: Any
) -> None:
    # events_ttl_days at its bound (20 years) puts every change event past 2038, which this
    # node refuses: the setting is to blame, not the records. Nothing may be dead-lettered or
    # committed; the consumer stops with PermanentWriteError and counts it.
    segment = f"ttl-{uuid.uuid4().hex[:8]}"
    SegmentRegistry(cassandra_session, BUCKETS, 0).create(segment, bucket_count=BUCKETS)
    store = ExecutionStore(cassandra_session)
    eid = store.create("ttl", "ttl.ndjson", "producer", uuid.uuid4().hex, 1).execution_id
    version = int(time.time() * 1_000_000)
    records = [
        (i, command(eid, "FEED_ADD", version + i, f"user_id:t{i}", [segment])) for i in range(20)
    ]
    produce(kafka_settings, records, eid, shuffle_partitions=1)
    settings = consume_settings(kafka_settings, cassandra_settings, events_ttl_days=7300)
    consumer = build(settings)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            consumer.loop.run()
        except BaseException as exc:  # checked below
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        thread.join(timeout=90)
        if thread.is_alive():  # still consuming: it did not stop; end it, then fail
            consumer.loop.stop()
            thread.join(timeout=60)
        assert len(raised) == 1, "the consumer went on instead of stopping"
        assert isinstance(raised[0], PermanentWriteError)
        assert consumer.metrics.unattributed_write_errors._value.get() == 1
        assert consumer.metrics.dead_lettered.labels(reason="write_rejected")._value.get() == 0
    finally:
        consumer.close()
    assert committed_lag(kafka_settings, settings.consumer.group_id) == len(records)
    assert read_topic(kafka_settings, kafka_settings.dead_letter_topic, 1, timeout_s=3) == []
    execution = store.get(eid)
    assert execution is not None
    assert execution.landed == 0
