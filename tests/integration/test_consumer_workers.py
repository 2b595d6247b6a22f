"""``segflow consume --workers 2`` as a real process tree against the real stack (issue 13).

- SIGTERM to the parent reaches every worker: the parent exits 0 and leaves no worker behind
  (before, the parent died at once and its workers kept consuming as orphans).
- A worker killed by a signal fails the whole process: the parent stops the other worker and
  exits 128 + 9 (before, it waited forever on the other worker and then reported 0).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from segflow.settings import CassandraSettings, KafkaSettings
from tests.integration.test_consumer_faults import consumer_env
from tests.support.consumer_harness import wait_until

pytestmark = pytest.mark.integration


class Tree:
    """The parent ``segflow consume`` process, its JSON log lines, its worker pids."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[dict[str, object]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                self.lines.append({"msg": line})

    def messages(self, msg: str) -> list[dict[str, object]]:
        return [line for line in list(self.lines) if line.get("msg") == msg]

    def worker_pids(self) -> list[int]:
        return [int(str(line["pid"])) for line in self.messages("worker started")]

    def wait_exit(self, timeout_s: float = 90) -> int:
        code = self.proc.wait(timeout_s)
        self._reader.join(10)
        return code


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@contextmanager
def consume_tree(kafka: KafkaSettings, cassandra: CassandraSettings) -> Iterator[Tree]:
    env = consumer_env(kafka, cassandra, f"workers-{uuid.uuid4().hex[:8]}")
    env["SEGFLOW_LOG__FORMAT"] = "json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "segflow.cli", "consume", "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    tree = Tree(proc)
    try:
        wait_until(
            lambda: len(tree.messages("consumer started")) == 2 or proc.poll() is not None,
            90,
            "both workers to start",
        )
        assert proc.poll() is None, tree.lines[-20:]
        assert len(tree.worker_pids()) == 2
        yield tree
    finally:
        for pid in [proc.pid, *tree.worker_pids()]:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait(30)


def test_sigterm_to_the_parent_stops_every_worker(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings
) -> None:
    with consume_tree(kafka_settings, cassandra_settings) as tree:
        workers = tree.worker_pids()
        tree.proc.send_signal(signal.SIGTERM)
        code = tree.wait_exit()
        still = [pid for pid in workers if running(pid)]
    assert still == [], "workers outlived their parent"
    assert code == 0, tree.lines[-20:]
    assert len(tree.messages("worker exited")) == 2


def test_a_worker_killed_by_a_signal_fails_the_parent(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings
) -> None:
    with consume_tree(kafka_settings, cassandra_settings) as tree:
        victim, other = tree.worker_pids()
        os.kill(victim, signal.SIGKILL)
        code = tree.wait_exit()
        other_alive = running(other)
    assert code == 128 + signal.SIGKILL
    assert not other_alive
    failed = tree.messages("worker failed; stopping the other workers")
    assert [line["pid"] for line in failed] == [victim]
    assert failed[0]["signal"] == "SIGKILL"
