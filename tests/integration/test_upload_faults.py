"""``segflow upload`` under faults (issue 13): a Cassandra outage during its progress saves,
and ``executions cancel`` of a running upload. Real uploader process, real broker and node.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from segflow.db.executions import ExecutionStore, Status
from segflow.settings import CassandraSettings, KafkaSettings
from tests.integration.test_upload import _running, mediarithmics_file, segflow, upload_env
from tests.support.consumer_harness import topic_size, wait_until
from tests.support.endpoints import Endpoints

pytestmark = pytest.mark.integration
# Large enough that the upload (~125-170k lines/s) still produces seconds after it starts.
LINES = 1_000_000


def _start(env: dict[str, str], source: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "segflow.cli", "upload", str(source)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_running(store: ExecutionStore, env: dict[str, str]) -> Any:
    wait_until(
        lambda: getattr(_running(store, env), "status", None) is Status.RUNNING,
        120,
        "the upload to start",
        every_s=0.02,
    )
    return _running(store, env)


def test_cassandra_frozen_during_progress_saves_neither_aborts_nor_leaves_running(
    endpoints: Endpoints,
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Any,
    tmp_path: Path,
) -> None:
    pause, resume = endpoints.pause_cassandra, endpoints.resume_cassandra
    assert pause is not None, f"this test freezes Cassandra and cannot with {endpoints.origin}"
    assert resume is not None
    env = upload_env(kafka_settings, cassandra_settings)
    env["SEGFLOW_UPLOAD__SAVE_INTERVAL_S"] = "0.2"
    env["SEGFLOW_CASSANDRA__REQUEST_TIMEOUT_S"] = "1"
    source = tmp_path / "frozen.ndjson"
    mediarithmics_file(source, LINES)
    store = ExecutionStore(cassandra_session)
    proc = _start(env, source)
    try:
        _wait_running(store, env)
        pause()
        try:
            time.sleep(3.0)  # several saves time out meanwhile
        finally:
            resume()
        _, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    assert "not saved" in stderr  # the outage did hit a save
    execution = _running(store, env)
    assert execution is not None
    assert execution.status is Status.SUCCEEDED
    assert execution.commands_produced == LINES
    assert topic_size(kafka_settings, kafka_settings.commands_topic) == LINES


def test_executions_cancel_stops_a_running_upload_and_sticks(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Any,
    tmp_path: Path,
) -> None:
    env = upload_env(kafka_settings, cassandra_settings)
    env["SEGFLOW_UPLOAD__SAVE_INTERVAL_S"] = "0.5"
    source = tmp_path / "canceled.ndjson"
    mediarithmics_file(source, LINES)
    store = ExecutionStore(cassandra_session)
    proc = _start(env, source)
    try:
        execution = _wait_running(store, env)
        canceled = segflow(["executions", "cancel", execution.execution_id], env)
        assert canceled.returncode == 0, canceled.stderr
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    after = store.get(execution.execution_id)
    assert after is not None
    assert after.status is Status.CANCELED
    assert after.error == "canceled by `segflow executions cancel`"
    assert 0 < after.commands_produced < LINES
    # What was counted as produced was flushed, and nothing more was read after the cancel.
    assert topic_size(kafka_settings, kafka_settings.commands_topic) == after.commands_produced
