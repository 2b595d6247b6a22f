"""Dead letters that used to crash or stall the consumer (issue 13), against the real broker.

- A value that fits the commands topic but not once the ``dlq.*`` headers are added: it is
  dead-lettered with its key and original headers and without its value
  (``dlq.value.dropped`` says so and holds the size), and consuming goes on.
- The dead-letter producer in its fatal state (what an idempotence failure leaves): the sink
  replaces it and every dead letter of the batch still reaches the topic.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import Producer

from consumer.dead_letter import VALUE_DROPPED, DeadLetter, DeadLetterSink
from segflow.contract.codec import encode
from segflow.db.executions import ExecutionStore
from segflow.db.membership import MembershipReader
from segflow.db.registry import SegmentRegistry
from segflow.headers import EXECUTION_ID, SEQUENCE
from segflow.kafka_produce import produce_waiting
from segflow.settings import CassandraSettings, KafkaSettings
from tests.support.consumer_harness import (
    command,
    committed_lag,
    consume_settings,
    read_topic,
    running_consumer,
    segment_and_execution,
    wait_landed,
)
from tests.support.kafka_fatal import make_fatal

pytestmark = pytest.mark.integration
# librdkafka's default message.max.bytes is 1,000,000: this value plus its key and headers
# fits, the same plus the dead letter's headers does not.
NEAR_LIMIT = 999_700


def _produce(kafka: KafkaSettings, items: list[tuple[bytes, bytes, list[Any]]]) -> None:
    producer = Producer({**kafka.client_config(), "enable.idempotence": True})
    errors: list[Any] = []
    for key, value, headers in items:
        produce_waiting(
            producer,
            kafka.commands_topic,
            key,
            value,
            headers,
            lambda err, _m: errors.append(err) if err else None,
        )
    assert producer.flush(30) == 0
    assert not errors, errors


def test_a_too_large_dead_letter_keeps_key_and_headers_and_drops_the_value(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings, cassandra_session: Any
) -> None:
    segment, eid = segment_and_execution(cassandra_session, "big")
    store = ExecutionStore(cassandra_session)
    version = int(time.time() * 1_000_000)
    poison = b"\x00" * NEAR_LIMIT  # no single-object marker: undecodable
    poison_headers = [(SEQUENCE, b"0"), (EXECUTION_ID, eid.encode()), ("trace", b"t-1")]
    after = command(eid, "FEED_ADD", version, "user_id:after", [segment])
    _produce(
        kafka_settings,
        [
            (b"user_id:big", poison, poison_headers),
            (b"user_id:after", encode(after), [(SEQUENCE, b"1"), (EXECUTION_ID, eid.encode())]),
        ],
    )
    settings = consume_settings(kafka_settings, cassandra_settings)
    with running_consumer(settings):
        landed = wait_landed(store, eid, 2)
    assert (landed.commands_applied, landed.commands_dead_lettered) == (1, 1)
    assert committed_lag(kafka_settings, settings.consumer.group_id) == 0
    registered = SegmentRegistry(cassandra_session, 4, 0).get(segment, fresh=True)
    assert registered is not None
    members = [m.user_key for m in MembershipReader(cassandra_session).members(registered)]
    assert members == ["user_id:after"]

    letters = read_topic(kafka_settings, kafka_settings.dead_letter_topic, 1)
    assert len(letters) == 1
    letter = letters[0]
    headers = dict(letter.headers())
    assert letter.key() == b"user_id:big"
    assert not letter.value()
    assert headers[VALUE_DROPPED] == str(NEAR_LIMIT).encode()
    assert headers["dlq.reason"] == b"undecodable"
    assert headers["trace"] == b"t-1"
    assert headers[EXECUTION_ID] == eid.encode()


def _letters(count: int, tag: str) -> list[DeadLetter]:
    return [
        DeadLetter("commands", 0, i, f"user_id:{tag}{i}".encode(), b"v", "invalid", "x", None, [])
        for i in range(count)
    ]


def test_a_fatal_dead_letter_producer_is_replaced_and_nothing_is_lost(
    kafka_settings: KafkaSettings,
) -> None:
    sink = DeadLetterSink(kafka_settings)
    try:
        sink.send(_letters(5, "a"))
        make_fatal(sink._producer)
        sink.send(_letters(7, "b"))
        sink.send(_letters(3, "c"))
    finally:
        sink.close()
    assert sink.recreated == 1
    keys = {m.key() for m in read_topic(kafka_settings, kafka_settings.dead_letter_topic, 15)}
    sent = [*_letters(5, "a"), *_letters(7, "b"), *_letters(3, "c")]
    expected = {letter.key for letter in sent}
    assert keys == expected
