"""Issue 14, items 8 and 9, against the real broker and Cassandra node.

- A producer writing a newer compatible schema (one added optional field) has its records
  applied once that schema is in ``consumer.writer_schema_dir``; a record naming a schema
  nobody configured is dead-lettered ``unknown_schema`` with its fingerprint, and is applied
  after the schema is added and the letter replayed.
- ``segflow dlq``: an unknown segment's command is dead-lettered; ``inspect`` counts it and
  prints no user key; after ``segments create`` a ``replay`` makes the user a member; a second
  replay leaves every membership cell, event and execution count as it was.
"""

from __future__ import annotations

import copy
import io
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from segflow.contract.ids import version_day
from segflow.contract.records import CommandRecord
from segflow.contract.schema import SCHEMA_FILE, fingerprint_text, load_version
from segflow.db.executions import ExecutionStore
from segflow.db.layout import event_shard
from segflow.db.membership import MembershipReader
from segflow.db.registry import Segment, SegmentRegistry
from segflow.resources import schemas_dir
from segflow.settings import CassandraSettings, KafkaSettings
from tests.support.cli_env import run_segflow, segflow_env
from tests.support.consumer_harness import (
    command,
    committed_lag,
    consume_settings,
    produce,
    read_topic,
    running_consumer,
    wait_landed,
    wait_until,
)

pytestmark = pytest.mark.integration


def _new_execution(store: ExecutionStore) -> str:
    return store.create("dlq", "dlq.ndjson", "producer", uuid.uuid4().hex, 1).execution_id


def _newer_schema(field_name: str) -> dict[str, Any]:
    """The current schema plus one optional field: what an evolving producer writes."""
    raw: dict[str, Any] = copy.deepcopy(json.loads((schemas_dir() / SCHEMA_FILE).read_text()))
    raw["fields"].append(
        {"name": field_name, "type": ["null", "string"], "default": None, "doc": "newer field"}
    )
    return raw


