"""``segflow upload`` under faults (issue 13): a Cassandra outage during its progress saves,
and ``executions cancel`` of a running upload. Real uploader process, real broker and node.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from segflow.db.executions import Status
from tests.integration.test_upload import mediarithmics_file
from tests.support.consumer_harness import wait_until
from tests.support.endpoints import Endpoints
from tests.support.uploads import Uploads

pytestmark = pytest.mark.integration
# Large enough that the upload (~125-170k lines/s) still produces seconds after it starts.
LINES = 1_000_000


def _start(uploads: Uploads, source: Path) -> subprocess.Popen[str]:
    return uploads.start(["upload", str(source)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_running(uploads: Uploads) -> Any:
    wait_until(
        lambda: getattr(uploads.latest(), "status", None) is Status.RUNNING,
        120,
        "the upload to start",
        every_s=0.02,
    )
    return uploads.latest()


def test_cassandra_frozen_during_progress_saves_neither_aborts_nor_leaves_running(
    endpoints: Endpoints, uploads: Uploads, tmp_path: Path
) -> None:
    pause, resume = endpoints.pause_cassandra, endpoints.resume_cassandra
    assert pause is not None, f"this test freezes Cassandra and cannot with {endpoints.origin}"
    assert resume is not None
    env = uploads.env
    env["SEGFLOW_UPLOAD__SAVE_INTERVAL_S"] = "0.2"
    env["SEGFLOW_CASSANDRA__REQUEST_TIMEOUT_S"] = "1"
    source = tmp_path / "frozen.ndjson"
    mediarithmics_file(source, LINES)
    proc = _start(uploads, source)
    try:
        _wait_running(uploads)
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
    execution = uploads.latest()
    assert execution is not None
    assert execution.status is Status.SUCCEEDED
    assert execution.commands_produced == LINES
    assert uploads.topic_size() == LINES


def test_executions_cancel_stops_a_running_upload_and_sticks(
    uploads: Uploads, tmp_path: Path
) -> None:
    env = uploads.env
    env["SEGFLOW_UPLOAD__SAVE_INTERVAL_S"] = "0.5"
    source = tmp_path / "canceled.ndjson"
    mediarithmics_file(source, LINES)
    proc = _start(uploads, source)
    try:
        execution = _wait_running(uploads)
        canceled = uploads.run(["executions", "cancel", execution.execution_id])
        assert canceled.returncode == 0, canceled.stderr
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    after = uploads.store.get(execution.execution_id)
    assert after is not None
    assert after.status is Status.CANCELED
    assert after.error == "canceled by `segflow executions cancel`"
    assert 0 < after.commands_produced < LINES
    # What was counted as produced was flushed, and nothing more was read after the cancel.
    assert uploads.topic_size() == after.commands_produced
