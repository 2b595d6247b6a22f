"""``segflow topics create``: make the commands and dead-letter topics (idempotent)."""

from __future__ import annotations

import argparse
import sys

from segflow.cli_flags import SettingFlags, add_output_flag, print_json, settings_from
from segflow.kafka_admin import ensure_topics
from segflow.settings import ClientSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``segflow topics create``."""
    topics = subparsers.add_parser("topics", help="Kafka topic management")
    actions = topics.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create", help="create the commands and dead-letter topics if missing"
    )
    SettingFlags(create, ClientSettings).field("kafka.topic_partitions", "--partitions").field(
        "kafka.topic_replication_factor", "--replication-factor"
    )
    add_output_flag(create)
    create.set_defaults(handler=_create)


def _create(args: argparse.Namespace) -> int:
    kafka = settings_from(args, ClientSettings).kafka
    outcome = ensure_topics(kafka)
    if args.output == "json":
        print_json(
            {
                "bootstrap_servers": kafka.bootstrap_servers,
                "partitions": kafka.topic_partitions,
                "replication_factor": kafka.topic_replication_factor,
                "topics": outcome,
            }
        )
    else:
        for name, state in outcome.items():
            print(f"{name}: {state}")
    sys.stdout.flush()
    return 0
