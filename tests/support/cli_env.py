"""The environment of a ``segflow`` subprocess pointed at a test's topics and keyspace."""

from __future__ import annotations

import os
import uuid

from segflow.settings import CassandraSettings, KafkaSettings


def segflow_env(kafka: KafkaSettings, cassandra: CassandraSettings, **extra: str) -> dict[str, str]:
    """This process's environment without its ``SEGFLOW_*`` variables, plus the test's own."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SEGFLOW_")}
    env.update(
        {
            "SEGFLOW_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "SEGFLOW_KAFKA__COMMANDS_TOPIC": kafka.commands_topic,
            "SEGFLOW_KAFKA__DEAD_LETTER_TOPIC": kafka.dead_letter_topic,
            "SEGFLOW_CASSANDRA__CONTACT_POINTS": ",".join(cassandra.contact_points),
            "SEGFLOW_CASSANDRA__PORT": str(cassandra.port),
            "SEGFLOW_CASSANDRA__KEYSPACE": cassandra.keyspace,
            "SEGFLOW_UPLOAD__IMPORT_NAME": f"test-{uuid.uuid4().hex[:8]}",
            **extra,
        }
    )
    return env