def _write_schema(directory: Path, name: str, raw: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(json.dumps(raw))
    return path


def _encode_with(path: Path, record: CommandRecord, extra: dict[str, Any]) -> bytes:
    """Single-object encoding of ``record`` (+ the newer fields) with the schema at ``path``."""
    version = load_version(path)
    out = io.BytesIO()
    out.write(version.header)
    schemaless_writer(out, parse_schema(version.raw), {**record, **extra})
    return out.getvalue()


def _headers(message: Any) -> dict[str, bytes]:
    return dict(message.headers() or [])


def _members(session: Any, segment_id: str) -> set[str]:
    segment = SegmentRegistry(session, 4, 0).get(segment_id, fresh=True)
    if segment is None:
        return set()
    return {member.user_key for member in MembershipReader(session).members(segment)}


def test_a_newer_compatible_writer_schema_is_applied_and_an_unknown_one_dead_lettered(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Any,
    tmp_path: Path,
) -> None:
    segment = f"evolve-{uuid.uuid4().hex[:8]}"
    SegmentRegistry(cassandra_session, 4, 0).create(segment, bucket_count=4)
    configured = tmp_path / "writer-schemas"
    known = _write_schema(configured, "producer-v2.avsc", _newer_schema("campaign"))
    unknown = _write_schema(tmp_path / "elsewhere", "producer-v3.avsc", _newer_schema("channel"))
    store = ExecutionStore(cassandra_session)
    eid = _new_execution(store)
    version = int(time.time() * 1_000_000)
    applied_user, unknown_user = "user_id:evolved-1", "user_id:evolved-2"
    records = [
        (
            0,
            _encode_with(
                known,
                command(eid, "FEED_ADD", version, applied_user, [segment]),
                {"campaign": "spring"},
            ),
        ),
        (
            1,
            _encode_with(
                unknown,
                command(eid, "FEED_ADD", version + 1, unknown_user, [segment]),
                {"channel": "web"},
            ),
        ),
    ]
    produce(kafka_settings, records, eid)
    settings = consume_settings(kafka_settings, cassandra_settings, writer_schema_dir=configured)
    with running_consumer(settings):
        landed = wait_landed(store, eid, 2)
    assert (landed.commands_applied, landed.commands_dead_lettered) == (1, 1)
    assert _members(cassandra_session, segment) == {applied_user}

    (letter,) = read_topic(kafka_settings, kafka_settings.dead_letter_topic, 1)
    headers = _headers(letter)
    fingerprint = fingerprint_text(load_version(unknown).fingerprint)
    assert headers["dlq.reason"] == b"unknown_schema"
    assert headers["dlq.schema.fingerprint"] == fingerprint.encode()
    assert fingerprint in headers["dlq.error"].decode()
    assert unknown_user not in headers["dlq.error"].decode()

    # The runbook: add the schema, restart the consumers, replay the unknown_schema letters.
    _write_schema(configured, "producer-v3.avsc", _newer_schema("channel"))
    env = segflow_env(kafka_settings, cassandra_settings)
    settings = consume_settings(  # the same group: it resumes after the dead-lettered record
        kafka_settings,
        cassandra_settings,
        writer_schema_dir=configured,
        group_id=settings.consumer.group_id,
    )
    with running_consumer(settings):
        replayed = run_segflow(env, "dlq", "replay", "--reason", "unknown_schema", "-o", "json")
        assert replayed.returncode == 0, replayed.stderr
        assert json.loads(replayed.stdout)["sent"] == 1
        wait_until(
            lambda: _members(cassandra_session, segment) == {applied_user, unknown_user},
            60,
            "the replayed unknown_schema record to be applied",
        )
    final = store.get(eid)
    assert final is not None
    assert (final.commands_applied, final.commands_dead_lettered) == (2, 0)


def test_the_consumer_refuses_an_incompatible_writer_schema_and_names_it(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings, tmp_path: Path
) -> None:
    raw = _newer_schema("campaign")
    next(f for f in raw["fields"] if f["name"] == "version")["type"] = "string"
    bad = _write_schema(tmp_path / "schemas", "broken-producer.avsc", raw)
    env = segflow_env(
        kafka_settings, cassandra_settings, SEGFLOW_CONSUMER__WRITER_SCHEMA_DIR=str(bad.parent)
    )
    started = run_segflow(env, "consume", "--until-idle")
    assert started.returncode == 2, started.stderr
    assert "broken-producer.avsc" in started.stderr
    assert "version: writer string cannot be read as long" in started.stderr


def _membership_state(session: Any, keyspace: str, segment: Segment, user: str) -> Any:
    """Every cell the consumer writes for ``user`` in ``segment``, with its write time."""
    feed = [
        tuple(row)
        for bucket in range(segment.bucket_count)
        for row in session.execute(
            f"SELECT user_key, data_bag, expires_at, command_id, WRITETIME(command_id) "
            f"FROM {keyspace}.feed_by_segment WHERE segment_id = %s AND bucket = %s",
            (segment.segment_id, bucket),
        )
    ]
    by_user = [
        tuple(row)
        for row in session.execute(
            f"SELECT * FROM {keyspace}.segments_by_user WHERE user_key = %s", (user,)
        )
    ]
    members = list(MembershipReader(session).members(segment))
    return feed, by_user, members


def test_dlq_inspect_and_replay_an_unknown_segment_twice(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings, cassandra_session: Any
) -> None:
    segment_id = f"late-{uuid.uuid4().hex[:8]}"
    user = f"email:someone-{uuid.uuid4().hex[:6]}@example.com"
    store = ExecutionStore(cassandra_session)
    eid = _new_execution(store)
    version = int(time.time() * 1_000_000)
    produce(kafka_settings, [(0, command(eid, "FEED_ADD", version, user, [segment_id]))], eid)
    env = segflow_env(kafka_settings, cassandra_settings)
    settings = consume_settings(kafka_settings, cassandra_settings)
    with running_consumer(settings):
        landed = wait_landed(store, eid, 1)
        assert (landed.commands_applied, landed.commands_dead_lettered) == (0, 1)

        inspected = run_segflow(env, "dlq", "inspect", "-o", "json")
        assert inspected.returncode == 0, inspected.stderr
        document = json.loads(inspected.stdout)
        assert document["total"] == 1
        assert document["by_reason"] == {"unknown_segment": 1}
        assert document["by_execution"] == {eid: {"unknown_segment": 1}}
        assert sum(sum(c.values()) for c in document["by_time"].values()) == 1
        (sample,) = document["samples"]["unknown_segment"]
        assert sample["original"]["topic"] == kafka_settings.commands_topic
        assert segment_id in sample["error"]
        text = run_segflow(env, "dlq", "inspect")
        assert text.returncode == 0, text.stderr
        assert "unknown_segment" in text.stdout
        local_part = user.split(":", 1)[1].split("@", maxsplit=1)[0]
        for output in (inspected.stdout, text.stdout):
            assert local_part not in output, "inspect printed a user key"

        # The fix, then the replay.
        segment, _ = SegmentRegistry(cassandra_session, 4, 0).create(segment_id, bucket_count=4)
        first = run_segflow(env, "dlq", "replay", "--reason", "unknown_segment", "-o", "json")
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["sent"] == 1
        wait_until(lambda: user in _members(cassandra_session, segment_id), 60, "the member")
        original, replayed = read_topic(kafka_settings, kafka_settings.commands_topic, 2)
        assert replayed.key() == original.key()
        assert replayed.value() == original.value()
        assert replayed.headers() == original.headers()  # every dlq.* header removed
        wait_until(
            lambda: committed_lag(kafka_settings, settings.consumer.group_id) == 0, 60, "lag"
        )
        before = _membership_state(cassandra_session, cassandra_settings.keyspace, segment, user)
        events_before = list(
            _events(cassandra_session, cassandra_settings, segment_id, user, version)
        )
        applied_before = store.get(eid)

        second = run_segflow(env, "dlq", "replay", "--execution", eid, "-o", "json")
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)["sent"] == 1
        wait_until(
            lambda: committed_lag(kafka_settings, settings.consumer.group_id) == 0, 60, "lag"
        )

    after = _membership_state(cassandra_session, cassandra_settings.keyspace, segment, user)
    assert after == before
    assert [m.user_key for m in after[2]] == [user]
    assert list(_events(cassandra_session, cassandra_settings, segment_id, user, version)) == (
        events_before
    )
    assert len(events_before) == 1
    applied_after = store.get(eid)
    assert applied_before is not None
    assert applied_after is not None
    assert (applied_after.commands_applied, applied_after.commands_dead_lettered) == (1, 0)
    assert (applied_before.commands_applied, applied_before.commands_dead_lettered) == (1, 0)
    # The dead-letter topic still holds the one original letter and nothing new.
    letters = read_topic(kafka_settings, kafka_settings.dead_letter_topic, 1)
    assert len(letters) == 1


