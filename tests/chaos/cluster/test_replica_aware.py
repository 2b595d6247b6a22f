"""On the 3-node ring, ``REPLICA_SET`` grouping sends every batch to a replica of every row
in it; shown by the server's own request traces, not by the driver's token map.

The keyspace has one replica per partition (RF 1), so each node owns a third of the rows and a
coordinator that is not the replica of a row must forward it (a ``Sending MUTATION_REQ``
event in the trace, and the row applied by another node). The consumer's own requests (its
poll, plan, grouping and routing) are traced by wrapping its session. A control run with the
token map hidden from the grouper (so batches mix replica sets) must show forwarding, which
is what makes the assertion able to fail.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from cassandra import ConsistencyLevel
from cassandra.query import SimpleStatement

from consumer.grouping import StatementGrouper
from consumer.runtime import Consumer
from segflow.db.executions import ExecutionStore
from segflow.db.registry import SegmentRegistry
from segflow.db.session import connect
from segflow.settings import CassandraSettings, KafkaSettings, StackSettings
from tests.support.consumer_harness import (
    command,
    consume_settings,
    produce,
    running_consumer,
    wait_landed,
)
from tests.support.keyspaces import migrated_keyspace

pytestmark = pytest.mark.cluster

APPLIED = ("Appending to commitlog", "Adding to ")
FORWARDED = "Sending MUTATION_REQ"


class TracingSession:
    """The consumer's session, with every request traced and its future kept."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.futures: list[tuple[Any, Any]] = []
        self._lock = threading.Lock()

    def execute_async(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        future = self._session.execute_async(statement, *args, trace=True, **kwargs)
        with self._lock:
            self.futures.append((statement, future))
        return future

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _trace(session: Any, trace_id: Any, wait_s: float = 20) -> tuple[str, set[str], bool]:
    """(coordinator, nodes that applied a row, forwarded?) from ``system_traces`` itself;
    the coordinator is "" when the trace did not arrive within ``wait_s``."""
    sessions = SimpleStatement(
        "SELECT coordinator FROM system_traces.sessions WHERE session_id = %s",
        consistency_level=ConsistencyLevel.ALL,
    )
    events = SimpleStatement(
        "SELECT source, activity FROM system_traces.events WHERE session_id = %s",
        consistency_level=ConsistencyLevel.ALL,
    )
    deadline = time.monotonic() + wait_s
    while True:
        row = session.execute(sessions, (trace_id,)).one()
        found = session.execute(events, (trace_id,)).all()
        applied = {str(e.source) for e in found if e.activity.startswith(APPLIED)}
        if row is not None and applied:
            forwarded = any(e.activity.startswith(FORWARDED) for e in found)
            return str(row.coordinator), applied, forwarded
        if time.monotonic() > deadline:
            return "", set(), False
        time.sleep(0.5)


def _traced_run(
    kafka: KafkaSettings, cassandra: CassandraSettings, hide_token_map: bool
) -> list[tuple[int, str, set[str], bool]]:
    """(statements, coordinator, nodes that applied rows, forwarded?) per grouped batch;
    the coordinator is "" when its trace did not arrive in time."""
    cluster, session = connect(cassandra, cassandra.keyspace)
    try:
        segment = f"ra-{uuid.uuid4().hex[:8]}"
        SegmentRegistry(session, 16, 0).create(segment, bucket_count=16)
        store = ExecutionStore(session)
        eid = store.create("ra", "ra.ndjson", "producer", uuid.uuid4().hex, 1).execution_id
        base = int(time.time() * 1_000_000)
        records = [
            (i, command(eid, "FEED_ADD", base + i, f"user_id:ra{i}", [segment])) for i in range(300)
        ]
        produce(kafka, records, eid)
        settings = consume_settings(
            kafka, cassandra, write_grouping="REPLICA_SET", group_max_rows=50, batch_size=300
        )
        traced: list[TracingSession] = []

        def instrument(consumer: Consumer) -> None:
            writer = consumer.loop._writer
            tracing = TracingSession(writer.session)
            writer.session = tracing
            traced.append(tracing)
            if hide_token_map:
                writer._grouper = StatementGrouper("REPLICA_SET", 50, 40_960, lambda: None)

        with running_consumer(settings, before_start=instrument):
            wait_landed(store, eid, len(records), timeout_s=180)
        batches = [
            (len(statement._statements_and_parameters), future.get_query_trace_ids()[-1])
            for statement, future in traced[0].futures
            if len(getattr(statement, "_statements_and_parameters", ())) >= 2
        ]
        out: list[tuple[int, str, set[str], bool]] = []
        for size, trace_id in batches:
            out.append((size, *_trace(session, trace_id)))
        return out
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def rf1_keyspace(cluster_stack: StackSettings, endpoints: Any) -> Any:
    """A keyspace of one replica per partition on the 3-node ring."""
    settings = CassandraSettings(
        contact_points=["127.0.0.1", "127.0.0.2", "127.0.0.3"],
        port=cluster_stack.cassandra_port,
        keyspace=f"segflow_rf1_{uuid.uuid4().hex[:8]}",
        replication_factor=1,
        write_consistency="ONE",
        read_consistency="ONE",
    )
    with migrated_keyspace(settings):
        yield settings


def test_replica_set_batches_are_coordinated_by_the_replica_of_every_row(
    kafka_settings: KafkaSettings, rf1_keyspace: CassandraSettings
) -> None:
    batches = _traced_run(kafka_settings, rf1_keyspace, hide_token_map=False)
    assert len(batches) >= 6, f"too few grouped batches to show anything: {batches}"
    coordinators = {coordinator for _, coordinator, _, _ in batches}
    assert len(coordinators) == 3, f"batches went to {coordinators}, not to all three owners"
    for size, coordinator, applied, forwarded in batches:
        assert not forwarded, f"a batch of {size} coordinated by {coordinator} forwarded rows"
        assert applied == {coordinator}, f"rows of a batch at {coordinator} applied on {applied}"
    rows = sum(size for size, *_ in batches)
    print(f"REPLICA_SET: {len(batches)} traced batches, {rows} rows, coordinators {coordinators}")


def test_control_batches_across_replica_sets_are_forwarded(
    kafka_settings: KafkaSettings, rf1_keyspace: CassandraSettings
) -> None:
    batches = [b for b in _traced_run(kafka_settings, rf1_keyspace, True) if b[1]]
    assert batches
    forwarded = [b for b in batches if b[3]]
    assert forwarded, "mixed-replica batches were never forwarded: the trace check sees nothing"
    assert any(len(applied) > 1 for _, _, applied, _ in batches)
    print(f"control: {len(forwarded)} of {len(batches)} mixed batches forwarded rows")
