"""One upload test's world: its topics, keyspace, executions and a ``segflow`` runner.

The upload tests all open the same way (unique topics, the session keyspace, an execution
store, a subprocess environment pointed at them); the ``uploads`` fixture builds this once.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from segflow.db.executions import Execution, ExecutionStore
from segflow.settings import CassandraSettings, KafkaSettings
from tests.support.consumer_harness import read_topic, topic_size

SEGFLOW = [sys.executable, "-m", "segflow.cli"]


@dataclass(frozen=True)
class Uploads:
    """A test's Kafka topics and Cassandra keyspace, and ``segflow`` aimed at them."""

    kafka: KafkaSettings
    cassandra: CassandraSettings
    session: Any
    env: dict[str, str]

    @property
    def store(self) -> ExecutionStore:
        """The executions of the session keyspace."""
        return ExecutionStore(self.session)

    @property
    def import_name(self) -> str:
        """The import name this test's uploads run under (unique to the test)."""
        return self.env["SEGFLOW_UPLOAD__IMPORT_NAME"]

    def run(self, args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``segflow ARGS`` to completion, output captured as text."""
        return subprocess.run(
            [*SEGFLOW, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, args: list[str], **popen: Any) -> subprocess.Popen[str]:
        """``segflow ARGS`` in the background (the caller signals and waits for it)."""
        return subprocess.Popen([*SEGFLOW, *args], env=self.env, text=True, **popen)

    def topic_size(self) -> int:
        """Records on the commands topic now."""
        return topic_size(self.kafka, self.kafka.commands_topic)

    def read(self, expected: int, timeout_s: float = 30.0) -> list[Any]:
        """``expected`` records of the commands topic, from its beginning."""
        return read_topic(self.kafka, self.kafka.commands_topic, expected, timeout_s)

    def latest(self) -> Execution | None:
        """The newest execution of this test's import name, if any."""
        for execution in self.store.recent(50):  # newest first (the V011 index)
            if execution.import_name == self.import_name:
                return execution
        return None