def _events(
    session: Any, cassandra: CassandraSettings, segment_id: str, user: str, version: int
) -> Any:
    rows = session.execute(
        f"SELECT version, command_id, user_key, operation FROM {cassandra.keyspace}."
        "membership_events WHERE segment_id = %s AND day = %s AND shard = %s",
        (segment_id, version_day(version), event_shard(user)),
    )
    return (tuple(row) for row in rows)


def test_replay_filters_on_partition_and_offsets(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings, cassandra_session: Any
) -> None:
    segment_id = f"gone-{uuid.uuid4().hex[:8]}"
    store = ExecutionStore(cassandra_session)
    eid = _new_execution(store)
    version = int(time.time() * 1_000_000)
    users = [f"user_id:offsets-{i}" for i in range(4)]
    records = [
        (i, command(eid, "FEED_ADD", version + i, user, [segment_id]))
        for i, user in enumerate(users)
    ]
    produce(kafka_settings, records, eid, shuffle_partitions=1)  # one partition: offsets 0..3
    with running_consumer(consume_settings(kafka_settings, cassandra_settings)):
        wait_landed(store, eid, 4)
    env = segflow_env(kafka_settings, cassandra_settings)
    letters = read_topic(kafka_settings, kafka_settings.dead_letter_topic, 4)
    assert len(letters) == 4
    partition = letters[0].partition()
    dry = run_segflow(
        env,
        "dlq",
        "replay",
        "--partition",
        str(partition),
        "--from-offset",
        "1",
        "--to-offset",
        "2",
        "--dry-run",
        "-o",
        "json",
    )
    assert dry.returncode == 0, dry.stderr
    same_partition = sum(1 for m in letters if m.partition() == partition and 1 <= m.offset() <= 2)
    assert json.loads(dry.stdout)["sent"] == same_partition
    assert len(read_topic(kafka_settings, kafka_settings.commands_topic, 4, 5)) == 4  # dry run
    bad = run_segflow(env, "dlq", "replay", "--from-offset", "3", "--to-offset", "1")
    assert bad.returncode == 2
    assert "is after" in bad.stderr
