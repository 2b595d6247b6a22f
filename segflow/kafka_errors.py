"""Kafka failures as segflow errors: an unreachable cluster or a timeout always means exit 3.

librdkafka reports an absent broker in several ways (a transport error, "all brokers down", a
local or request timeout, a future that never resolves); commands turn every one of them into
the same one line naming the bootstrap servers, so an SRE sees at once which address failed.
"""

from __future__ import annotations

from typing import Any

from segflow.errors import ExitCode, SegflowError

# KafkaError.name() of the errors that mean "the brokers did not answer in time".
UNREACHABLE_ERRORS = frozenset(
    {
        "_TRANSPORT",
        "_ALL_BROKERS_DOWN",
        "_RESOLVE",
        "_TIMED_OUT",
        "_TIMED_OUT_QUEUE",
        "_MSG_TIMED_OUT",
        "_WAIT_COORD",
        "REQUEST_TIMED_OUT",
        "NETWORK_EXCEPTION",
    }
)


class KafkaUnreachableError(SegflowError):
    """The brokers did not answer (connection refused, timeout): exit 3."""

    def __init__(self, bootstrap_servers: str, detail: str) -> None:
        super().__init__(
            f"Kafka unreachable at {bootstrap_servers}: {detail}", ExitCode.KAFKA_UNREACHABLE
        )
        self.bootstrap_servers = bootstrap_servers


class TopicMissingError(SegflowError):
    """The brokers answered but the topic does not exist: exit 3 as well (README)."""

    def __init__(self, topic: str, reason: str = "not found") -> None:
        super().__init__(
            f"topic {topic}: {reason} (create it with `segflow topics create`)",
            ExitCode.KAFKA_UNREACHABLE,
        )


def is_unreachable_error(error: Any) -> bool:
    """Whether a ``KafkaError`` means the brokers could not be reached in time."""
    name = error.name() if hasattr(error, "name") else ""
    return name in UNREACHABLE_ERRORS


def as_unreachable(exc: BaseException, bootstrap_servers: str) -> KafkaUnreachableError | None:
    """``exc`` as ``KafkaUnreachableError`` when it is a Kafka timeout or transport failure."""
    if isinstance(exc, KafkaUnreachableError):
        return exc
    if isinstance(exc, TimeoutError):  # also concurrent.futures.TimeoutError (an alias)
        return KafkaUnreachableError(bootstrap_servers, "no answer in time")
    from confluent_kafka import KafkaException

    if isinstance(exc, KafkaException) and exc.args and is_unreachable_error(exc.args[0]):
        return KafkaUnreachableError(bootstrap_servers, exc.args[0].str())
    return None
