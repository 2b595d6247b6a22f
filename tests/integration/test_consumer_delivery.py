"""Dead-lettering, offsets and replay against the real broker and Cassandra."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from segflow.contract.records import CommandRecord
from segflow.db.executions import ExecutionStore
from segflow.db.membership import MembershipReader
from segflow.db.registry import SegmentRegistry
from segflow.settings import CassandraSettings, KafkaSettings
from tests.support.consumer_harness import (
    command,
    committed_lag,
    consume_settings,
    produce,
    read_topic,
    running_consumer,
    segment_and_execution,
    wait_landed,
    wait_until,
)

pytestmark = pytest.mark.integration


def feed_add(execution_id: str, user: str, segment: str, version: int) -> CommandRecord:
    return command(execution_id, "FEED_ADD", version, user, [segment], data_bag='{"k": 1}')


def snapshot(session: Any, segment_id: str, users: list[str]) -> tuple[Any, ...]:
    registry = SegmentRegistry(session, 4, 0)
    segment = registry.get(segment_id, fresh=True)
    assert segment is not None
    reader = MembershipReader(session)
    members = sorted((m.user_key, m.via, m.data_bag) for m in reader.members(segment))
    by_user = sorted((u, m.segment_id, m.via) for u in users for m in reader.user_segments(u))
    return tuple(members), tuple(by_user)


def test_poison_records_are_dead_lettered_and_never_block(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings, cassandra_session: Any
) -> None:
    segment, eid = segment_and_execution(cassandra_session, "dlq")
    store = ExecutionStore(cassandra_session)
    version = int(time.time() * 1_000_000)
    users = [f"user_id:u{i}" for i in range(997)]
    records: list[tuple[int, CommandRecord | bytes]] = [
        (i, feed_add(eid, user, segment, version + i)) for i, user in enumerate(users)
    ]
    invalid = feed_add(eid, "not-a-user-key", segment, version + 2000)
    unknown = feed_add(eid, "user_id:ghost", f"missing-{uuid.uuid4().hex[:6]}", version + 2001)
    records[100:100] = [(997, b"\x00not avro at all")]
    records[500:500] = [(998, invalid)]
    records[900:900] = [(999, unknown)]
    produce(kafka_settings, records, eid)

    settings = consume_settings(kafka_settings, cassandra_settings)
    with running_consumer(settings):
        landed = wait_landed(store, eid, 1000)
    assert landed.commands_applied == 997
    assert landed.commands_dead_lettered == 3
    assert committed_lag(kafka_settings, settings.consumer.group_id) == 0

    registered = SegmentRegistry(cassandra_session, 4, 0).get(segment, fresh=True)
    assert registered is not None
    members = {m.user_key for m in MembershipReader(cassandra_session).members(registered)}
    assert members == set(users)

    letters = read_topic(kafka_settings, kafka_settings.dead_letter_topic, 3)
    assert len(letters) == 3
    by_reason = {dict(m.headers())["dlq.reason"].decode(): m for m in letters}
    assert set(by_reason) == {"undecodable", "invalid", "unknown_segment"}
    assert by_reason["undecodable"].value() == b"\x00not avro at all"
    for message in letters:
        headers = dict(message.headers())
        assert headers["dlq.original.topic"].decode() == kafka_settings.commands_topic
        assert int(headers["dlq.original.offset"]) >= 0
        assert headers["dlq.execution_id"].decode() == eid
        assert headers["dlq.error"]
    assert b"user_key" in dict(by_reason["invalid"].headers())["dlq.error"]
    assert b"not-a-user-key" not in dict(by_reason["invalid"].headers())["dlq.error"]


def test_replay_from_the_beginning_changes_nothing(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings, cassandra_session: Any
) -> None:
    segment, eid = segment_and_execution(cassandra_session, "replay")
    store = ExecutionStore(cassandra_session)
    version = int(time.time() * 1_000_000)
    users = [f"email:r{i}@example.com" for i in range(60)]
    records: list[tuple[int, CommandRecord | bytes]] = []
    for i, user in enumerate(users):
        records.append((2 * i, feed_add(eid, user, segment, version + 2 * i)))
        if i % 3 == 0:
            removal = feed_add(eid, user, segment, version + 2 * i + 1)
            removal["operation"], removal["data_bag"] = "FEED_REMOVE", None
            records.append((2 * i + 1, removal))
    produce(kafka_settings, records, eid)
    first = consume_settings(kafka_settings, cassandra_settings)
    with running_consumer(first):
        wait_landed(store, eid, len(records))
    before = snapshot(cassandra_session, segment, users)
    assert len(before[0]) == 40

    # A new group starts from the earliest offset: the whole topic is applied again.
    replay = consume_settings(kafka_settings, cassandra_settings)
    with running_consumer(replay):
        wait_until(
            lambda: committed_lag(kafka_settings, replay.consumer.group_id) == 0,
            60,
            "the replaying group to commit the whole topic",
        )
    assert snapshot(cassandra_session, segment, users) == before
    again = store.get(eid)
    assert again is not None
    assert (again.commands_applied, again.commands_dead_lettered) == (len(records), 0)


def test_two_group_members_share_the_partitions(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings, cassandra_session: Any
) -> None:
    segment, eid = segment_and_execution(cassandra_session, "scale")
    store = ExecutionStore(cassandra_session)
    version = int(time.time() * 1_000_000)
    users = [f"user_id:s{i}" for i in range(600)]
    first = consume_settings(kafka_settings, cassandra_settings)
    second = first.model_copy(deep=True)
    with running_consumer(first) as one, running_consumer(second) as two:
        wait_until(
            lambda: (
                one.metrics.assigned_partitions._value.get() > 0
                and two.metrics.assigned_partitions._value.get() > 0
            ),
            60,
            "both group members to own partitions",
        )
        assert (
            one.metrics.assigned_partitions._value.get()
            + two.metrics.assigned_partitions._value.get()
            == kafka_settings.topic_partitions
        )
        produce(
            kafka_settings,
            [(i, feed_add(eid, user, segment, version + i)) for i, user in enumerate(users)],
            eid,
        )
        landed = wait_landed(store, eid, len(users))
        assert one.metrics.consumed._value.get() > 0
        assert two.metrics.consumed._value.get() > 0
    assert landed.commands_applied == len(users)
    registered = SegmentRegistry(cassandra_session, 4, 0).get(segment, fresh=True)
    assert registered is not None
    members = {m.user_key for m in MembershipReader(cassandra_session).members(registered)}
    assert members == set(users)


def test_metrics_health_and_readiness_endpoints(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings, cassandra_session: Any
) -> None:
    import json
    import urllib.request

    from consumer.runtime import health_server

    segment, eid = segment_and_execution(cassandra_session, "obs")
    store = ExecutionStore(cassandra_session)
    settings = consume_settings(kafka_settings, cassandra_settings)
    with running_consumer(settings) as consumer:
        server = health_server(consumer, "127.0.0.1", 0)
        server.start()
        base = f"http://127.0.0.1:{server.port}"
        try:
            wait_until(lambda: consumer.loop.ready, 60, "the consumer to be ready")
            # The ready gauge is right at scrape time, before anything has asked /readyz.
            with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
                assert "\nsegflow_consumer_ready 1.0\n" in response.read().decode()
            with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
                assert response.status == 200
                assert json.loads(response.read())["cassandra"] is True
            with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
                assert response.status == 200
            version = int(time.time() * 1_000_000)
            produce(
                kafka_settings,
                [(0, feed_add(eid, "user_id:o1", segment, version)), (1, b"garbage")],
                eid,
            )
            wait_landed(store, eid, 2)

            def scrape() -> str:
                with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
                    return str(response.read().decode())

            wait_until(
                lambda: "segflow_consumer_lag_records{partition=" in scrape(),
                30,
                "lag gauges from librdkafka statistics",
            )
            text = scrape()
            assert 'segflow_consumer_commands_applied_total{operation="feed_add"} 1.0' in text
            assert 'segflow_consumer_dead_lettered_total{reason="undecodable"} 1.0' in text
            assert "segflow_consumer_apply_latency_seconds_count" in text
            assert "user_id:o1" not in text
            assert segment not in text
        finally:
            server.stop()
