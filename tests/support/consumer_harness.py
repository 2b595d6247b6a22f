"""Run the real consumer (exactly as ``segflow consume`` wires it) in a background thread.

Tests produce records to the real broker and wait on the execution's progress counts — the
same exact-under-redelivery counts ``segflow upload --wait`` uses — before reading the state
back from Cassandra.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Producer

from consumer.runtime import Consumer, build
from segflow.contract.codec import encode
from segflow.contract.records import CommandRecord, command_record
from segflow.db.executions import Execution, ExecutionStore
from segflow.db.registry import SegmentRegistry
from segflow.headers import EXECUTION_ID, SEQUENCE
from segflow.kafka_produce import produce_waiting
from segflow.settings import CassandraSettings, ConsumerOptions, ConsumeSettings, KafkaSettings
from tests.support.endpoints import Endpoints


def command(
    execution_id: str,
    op: str,
    version: int,
    user: str | None,
    segment_ids: list[str],
    **optional: Any,
) -> CommandRecord:
    """A command record with a fresh command id (tests' one way to build commands)."""
    return command_record(
        command_id=uuid.uuid4().hex,
        execution_id=execution_id,
        operation=op,
        version=version,
        user_key=user,
        segment_ids=segment_ids,
        **optional,
    )


def segment_and_execution(session: Any, name: str) -> tuple[str, str]:
    """A fresh segment of 4 buckets and a new one-chunk execution: one test's own world."""
    segment = f"{name}-{uuid.uuid4().hex[:8]}"
    SegmentRegistry(session, 4, 0).create(segment, bucket_count=4)
    execution = ExecutionStore(session).create(
        name, f"{name}.ndjson", "producer", uuid.uuid4().hex, 1
    )
    return segment, execution.execution_id


def consume_settings(
    kafka: KafkaSettings, cassandra: CassandraSettings, **options: Any
) -> ConsumeSettings:
    """Consumer settings for tests: fast polling, small buckets, a free HTTP port."""
    defaults: dict[str, Any] = {
        "group_id": f"test-{uuid.uuid4().hex[:8]}",
        "http_port": 0,
        "default_bucket_count": 4,
        "poll_timeout_s": 0.2,
        "idle_exit_s": 1.0,
        "batch_size": 200,
        "registry_cache_ttl_s": 0.0,
        "statistics_interval_ms": 1000,
    }
    defaults.update(options)
    return ConsumeSettings(kafka=kafka, cassandra=cassandra, consumer=ConsumerOptions(**defaults))


@contextmanager
def running_consumer(
    settings: ConsumeSettings, before_start: Callable[[Consumer], None] | None = None
) -> Iterator[Consumer]:
    """A consumer polling in a thread until the block ends (then it finishes and commits);
    ``before_start`` may instrument it first."""
    consumer = build(settings)
    if before_start is not None:
        before_start(consumer)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            consumer.loop.run()
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=target, name="test-consumer", daemon=True)
    thread.start()
    try:
        yield consumer
    finally:
        consumer.loop.stop()
        thread.join(timeout=60)
        consumer.close()
    assert not thread.is_alive(), "consumer did not stop within 60 s"
    assert not errors, f"consumer loop crashed: {errors[0]!r}"


def produce(
    kafka: KafkaSettings,
    records: Iterable[tuple[int, CommandRecord | bytes]],
    execution_id: str | None,
    shuffle_partitions: int | None = None,
    rng: random.Random | None = None,
) -> int:
    """Produce (sequence, record) pairs; records may be raw bytes (for poison tests).

    With ``shuffle_partitions`` each record goes to a random partition, so delivery order
    across the batch is scrambled.
    """
    producer = Producer({**kafka.client_config(), "enable.idempotence": True, "linger.ms": 5})
    rng = rng or random.Random(0)
    failures: list[Any] = []
    count = 0
    for sequence, record in records:
        value = record if isinstance(record, bytes) else encode(record)
        headers: list[tuple[str, str | bytes | None]] = [(SEQUENCE, str(sequence).encode())]
        if execution_id:
            headers.append((EXECUTION_ID, execution_id.encode()))
        key = None if isinstance(record, bytes) else (record["user_key"] or "").encode()
        produce_waiting(
            producer,
            kafka.commands_topic,
            key,
            value,
            headers,
            lambda err, _m: failures.append(err) if err else None,
            poll_s=0.1,
            partition=rng.randrange(shuffle_partitions) if shuffle_partitions else None,
        )
        count += 1
    assert producer.flush(30) == 0
    assert not failures, failures
    return count


