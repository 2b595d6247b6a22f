"""``segflow topics create``: make the commands and dead-letter topics (idempotent)."""

from __future__ import annotations

import argparse

from segflow.errors import ExitCode, SegflowError
from segflow.kafka_admin import TopicError, ensure_topics
from segflow.settings import ClientSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``segflow topics create``."""
    topics = subparsers.add_parser("topics", help="Kafka topic management")
    actions = topics.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="create the commands and dead-letter topics if missing",
        description="Settings: SEGFLOW_KAFKA__COMMANDS_TOPIC, SEGFLOW_KAFKA__DEAD_LETTER_TOPIC, "
        "SEGFLOW_KAFKA__TOPIC_PARTITIONS, SEGFLOW_KAFKA__TOPIC_REPLICATION_FACTOR.",
    )
    create.add_argument("--partitions", type=int, help="partition count (default from settings)")
    create.set_defaults(handler=_create)


def _create(args: argparse.Namespace) -> int:
    settings = ClientSettings().kafka
    try:
        outcome = ensure_topics(settings, partitions=args.partitions)
    except TopicError as exc:
        raise SegflowError(str(exc), ExitCode.KAFKA_UNREACHABLE) from None
    for name, state in outcome.items():
        print(f"{name}: {state}")
    return 0
