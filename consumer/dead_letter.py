"""The dead-letter topic: records that can never be applied, with the reason, never lost.

A dead-lettered record keeps its original key and value; headers say why (``reason`` is a
short code such as ``undecodable``, ``invalid`` or ``unknown_segment``, ``error`` the detail)
and where it came from (original topic, partition, offset, execution id). The consumer only
stores an offset after the dead-letter write is acknowledged, so a poison record is neither
lost nor able to block its partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Producer

from segflow.kafka_produce import produce_waiting
from segflow.settings import KafkaSettings


@dataclass(frozen=True)
class DeadLetter:
    """One record to dead-letter."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    error: str
    execution_id: str | None
    original_headers: list[tuple[str, bytes]]


class DeadLetterError(RuntimeError):
    """The dead-letter topic did not acknowledge every record."""


class DeadLetterSink:
    """An idempotent producer writing to the dead-letter topic, flushed per batch."""

    def __init__(self, settings: KafkaSettings, flush_timeout_s: float = 30.0) -> None:
        self._topic = settings.dead_letter_topic
        self._timeout = flush_timeout_s
        self._producer = Producer(
            {
                **settings.client_config(),
                "enable.idempotence": True,
                "acks": "all",
                "compression.type": "zstd",
                "linger.ms": 5,
            }
        )

    def send(self, letters: list[DeadLetter]) -> None:
        """Produce and wait for every acknowledgement; raise if any failed."""
        if not letters:
            return
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        for letter in letters:
            headers: list[tuple[str, str | bytes | None]] = [
                *letter.original_headers,
                ("dlq.reason", letter.reason.encode()),
                ("dlq.error", letter.error.encode()[:4096]),
                ("dlq.original.topic", letter.topic.encode()),
                ("dlq.original.partition", str(letter.partition).encode()),
                ("dlq.original.offset", str(letter.offset).encode()),
            ]
            if letter.execution_id:
                headers.append(("dlq.execution_id", letter.execution_id.encode()))
            produce_waiting(
                self._producer, self._topic, letter.key, letter.value, headers, on_delivery, 0.1
            )
        remaining = self._producer.flush(self._timeout)
        if remaining or errors:
            detail = errors[0].str() if errors else f"{remaining} not acknowledged"
            raise DeadLetterError(f"dead-letter topic {self._topic}: {detail}")

    def close(self) -> None:
        """Flush anything left."""
        self._producer.flush(self._timeout)