def wait_landed(
    store: ExecutionStore, execution_id: str, expected: int, timeout_s: float = 60.0
) -> Execution:
    """Wait until ``expected`` commands of the execution were applied or dead-lettered."""
    deadline = time.monotonic() + timeout_s
    while True:
        execution = store.get(execution_id)
        landed = execution.landed if execution else 0
        if landed >= expected or time.monotonic() > deadline:
            assert execution is not None, f"execution {execution_id} not found"
            assert landed == expected, f"{landed} of {expected} commands landed"
            return execution
        time.sleep(0.2)


def committed_lag(kafka: KafkaSettings, group_id: str) -> int:
    """Records between the group's committed offsets and the topic's end (0 = all committed)."""
    from confluent_kafka import Consumer as KafkaConsumer
    from confluent_kafka import TopicPartition

    probe = KafkaConsumer(
        {**kafka.client_config(), "group.id": group_id, "enable.auto.commit": False}
    )
    try:
        metadata = probe.list_topics(kafka.commands_topic, timeout=10)
        partitions = [
            TopicPartition(kafka.commands_topic, p)
            for p in metadata.topics[kafka.commands_topic].partitions
        ]
        lag = 0
        for tp in probe.committed(partitions, timeout=10):
            low, high = probe.get_watermark_offsets(tp, timeout=10)
            lag += high - (tp.offset if tp.offset >= 0 else low)
        return lag
    finally:
        probe.close()


def wait_until(condition: Any, timeout_s: float, what: str, every_s: float = 0.2) -> None:
    """Poll ``condition()`` until true; fail the test naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f}s waiting for {what}"
        time.sleep(every_s)


def read_topic(
    kafka: KafkaSettings, topic: str, expected: int, timeout_s: float = 30.0
) -> list[Any]:
    """Read ``expected`` records from the beginning of ``topic`` with a throwaway group."""
    from confluent_kafka import Consumer as KafkaConsumer

    reader = KafkaConsumer(
        {
            **kafka.client_config(),
            "group.id": f"read-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    reader.subscribe([topic])
    found: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < expected and time.monotonic() < deadline:
            message = reader.poll(0.5)
            if message is not None and message.error() is None:
                found.append(message)
        extra = reader.poll(1.0)
        if extra is not None and extra.error() is None:
            found.append(extra)
    finally:
        reader.close()
    return found


def topic_size(kafka: KafkaSettings, topic: str) -> int:
    """Records currently in ``topic`` (sum of high watermarks minus low watermarks)."""
    from confluent_kafka import Consumer as KafkaConsumer
    from confluent_kafka import TopicPartition

    probe = KafkaConsumer({**kafka.client_config(), "group.id": "watermarks"})
    try:
        metadata = probe.list_topics(topic, timeout=10)
        total = 0
        for partition in metadata.topics[topic].partitions:
            low, high = probe.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            total += high - low
        return total
    finally:
        probe.close()


@contextmanager
def unique_topics(
    endpoints: Endpoints, prefix: str = "test", partitions: int = 3
) -> Iterator[KafkaSettings]:
    """Kafka settings whose commands and dead-letter topics are new, deleted afterwards."""
    from segflow.kafka_admin import delete_topics, ensure_topics

    suffix = uuid.uuid4().hex[:10]
    settings = KafkaSettings(
        bootstrap_servers=endpoints.bootstrap_servers,
        commands_topic=f"{prefix}-commands-{suffix}",
        dead_letter_topic=f"{prefix}-dlq-{suffix}",
        topic_partitions=partitions,
        topic_replication_factor=endpoints.replication_factor,
    )
    ensure_topics(settings)
    try:
        yield settings
    finally:
        delete_topics(settings, [settings.commands_topic, settings.dead_letter_topic])


class ConsumerWorld:
    """A module's topics, its session and one running consumer, with the stores tests read."""

    def __init__(self, kafka: KafkaSettings, session: Any) -> None:
        from segflow.db.membership import MembershipReader
        from segflow.db.registry import SegmentRegistry

        self.kafka = kafka
        self.session = session
        self.store = ExecutionStore(session)
        self.registry = SegmentRegistry(session, 4, 0)
        self.reader = MembershipReader(session)


@contextmanager
def consumer_world(
    endpoints: Endpoints,
    cassandra: CassandraSettings,
    prefix: str,
    partitions: int,
    **consume: Any,
) -> Iterator[tuple[KafkaSettings, Any]]:
    """New topics and a running consumer on them (``consume``: consumer options), yielding
    the topics' settings and a session; everything is released afterwards."""
    from segflow.db.session import connect

    with unique_topics(endpoints, prefix, partitions) as kafka:
        cluster, session = connect(cassandra, cassandra.keyspace)
        try:
            with running_consumer(consume_settings(kafka, cassandra, **consume)):
                yield kafka, session
        finally:
            cluster.shutdown()
