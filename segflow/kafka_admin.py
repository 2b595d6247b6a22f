"""Create segflow's topics (commands + dead-letter) idempotently.

Auto-creation is disabled on the local broker and usually in production, so topics are made
explicitly with the partition count and replication factor from ``KafkaSettings``. Brokers
that do not answer within ``kafka.probe_timeout_s`` raise ``KafkaUnreachableError`` (exit 3).
"""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from segflow.errors import SegflowError
from segflow.kafka_errors import KafkaUnreachableError, as_unreachable
from segflow.settings import KafkaSettings

RETENTION_MS = str(7 * 24 * 3600 * 1000)


class TopicError(SegflowError):
    """A topic could not be created or inspected (the brokers answered with an error)."""


def admin_client(settings: KafkaSettings) -> AdminClient:
    """An AdminClient with segflow's Kafka settings (auth/TLS included)."""
    return AdminClient(settings.client_config())


def ensure_topics(
    settings: KafkaSettings,
    topics: list[str] | None = None,
    partitions: int | None = None,
    timeout_s: float = 30.0,
) -> dict[str, str]:
    """Create missing topics; returns topic -> ``created`` | ``exists``."""
    names = topics or [settings.commands_topic, settings.dead_letter_topic]
    count = partitions or settings.topic_partitions
    timeout = timeout_s
    admin = admin_client(settings)
    try:
        # Metadata first: an absent cluster fails in probe_timeout_s with a clear reason,
        # instead of create_topics waiting for a controller that never answers.
        admin.list_topics(timeout=settings.probe_timeout_s)
    except KafkaException as exc:
        admin.poll(0)  # hand librdkafka's queued log lines to logging first
        raise KafkaUnreachableError(settings.bootstrap_servers, exc.args[0].str()) from None
    new = [
        NewTopic(
            name,
            num_partitions=count,
            replication_factor=settings.topic_replication_factor,
            config={"retention.ms": RETENTION_MS},
        )
        for name in names
    ]
    outcome: dict[str, str] = {}
    for name, future in admin.create_topics(new, request_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            outcome[name] = "created"
        except KafkaException as exc:
            error = exc.args[0]
            if error.name() == "TOPIC_ALREADY_EXISTS":
                outcome[name] = "exists"
                continue
            unreachable = as_unreachable(exc, settings.bootstrap_servers)
            if unreachable is not None:
                raise unreachable from None
            raise TopicError(f"cannot create topic {name}: {error.str()}") from None
        except TimeoutError:
            raise KafkaUnreachableError(
                settings.bootstrap_servers, f"creating topic {name}: no answer in {timeout:g}s"
            ) from None
    admin.poll(0)
    return outcome


def delete_topics(settings: KafkaSettings, topics: list[str], timeout_s: float = 30.0) -> None:
    """Delete topics (tests clean up after themselves); missing topics are ignored."""
    if not topics:
        return
    admin = admin_client(settings)
    for future in admin.delete_topics(topics, request_timeout=timeout_s).values():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if exc.args[0].name() != "UNKNOWN_TOPIC_OR_PART":
                raise
