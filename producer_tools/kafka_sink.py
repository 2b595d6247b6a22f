"""Produce encoded commands to Kafka: idempotent, acks=all, compressed, bounded memory.

``produce`` never drops a record: when librdkafka's queue is full it waits on delivery reports
(``segflow.kafka_produce``), so memory stays bounded by ``queue.buffering.max.kbytes`` whatever
the file size. Every delivery report is counted; the upload fails its execution when any
record was not acknowledged, with the broker's reason (``first_error``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from segflow.kafka_errors import KafkaUnreachableError, TopicMissingError, is_unreachable_error
from segflow.kafka_produce import Headers, produce_waiting
from segflow.settings import KafkaSettings, UploadOptions


def producer_config(kafka: KafkaSettings, options: UploadOptions) -> dict[str, Any]:
    """librdkafka settings of the uploader (linger/batch chosen by bench/bench_upload.py)."""
    return {
        **kafka.client_config(),
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": options.compression,
        "linger.ms": options.linger_ms,
        "batch.size": options.batch_size_bytes,
        "queue.buffering.max.kbytes": options.queue_max_kbytes,
        "queue.buffering.max.messages": options.queue_max_messages,
        "message.timeout.ms": 300_000,
    }


class CommandSink:
    """One producer for one upload; counts deliveries and remembers the first failure."""

    def __init__(
        self,
        kafka: KafkaSettings,
        options: UploadOptions,
        topic: str,
        producer: Producer | None = None,
    ) -> None:
        """``producer``: a long-lived producer shared by several sinks (the HTTP API's one per
        process); each sink still counts only its own records' delivery reports."""
        self.topic = topic
        self.produced = 0
        self.delivered = 0
        self.failed = 0
        self.first_error: str | None = None
        # The first failure meant the brokers were gone (timeout, transport): exit 3, not 1.
        self.unreachable = False
        self._servers = kafka.bootstrap_servers
        self._probe_timeout_s = kafka.probe_timeout_s
        self._producer = producer or Producer(producer_config(kafka, options))
        self._on_delivery = self._delivery_report
        self._waiting = False
        self._acknowledged = threading.Event()

    def check_topic(self) -> int:
        """Partition count of the topic; raises ``KafkaUnreachableError``/``TopicMissingError``.

        Waits at most ``kafka.probe_timeout_s`` for the brokers.
        """
        try:
            metadata = self._producer.list_topics(self.topic, timeout=self._probe_timeout_s)
        except KafkaException as exc:
            self._producer.poll(0)  # hand librdkafka's queued log lines to logging first
            raise KafkaUnreachableError(self._servers, exc.args[0].str()) from None
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            reason = topic.error.str() if topic is not None and topic.error else "not found"
            raise TopicMissingError(self.topic, reason)
        return len(topic.partitions)

    def produce(self, key: bytes | None, value: bytes, headers: Headers) -> None:
        """Queue one record, waiting for room when the local queue is full."""
        produce_waiting(self._producer, self.topic, key, value, headers, self._on_delivery)
        self.produced += 1

    def poll(self) -> None:
        """Serve pending delivery reports without blocking."""
        self._producer.poll(0)

    def flush(self, timeout_s: float = 300.0) -> int:
        """Wait for every queued record; returns how many are still unacknowledged."""
        unacked = int(self._producer.flush(timeout_s))
        if unacked and not self.failed:
            self.unreachable = True
        return unacked

    def wait_acknowledged(
        self, timeout_s: float, poll_s: float = 0.05, polled_elsewhere: bool = False
    ) -> int:
        """Wait for this sink's own records only (a shared producer's ``flush`` would wait
        for every sink's); returns how many are still unacknowledged.

        ``polled_elsewhere``: another thread serves the producer's delivery reports (the
        HTTP API's poller), so this one just waits to be told.
        """
        deadline = time.monotonic() + timeout_s
        if polled_elsewhere:
            self._waiting = True
            if self.delivered + self.failed < self.produced:
                self._acknowledged.wait(timeout_s)
        while self.delivered + self.failed < self.produced and time.monotonic() < deadline:
            self._producer.poll(poll_s)
        unacked = self.produced - self.delivered - self.failed
        if unacked and not self.failed:
            self.unreachable = True
        return unacked

    def failure(self, unacked: int) -> KafkaUnreachableError | None:
        """The upload's Kafka failure as exit 3 when the brokers were unreachable."""
        if not self.unreachable:
            return None
        return KafkaUnreachableError(
            self._servers,
            f"{self.failed} record(s) not delivered ({self.first_error or 'timed out'}), "
            f"{unacked} unacknowledged",
        )

    def _delivery_report(self, err: KafkaError | None, _msg: Any) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
            if self.first_error is None:
                self.first_error = err.str()
                self.unreachable = is_unreachable_error(err)
        if self._waiting and self.delivered + self.failed >= self.produced:
            self._acknowledged.set()
