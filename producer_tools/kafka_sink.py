"""Produce encoded commands to Kafka: idempotent, acks=all, compressed, bounded memory.

``produce`` never drops a record: when librdkafka's queue is full (``BufferError``) it serves
delivery reports with ``poll()`` until there is room again, so memory stays bounded by
``queue.buffering.max.kbytes`` whatever the file size. Every delivery report is counted; a
failed one fails the execution (``DeliveryFailedError``) instead of being lost silently.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from segflow.settings import KafkaSettings, UploadOptions


class DeliveryFailedError(RuntimeError):
    """At least one record was not acknowledged by the broker."""


class KafkaUnreachableError(RuntimeError):
    """The brokers did not answer a metadata request, or the topic does not exist."""


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

    def __init__(self, kafka: KafkaSettings, options: UploadOptions, topic: str) -> None:
        self.topic = topic
        self.delivered = 0
        self.failed = 0
        self.first_error: str | None = None
        self._producer = Producer(producer_config(kafka, options))
        self._on_delivery = self._delivery_report

    def check_topic(self, timeout_s: float = 10.0) -> int:
        """Partition count of the topic; raises ``KafkaUnreachableError`` otherwise."""
        try:
            metadata = self._producer.list_topics(self.topic, timeout=timeout_s)
        except KafkaException as exc:
            raise KafkaUnreachableError(f"Kafka unreachable: {exc.args[0].str()}") from None
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            reason = topic.error.str() if topic is not None and topic.error else "not found"
            raise KafkaUnreachableError(
                f"topic {self.topic}: {reason} (create it with `segflow topics create`)"
            )
        return len(topic.partitions)

    def produce(
        self, key: bytes | None, value: bytes, headers: list[tuple[str, str | bytes | None]]
    ) -> None:
        """Queue one record, waiting for room when the local queue is full."""
        while True:
            try:
                self._producer.produce(
                    self.topic,
                    value=value,
                    key=key,
                    headers=headers,
                    on_delivery=self._on_delivery,
                )
                return
            except BufferError:
                self._producer.poll(0.05)

    def poll(self) -> None:
        """Serve pending delivery reports without blocking."""
        self._producer.poll(0)

    def flush(self, timeout_s: float = 300.0) -> int:
        """Wait for every queued record; returns how many are still unacknowledged."""
        return int(self._producer.flush(timeout_s))

    def raise_if_failed(self) -> None:
        """Turn any failed delivery into one clear error."""
        if self.failed:
            raise DeliveryFailedError(
                f"{self.failed} record(s) were not delivered to {self.topic}: {self.first_error}"
            )

    def _delivery_report(self, err: KafkaError | None, _msg: Any) -> None:
        if err is None:
            self.delivered += 1
            return
        self.failed += 1
        if self.first_error is None:
            self.first_error = err.str()
