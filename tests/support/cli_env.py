"""The environment of a ``segflow`` subprocess pointed at a test's topics and keyspace, and a
way to run one."""

from __future__ import annotations

import os
import subprocess
import sys
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


def run_segflow(
    env: dict[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``segflow ARGS`` in a subprocess with ``env``: its exit code, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "segflow.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
