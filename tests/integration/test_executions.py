"""Executions (issue 14.7) through the real CLI, consumer and Cassandra.

A keyspace of this module's own: ``executions list`` is global, so executions created here
in any order must come back newest first, whatever the other modules created.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segflow.db.executions import Applied, ExecutionStore, Status
from segflow.db.registry import SegmentRegistry
from segflow.settings import CassandraSettings, KafkaSettings
from tests.support.cli_env import segflow_env
from tests.support.consumer_harness import command, consumer_world, produce, wait_landed
from tests.support.endpoints import Endpoints
from tests.support.keyspaces import keyspace_settings, migrated_keyspace

pytestmark = pytest.mark.integration

US = 1_000_000
HOUR_US = 3600 * US
SEGFLOW = [sys.executable, "-m", "segflow.cli"]


@pytest.fixture(scope="module")
def keyspace(endpoints: Endpoints) -> Iterator[CassandraSettings]:
    with migrated_keyspace(keyspace_settings(endpoints, "segflow_exec")) as settings:
        yield settings


@pytest.fixture(scope="module")
def world(endpoints: Endpoints, keyspace: CassandraSettings) -> Iterator[tuple[KafkaSettings, Any]]:
    with consumer_world(endpoints, keyspace, "executions", 1) as found:
        yield found


def _segflow(
    kafka: KafkaSettings, cassandra: CassandraSettings, args: list[str], **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SEGFLOW, *args],
        env=segflow_env(kafka, cassandra, **extra),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_list_is_newest_first_from_the_index(
    world: tuple[KafkaSettings, Any], keyspace: CassandraSettings
) -> None:
    kafka, session = world
    store = ExecutionStore(session)
    base = int(time.time() * US) + 1000 * HOUR_US  # newer than anything else in the keyspace
    # Created out of order, over several hours (index partitions) and within one hour.
    offsets = [5 * HOUR_US, 7, 2 * HOUR_US + 3, 0, 5 * HOUR_US + 1, 40 * HOUR_US, 9]
    created = {
        store.create("list", f"f{i}.ndjson", "test", f"{i:064x}", base + offset).execution_id: (
            base + offset
        )
        for i, offset in enumerate(offsets)
    }
    listed = _segflow(kafka, keyspace, ["executions", "list", "--limit", "5", "-o", "json"])
    assert listed.returncode == 0, listed.stderr
    ids = [row["execution_id"] for row in json.loads(listed.stdout)]
    assert ids == sorted(created, key=created.__getitem__, reverse=True)[:5]


def test_applied_says_when_everything_produced_was_applied(
    world: tuple[KafkaSettings, Any], keyspace: CassandraSettings, unique_name: Any
) -> None:
    kafka, session = world
    store = ExecutionStore(session)
    segment = unique_name("exec")
    SegmentRegistry(session, 4, 0).create(segment, bucket_count=1)
    for unknown, want in ((None, Applied.APPLIED), ("no-such", Applied.APPLIED_WITH_DEAD_LETTERS)):
        execution = store.create("applied", "a.ndjson", "test", uuid.uuid4().hex * 2, 10**15)
        records = [
            command(execution.execution_id, "FEED_ADD", 10**15 + i, f"user_id:u{i}", [segment])
            for i in range(3)
        ]
        if unknown:
            records[1]["segment_ids"] = [unknown]
        # Everything produced (SUCCEEDED) but nothing applied yet: APPLYING.
        execution.status, execution.commands_produced = Status.SUCCEEDED, 3
        store.save(execution)
        assert store.get(execution.execution_id).applied is Applied.APPLYING  # type: ignore[union-attr]
        execution.status = Status.RUNNING
        store.save(execution)
        assert store.get(execution.execution_id).applied is Applied.APPLYING  # type: ignore[union-attr]
        produce(kafka, list(enumerate(records)), execution.execution_id)
        wait_landed(store, execution.execution_id, 3)
        # Every command landed, but the upload has not ended: still APPLYING.
        assert store.get(execution.execution_id).applied is Applied.APPLYING  # type: ignore[union-attr]
        execution.status = Status.SUCCEEDED
        store.save(execution)
        shown = _segflow(
            kafka, keyspace, ["executions", "show", execution.execution_id, "-o", "json"]
        )
        assert shown.returncode == 0, shown.stderr
        document = json.loads(shown.stdout)
        assert (document["status"], document["applied"]) == ("SUCCEEDED", want.value)


def test_a_rerun_older_than_gc_grace_is_refused_unless_new_execution(
    world: tuple[KafkaSettings, Any], keyspace: CassandraSettings, tmp_path: Path
) -> None:
    kafka, session = world
    # gc_grace_seconds is read from the table's schema: lower one table's, that one counts.
    session.execute(
        f"ALTER TABLE {keyspace.keyspace}.override_by_segment WITH gc_grace_seconds = 60"
    )
    try:
        store = ExecutionStore(session)
        source = tmp_path / "old.ndjson"
        source.write_text(
            json.dumps(
                {
                    "operation": "UPDATE",
                    "expiration_duration": 0,
                    "user_agent_id": "ua-1",
                    "segment_id": "s1",
                }
            )
            + "\n"
        )
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        name = f"old-{uuid.uuid4().hex[:8]}"
        old = store.create(
            name, source.name, "mediarithmics-ndjson", digest, int(time.time() * US) - 120 * US
        )
        old.status, old.error = Status.FAILED, "Kafka went away"
        store.save(old)
        extra = {"SEGFLOW_UPLOAD__IMPORT_NAME": name}
        refused = _segflow(kafka, keyspace, ["upload", str(source)], **extra)
        assert refused.returncode == 2, refused.stderr
        assert "gc_grace_seconds (60s)" in refused.stderr
        assert "--new-execution" in refused.stderr
        assert store.get(old.execution_id).status is Status.FAILED  # type: ignore[union-attr]
        forced = _segflow(kafka, keyspace, ["upload", str(source), "--new-execution"], **extra)
        assert forced.returncode == 0, forced.stderr
        newer = store.find_by_content(digest, name)
        assert newer is not None
        assert newer.execution_id != old.execution_id
        assert newer.status is Status.SUCCEEDED
        # Younger than gc_grace_seconds: a re-run of a FAILED execution completes it.
        session.execute(
            f"ALTER TABLE {keyspace.keyspace}.override_by_segment WITH gc_grace_seconds = 864000"
        )
        young = store.create(
            name, source.name, "mediarithmics-ndjson", digest, int(time.time() * US)
        )
        young.status = Status.FAILED
        store.save(young)
        rerun = _segflow(kafka, keyspace, ["upload", str(source)], **extra)
        assert rerun.returncode == 0, rerun.stderr
        assert store.get(young.execution_id).status is Status.SUCCEEDED  # type: ignore[union-attr]
    finally:
        session.execute(
            f"ALTER TABLE {keyspace.keyspace}.override_by_segment WITH gc_grace_seconds = 864000"
        )
