"""``segflow upload`` under faults: killed and re-run, Kafka killed under it, Cassandra frozen
during its saves, and ``executions cancel`` while it runs; a consumer applies it all."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from segflow.db.executions import Execution, Status
from tests.chaos.harness import ChaosWorld, Proc
from tests.support.consumer_harness import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
LINES = 150_000


def _latest(world: ChaosWorld) -> Execution | None:
    name = world.env["SEGFLOW_UPLOAD__IMPORT_NAME"]
    found = [e for e in world.store.recent(200) if e.import_name == name]
    return found[0] if found else None


def _running(world: ChaosWorld, proc: Proc) -> Execution:
    def started() -> bool:
        assert proc.alive() or proc.popen.returncode == 0, proc.log.read_text()[-3000:]
        execution = _latest(world)
        return execution is not None and execution.status is Status.RUNNING

    wait_until(started, 120, "the upload to start", every_s=0.02)
    execution = _latest(world)
    assert execution is not None
    return execution


def _ended(world: ChaosWorld, execution: Execution, status: Status) -> Execution:
    after = world.store.get(execution.execution_id)
    assert after is not None
    assert after.status is status, after
    return after


def _upload(world: ChaosWorld, source: Path, **settings: str) -> Proc:
    return world.spawn("upload", ["upload", str(source)], **settings)


def test_uploader_kill9_then_rerun(world: ChaosWorld, tmp_path: Path) -> None:
    world.consumer()
    source = world.upload_file(tmp_path / "killed.ndjson", LINES)
    first = _upload(world, source, SEGFLOW_UPLOAD__SAVE_INTERVAL_S="0.2")
    execution = _running(world, first)
    time.sleep(0.3)
    first.kill9()
    world.fault_over()
    again = _upload(world, source)
    assert again.wait(300) == 0, again.log.read_text()[-3000:]
    _ended(world, execution, Status.SUCCEEDED)
    world.expect_upload(execution.execution_id, LINES)
    world.verify("uploader kill -9 mid-upload, re-run of the same file")


def test_kafka_sigkill_during_an_upload(world: ChaosWorld, tmp_path: Path) -> None:
    world.consumer()
    source = world.upload_file(tmp_path / "broker.ndjson", LINES)
    proc = _upload(world, source, SEGFLOW_UPLOAD__QUEUE_MAX_MESSAGES="20000")
    execution = _running(world, proc)
    world.nodes.kill("kafka")
    time.sleep(2)
    world.nodes.restart()
    world.fault_over()
    code = proc.wait(400)
    if code != 0:  # a failed upload says so; re-running the same file completes it
        rerun = _upload(world, source)
        assert rerun.wait(300) == 0, rerun.log.read_text()[-3000:]
    _ended(world, execution, Status.SUCCEEDED)
    world.expect_upload(execution.execution_id, LINES)
    world.verify(f"Kafka SIGKILL + restart during an upload (upload rc {code})")


def test_cassandra_frozen_during_upload_saves(world: ChaosWorld, tmp_path: Path) -> None:
    world.consumer()
    source = world.upload_file(tmp_path / "frozen.ndjson", 400_000)
    proc = _upload(
        world,
        source,
        SEGFLOW_UPLOAD__SAVE_INTERVAL_S="0.2",
        SEGFLOW_CASSANDRA__REQUEST_TIMEOUT_S="1",
    )
    execution = _running(world, proc)
    world.nodes.freeze("cassandra")
    try:
        time.sleep(3.0)
    finally:
        world.nodes.thaw("cassandra")
    world.fault_over()
    assert proc.wait(300) == 0, proc.log.read_text()[-3000:]
    _ended(world, execution, Status.SUCCEEDED)
    world.expect_upload(execution.execution_id, 400_000)
    world.verify("Cassandra SIGSTOP 3 s during an upload's saves", timeout_s=400)


@pytest.mark.chaos_ci
def test_executions_cancel_mid_upload(world: ChaosWorld, tmp_path: Path) -> None:
    world.consumer()
    source = world.upload_file(tmp_path / "canceled.ndjson", 1_000_000)
    proc = _upload(world, source, SEGFLOW_UPLOAD__SAVE_INTERVAL_S="0.2")
    execution = _running(world, proc)
    cancel = world.segflow(["executions", "cancel", execution.execution_id])
    assert cancel.popen.returncode == 0, cancel.log.read_text()
    assert proc.wait(120) == 130, proc.log.read_text()[-3000:]
    world.fault_over()
    after = _ended(world, execution, Status.CANCELED)
    assert 0 < after.commands_produced < 1_000_000
    # What the execution counts as produced is exactly what is on the topic, and it lands.
    world.expect_upload(execution.execution_id, after.commands_produced)
    world.verify("`executions cancel` of a running upload")
