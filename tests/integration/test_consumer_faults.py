"""Faults: a consumer killed with SIGKILL mid-stream, and Cassandra frozen for 20 s."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest

from segflow.contract.records import CommandRecord
from segflow.db.executions import ExecutionStore
from segflow.db.membership import MembershipReader
from segflow.db.registry import SegmentRegistry
from segflow.settings import CassandraSettings, KafkaSettings
from tests.integration.test_consumer_delivery import feed_add
from tests.support.cli_env import segflow_env
from tests.support.consumer_harness import (
    committed_lag,
    consume_settings,
    produce,
    running_consumer,
    segment_and_execution,
    wait_landed,
    wait_until,
)
from tests.support.endpoints import Endpoints
from tests.support.reference_model import effective_state

pytestmark = pytest.mark.integration


def workload(eid: str, segment: str, count: int) -> list[tuple[int, CommandRecord | bytes]]:
    """Adds, some removals and a few invalid records, with distinct versions."""
    version = int(time.time() * 1_000_000)
    records: list[tuple[int, CommandRecord | bytes]] = []
    for i in range(count):
        record = feed_add(eid, f"user_id:k{i % (count // 2)}", segment, version + i)
        if i % 7 == 3:
            record["operation"], record["data_bag"] = "FEED_REMOVE", None
        if i % 601 == 17:
            record["user_key"] = "bad key"
        records.append((i, record))
    return records


def members_of(session: Any, segment_id: str) -> dict[str, str | None]:
    segment = SegmentRegistry(session, 4, 0).get(segment_id, fresh=True)
    assert segment is not None
    return {m.user_key: m.data_bag for m in MembershipReader(session).members(segment)}


def expected_members(
    records: list[tuple[int, CommandRecord | bytes]], segment: str
) -> dict[str, str | None]:
    valid = [r for _, r in records if not isinstance(r, bytes) and r["user_key"] != "bad key"]
    state = effective_state(valid, int(time.time() * 1000))
    return {user: m.data_bag for user, m in state.get(segment, {}).items()}


def consumer_env(kafka: KafkaSettings, cassandra: CassandraSettings, group: str) -> dict[str, str]:
    """A ``segflow consume`` subprocess's environment: small batches, few buckets, short stops."""
    return segflow_env(
        kafka,
        cassandra,
        SEGFLOW_CONSUMER__GROUP_ID=group,
        SEGFLOW_CONSUMER__HTTP_PORT="0",
        SEGFLOW_CONSUMER__BATCH_SIZE="50",
        SEGFLOW_CONSUMER__DEFAULT_BUCKET_COUNT="4",
        SEGFLOW_CONSUMER__SHUTDOWN_TIMEOUT_S="10",
    )


def test_sigkill_mid_stream_then_restart_converges(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings, cassandra_session: Any
) -> None:
    segment, eid = segment_and_execution(cassandra_session, "kill")
    store = ExecutionStore(cassandra_session)
    records = workload(eid, segment, 3000)
    invalid = sum(1 for _, r in records if not isinstance(r, bytes) and r["user_key"] == "bad key")
    produce(kafka_settings, records, eid)
    group = f"kill-{uuid.uuid4().hex[:8]}"
    env = consumer_env(kafka_settings, cassandra_settings, group)
    command = [sys.executable, "-m", "segflow.cli", "consume"]

    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(
            lambda: (store.get(eid) or _none()).landed >= 300,
            90,
            "the first consumer to apply 300 commands",
        )
    finally:
        first.kill()
        first.wait(30)
    partial = store.get(eid)
    assert partial is not None
    assert partial.landed < len(records), "the consumer finished before it could be killed"

    second = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        landed = wait_landed(store, eid, len(records), timeout_s=120)
        wait_until(
            lambda: committed_lag(kafka_settings, group) == 0,
            30,
            "the restarted consumer to commit everything",
        )
    finally:
        begin = time.monotonic()
        second.send_signal(signal.SIGTERM)
        _, stderr = second.communicate(timeout=60)
    assert second.returncode == 0, stderr[-2000:]
    assert time.monotonic() - begin < 15  # shutdown_timeout_s=10 bounds a clean stop
    assert landed.commands_dead_lettered == invalid
    assert landed.commands_applied == len(records) - invalid
    assert members_of(cassandra_session, segment) == expected_members(records, segment)


def test_cassandra_frozen_pauses_partitions_and_recovers(
    endpoints: Endpoints,
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Any,
) -> None:
    pause, resume = endpoints.pause_cassandra, endpoints.resume_cassandra
    assert pause is not None, (
        f"this test freezes Cassandra and cannot with endpoints from {endpoints.origin}"
    )
    assert resume is not None
    segment, eid = segment_and_execution(cassandra_session, "frozen")
    store = ExecutionStore(cassandra_session)
    warmup = workload(eid, segment, 200)
    settings = consume_settings(
        kafka_settings,
        cassandra_settings,
        batch_size=50,
        retry_initial_s=0.2,
        retry_max_s=1.0,
        retry_attempts=3,
    )
    settings.cassandra = settings.cassandra.model_copy(update={"request_timeout_s": 2.0})
    with running_consumer(settings) as consumer:
        produce(kafka_settings, warmup, eid)
        wait_landed(store, eid, len(warmup))
        wait_until(
            lambda: committed_lag(kafka_settings, settings.consumer.group_id) == 0,
            30,
            "the warm-up to be committed",
        )
        more = [(200 + seq, rec) for seq, rec in workload(eid, segment, 400)]
        more = [
            (seq, rec)
            for seq, rec in more
            if isinstance(rec, bytes) or rec["user_key"] != "bad key"
        ]
        for _, record in more:
            assert not isinstance(record, bytes)
            record["user_key"] = f"{record['user_key']}-late"
        pause()
        try:
            produce(kafka_settings, more, eid)
            wait_until(
                lambda: consumer.metrics.paused_partitions._value.get() > 0,
                60,
                "the consumer to pause its partitions",
            )
            frozen_lag = committed_lag(kafka_settings, settings.consumer.group_id)
            assert frozen_lag == len(more), "offsets were committed for unwritten records"
            time.sleep(20)
            assert committed_lag(kafka_settings, settings.consumer.group_id) == len(more)
            assert not consumer.loop.ready
        finally:
            resume()
        landed = wait_landed(store, eid, len(warmup) + len(more), timeout_s=120)
        wait_until(
            lambda: committed_lag(kafka_settings, settings.consumer.group_id) == 0,
            60,
            "the resumed consumer to commit everything",
        )
        assert consumer.metrics.paused_partitions._value.get() == 0
    assert landed.commands_applied + landed.commands_dead_lettered == len(warmup) + len(more)
    assert members_of(cassandra_session, segment) == expected_members(warmup + more, segment)


def _none() -> Any:
    class Nothing:
        landed = 0

    return Nothing()
