"""Execution progress in bounded partitions (V005), read back from Cassandra.

One partition per 65,536 sequence numbers, found through ``execution_progress_chunks``; rows
of the pre-V005 one-partition table are merged block by block, so counts stay exact.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from segflow.db.executions import PROGRESS_BLOCK, PROGRESS_CHUNK, ExecutionStore
from segflow.settings import CassandraSettings

pytestmark = pytest.mark.integration


def _run(session: Any, statements: list[tuple[Any, tuple[Any, ...]]]) -> None:
    for prepared, values in statements:
        session.execute(prepared, values)


def test_progress_spreads_over_chunks_and_counts_exactly(
    cassandra_settings: CassandraSettings, cassandra_session: Any
) -> None:
    store = ExecutionStore(cassandra_session)
    eid = store.create("p", "p.ndjson", "producer", uuid.uuid4().hex, 1).execution_id
    applied = [0, 1, PROGRESS_CHUNK - 1, PROGRESS_CHUNK, 3 * PROGRESS_CHUNK + 5, 10**8 - 1]
    dead = [2, PROGRESS_CHUNK, 3 * PROGRESS_CHUNK + 6]  # PROGRESS_CHUNK is applied too
    _run(cassandra_session, store.record_progress([(eid, s) for s in applied], []))
    _run(cassandra_session, store.record_progress([], [(eid, s) for s in dead]))
    # Redelivery adds nothing.
    _run(cassandra_session, store.record_progress([(eid, s) for s in applied[:3]], []))

    execution = store.get(eid)
    assert execution is not None
    assert (execution.commands_applied, execution.commands_dead_lettered) == (6, 2)

    ks = cassandra_settings.keyspace
    chunks = [
        row.chunk
        for row in cassandra_session.execute(
            f"SELECT chunk FROM {ks}.execution_progress_chunks WHERE execution_id = %s", (eid,)
        )
    ]
    assert chunks == [0, 1, 3, (10**8 - 1) // PROGRESS_CHUNK]
    for chunk in chunks:
        rows = cassandra_session.execute(
            f"SELECT block, applied, dead_lettered FROM {ks}.execution_progress_by_chunk "
            "WHERE execution_id = %s AND chunk = %s",
            (eid, chunk),
        )
        for row in rows:
            assert row.block // (PROGRESS_CHUNK // PROGRESS_BLOCK) == chunk
            for sequence in (row.applied or set()) | (row.dead_lettered or set()):
                assert sequence // PROGRESS_CHUNK == chunk
                assert sequence // PROGRESS_BLOCK == row.block


def test_progress_written_before_v005_is_merged_block_by_block(
    cassandra_settings: CassandraSettings, cassandra_session: Any
) -> None:
    store = ExecutionStore(cassandra_session)
    eid = store.create("l", "l.ndjson", "producer", uuid.uuid4().hex, 1).execution_id
    ks = cassandra_settings.keyspace
    legacy = {0: ({0, 1, 2}, {3}), 20: ({20 * PROGRESS_BLOCK}, set())}
    for block, (done, lettered) in legacy.items():
        cassandra_session.execute(
            f"UPDATE {ks}.execution_progress SET applied = applied + %s, "
            "dead_lettered = dead_lettered + %s WHERE execution_id = %s AND block = %s",
            (done, lettered, eid, block),
        )
    # After the upgrade the consumer redelivers 1 and 2 and applies 3 (dead-lettered before)
    # and 4, in the same block 0 of chunk 0.
    _run(cassandra_session, store.record_progress([(eid, s) for s in (1, 2, 3, 4)], []))
    execution = store.get(eid)
    assert execution is not None
    # applied: 0 1 2 3 4 (block 0) + block 20 (chunk 1, legacy only); dead: none left.
    assert (execution.commands_applied, execution.commands_dead_lettered) == (6, 0)
