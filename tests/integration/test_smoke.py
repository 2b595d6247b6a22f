"""Smoke tests: the real broker and the real Cassandra node answer and keep what we write."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from segflow.settings import KafkaSettings

pytestmark = pytest.mark.integration


def test_produce_and_consume_round_trip(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.commands_topic
    producer = Producer({**kafka_settings.client_config(), "enable.idempotence": True})
    delivered: list[tuple[int, int]] = []

    def on_delivery(err: Any, msg: Any) -> None:
        assert err is None, err
        delivered.append((msg.partition(), msg.offset()))

    for index in range(5):
        producer.produce(
            topic,
            key=b"segment-1",
            value=f"v{index}".encode(),
            headers=[("line", str(index).encode())],
            on_delivery=on_delivery,
        )
    assert producer.flush(30) == 0
    assert len(delivered) == 5

    consumer = Consumer(
        {
            **kafka_settings.client_config(),
            "group.id": f"smoke-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    received: list[tuple[Any, Any, Any]] = []
    try:
        for _ in range(60):
            msg = consumer.poll(1.0)
            if msg is None:
                if len(received) == 5:
                    break
                continue
            assert msg.error() is None, msg.error()
            received.append((msg.key(), msg.value(), msg.headers()))
    finally:
        consumer.close()
    # One key -> one partition -> produce order is preserved.
    assert [value for _, value, _ in received] == [f"v{i}".encode() for i in range(5)]
    assert {key for key, _, _ in received} == {b"segment-1"}
    assert [headers for _, _, headers in received] == [
        [("line", str(i).encode())] for i in range(5)
    ]


def test_cassandra_write_and_read_back(cassandra_session: Any) -> None:
    segment_id = f"smoke-{uuid.uuid4().hex[:8]}"
    cassandra_session.execute(
        "INSERT INTO segments (segment_id, technical_name, name) VALUES (%s, %s, %s)",
        (segment_id, "smoke_tn", "Smoke"),
    )
    row = cassandra_session.execute(
        "SELECT technical_name, name FROM segments WHERE segment_id = %s", (segment_id,)
    ).one()
    assert (row.technical_name, row.name) == ("smoke_tn", "Smoke")
