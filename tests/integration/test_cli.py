"""The CLI against the real broker and Cassandra: exit codes, exact lines, output for scripts.

Every test runs ``python -m segflow.cli`` as a subprocess and reads the resulting state back
from Kafka or Cassandra: what a script would see, and what really happened.
"""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import zstandard

from segflow.db.executions import ExecutionStore, Status
from segflow.db.migrate import discover
from segflow.db.registry import SegmentRegistry
from segflow.kafka_admin import admin_client, delete_topics
from segflow.settings import CassandraSettings, KafkaSettings
from tests.support.cli_env import segflow_env
from tests.support.consumer_harness import consume_settings, read_topic, running_consumer

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "producer_tools" / "examples"
SEGFLOW = [sys.executable, "-m", "segflow.cli"]


def cli_env(kafka: KafkaSettings, cassandra: CassandraSettings, **extra: str) -> dict[str, str]:
    return segflow_env(kafka, cassandra, SEGFLOW_LOG__FORMAT="json", **extra)


def segflow(
    args: list[str], env: dict[str, str], stdin: bytes | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SEGFLOW, *args],
        env=env,
        input=None if stdin is None else stdin.decode(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kafka_down_env(
    kafka: KafkaSettings, cassandra: CassandraSettings, **extra: str
) -> tuple[int, dict[str, str]]:
    """A CLI environment whose bootstrap server is a closed local port (and that port)."""
    port = closed_port()
    down = kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{port}"})
    return port, cli_env(down, cassandra, **extra)


def assert_json_lines(lines: list[str]) -> list[dict[str, Any]]:
    """Every line is one JSON object (no raw ``%3|...`` librdkafka line in between)."""
    parsed = []
    for line in lines:
        assert not line.startswith("%"), line
        parsed.append(json.loads(line))
    return parsed


# --- Kafka down ------------------------------------------------------------------------


def test_kafka_down_upload_and_topics_create_exit_3_naming_the_servers(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings
) -> None:
    port, env = kafka_down_env(
        kafka_settings, cassandra_settings, SEGFLOW_KAFKA__PROBE_TIMEOUT_S="3"
    )
    prefix = f"segflow: error: Kafka unreachable at 127.0.0.1:{port}: "
    for args in (["upload", str(EXAMPLES / "village_overrides.ndjson")], ["topics", "create"]):
        result = segflow(args, env)
        lines = result.stderr.splitlines()
        assert result.returncode == 3, result.stderr
        assert lines[-1].startswith(prefix), lines[-1]
        logged = assert_json_lines(lines[:-1])
        assert len(logged) <= 6, result.stderr  # was 194 raw lines (586 for topics create)
        assert all(entry["bootstrap_servers"] == f"127.0.0.1:{port}" for entry in logged)
        assert result.stdout == ""


def test_kafka_down_consumer_logs_stay_json_and_rate_limited(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings
) -> None:
    port, env = kafka_down_env(kafka_settings, cassandra_settings, SEGFLOW_CONSUMER__HTTP_PORT="0")
    proc = subprocess.Popen(
        [*SEGFLOW, "consume"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    time.sleep(8)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    logged = assert_json_lines(err.splitlines())
    kafka_lines = [entry for entry in logged if str(entry["logger"]).startswith("kafka")]
    assert kafka_lines, err
    assert len(kafka_lines) <= 12, err  # was ~420 lines in 10 s (224 raw + 196 JSON)
    assert any(
        str(entry["msg"]).startswith(f"Kafka unreachable at 127.0.0.1:{port}: ")
        for entry in kafka_lines
    )


# --- output for scripts ------------------------------------------------------------------


def test_topics_create_json_then_exists(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings
) -> None:
    suffix = uuid.uuid4().hex[:8]
    fresh = kafka_settings.model_copy(
        update={"commands_topic": f"cli-cmd-{suffix}", "dead_letter_topic": f"cli-dlq-{suffix}"}
    )
    env = cli_env(fresh, cassandra_settings)
    try:
        first = segflow(["topics", "create", "--partitions", "2", "-o", "json"], env)
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["topics"] == {
            fresh.commands_topic: "created",
            fresh.dead_letter_topic: "created",
        }
        metadata = admin_client(fresh).list_topics(timeout=10)
        assert len(metadata.topics[fresh.commands_topic].partitions) == 2
        again = segflow(["topics", "create", "-o", "json"], env)
        assert json.loads(again.stdout)["topics"][fresh.commands_topic] == "exists"
        bad = segflow(["topics", "create", "--partitions", "0"], env)
        assert bad.returncode == 2
        assert bad.stderr.splitlines() == [
            "segflow: error: --partitions 0: Input should be greater than or equal to 1"
        ]
    finally:
        delete_topics(fresh, [fresh.commands_topic, fresh.dead_letter_topic])


def test_db_migrate_json_lists_what_the_keyspace_holds(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings
) -> None:
    result = segflow(["db", "migrate", "-o", "json"], cli_env(kafka_settings, cassandra_settings))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["keyspace"] == cassandra_settings.keyspace
    assert document["applied"] == []
    assert document["already_applied"] == [f"V{m.version:03d}" for m in discover()]


def test_segments_json_matches_the_registry(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings, cassandra_session: Any
) -> None:
    env = cli_env(kafka_settings, cassandra_settings)
    segment_id = f"cli-seg-{uuid.uuid4().hex[:8]}"
    created = segflow(
        ["segments", "create", segment_id, "--name", "CLI", "--buckets", "8", "-o", "json"], env
    )
    assert created.returncode == 0, created.stderr
    document = json.loads(created.stdout)
    stored = SegmentRegistry(cassandra_session, 4, 0).get(segment_id, fresh=True)
    assert stored is not None
    assert (document["created"], document["bucket_count"], stored.bucket_count) == (True, 8, 8)
    listed = json.loads(segflow(["segments", "list", "-o", "json"], env).stdout)
    assert next(s for s in listed if s["segment_id"] == segment_id)["name"] == "CLI"
    shown = json.loads(segflow(["segments", "show", segment_id, "-o", "json"], env).stdout)
    assert shown["bucket_count"] == 8
    bad = segflow(["segments", "create", "x", "--buckets", "0"], env)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "segflow: error: --buckets 0: Input should be greater than or equal to 1"
    ]


def test_upload_json_stdin_and_zstd_land_on_the_topic(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Any,
    tmp_path: Path,
) -> None:
    env = cli_env(kafka_settings, cassandra_settings)
    store = ExecutionStore(cassandra_session)
    plain = (EXAMPLES / "village_overrides.ndjson").read_bytes()

    piped = segflow(["upload", "-", "-o", "json"], env, stdin=plain)
    assert piped.returncode == 0, piped.stderr
    execution = json.loads(piped.stdout)
    digest = hashlib.sha256(plain).hexdigest()
    assert execution["file_name"] == f"stdin-{digest[:16]}"
    assert execution["content_sha256"] == digest
    stored = store.get(execution["execution_id"])
    assert stored is not None
    assert stored.status is Status.SUCCEEDED
    assert stored.commands_produced == execution["commands_produced"] == 4

    packed = tmp_path / "overrides.ndjson.zst"
    packed.write_bytes(zstandard.ZstdCompressor().compress(plain))
    zst = segflow(["upload", "--new-execution", "-o", "json", str(packed)], env)
    assert zst.returncode == 0, zst.stderr
    assert json.loads(zst.stdout)["commands_produced"] == 4
    assert len(read_topic(kafka_settings, kafka_settings.commands_topic, 8)) == 8

    listed = segflow(["executions", "list", "--limit", "50", "-o", "json"], env)
    ids = {row["execution_id"] for row in json.loads(listed.stdout)}
    assert execution["execution_id"] in ids


def test_upload_wait_reports_progress_then_the_final_execution(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Any,
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:8]
    segment_id = f"cli-wait-{tag}"
    SegmentRegistry(cassandra_session, 4, 0).create(segment_id, bucket_count=4)
    source = tmp_path / "wait.ndjson"
    source.write_text(
        "".join(
            json.dumps(
                {
                    "operation": "UPDATE",
                    "expiration_duration": 0,
                    "compartment_id": "1000",
                    "user_account_id": f"acc-{tag}-{line}",
                    "segment_id": segment_id,
                }
            )
            + "\n"
            for line in range(50)
        )
    )
    env = cli_env(kafka_settings, cassandra_settings, SEGFLOW_UPLOAD__WAIT_REPORT_INTERVAL_S="0.5")
    proc = subprocess.Popen(
        [*SEGFLOW, "upload", "--wait", "--timeout", "120", "-o", "json", str(source)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)  # nothing consumes yet: --wait must say so on stderr
    with running_consumer(consume_settings(kafka_settings, cassandra_settings)):
        out, err = proc.communicate(timeout=150)
    assert proc.returncode == 0, err
    waiting = [line for line in err.splitlines() if line.startswith("waiting: ")]
    assert waiting, err
    assert waiting[0].startswith("waiting: 0 of 50 commands landed")
    final = json.loads(out)
    stored = ExecutionStore(cassandra_session).get(final["execution_id"])
    assert stored is not None
    assert final["commands_applied"] == stored.commands_applied == 50
    assert final["status"] == "SUCCEEDED"

    typed = segflow(["user", f" ACCOUNT:1000:acc-{tag}-7 ", "--format", "ndjson"], env)
    canonical = segflow(["user", f"account:1000:acc-{tag}-7", "--format", "ndjson"], env)
    assert typed.returncode == canonical.returncode == 0, typed.stderr
    assert typed.stdout == canonical.stdout
    assert [json.loads(row)["segment_id"] for row in typed.stdout.splitlines()] == [segment_id]
