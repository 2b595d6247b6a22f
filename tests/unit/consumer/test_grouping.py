"""The write grouping (consumer.grouping) against a token map built here with the driver's own
classes: no group passes its bounds, PARTITION_KEY never mixes partitions, REPLICA_SET never
mixes replica sets, every statement is sent exactly once and in order within its group."""

from __future__ import annotations

import uuid
from collections.abc import Hashable
from typing import Any

from cassandra.connection import DefaultEndPoint
from cassandra.cqltypes import Int32Type, LongType, UTF8Type
from cassandra.metadata import KeyspaceMetadata, Metadata
from cassandra.policies import SimpleConvictionPolicy
from cassandra.pool import Host
from cassandra.protocol import ColumnMetadata
from cassandra.query import PreparedStatement
from hypothesis import given
from hypothesis import strategies as st

from consumer.grouping import StatementGrouper, chunk, partition_key, statement_size

KEYSPACE = "ks"


def token_map(nodes: int, rf: int, tokens_per_node: int, seed: int) -> Any:
    """A Murmur3 ring of ``nodes`` hosts with random tokens, SimpleStrategy ``rf``."""
    import random

    rng = random.Random(seed)
    metadata = Metadata()
    hosts = [
        Host(DefaultEndPoint(f"10.0.0.{i}"), SimpleConvictionPolicy, host_id=uuid.uuid4())
        for i in range(nodes)
    ]
    tokens = {
        host: [str(rng.randrange(-(2**63), 2**63)) for _ in range(tokens_per_node)]
        for host in hosts
    }
    metadata.keyspaces[KEYSPACE] = KeyspaceMetadata(
        KEYSPACE, True, "SimpleStrategy", {"replication_factor": str(rf)}
    )
    metadata.rebuild_token_map("Murmur3Partitioner", tokens)
    return metadata.token_map


def prepared(table: str) -> PreparedStatement:
    """INSERT INTO ks.<table> (segment, bucket, user, version): partition key (segment, bucket)."""
    columns = [
        ColumnMetadata(KEYSPACE, table, "segment", UTF8Type),
        ColumnMetadata(KEYSPACE, table, "bucket", Int32Type),
        ColumnMetadata(KEYSPACE, table, "user", UTF8Type),
        ColumnMetadata(KEYSPACE, table, "version", LongType),
    ]
    return PreparedStatement(
        columns, table.encode(), [0, 1], f"INSERT INTO {table}", KEYSPACE, 5, [], None
    )


TABLES = {name: prepared(name) for name in ("feed", "events")}

statement = st.tuples(
    st.sampled_from(sorted(TABLES)),
    st.sampled_from(["seg-a", "seg-b", "seg-c"]),
    st.integers(0, 40),
    st.text(min_size=0, max_size=300),
    st.integers(-(2**63), 2**63 - 1),
)


def bind_all(rows: list[tuple[str, str, int, str, int]]) -> list[Any]:
    return [TABLES[table].bind((seg, bucket, user, ver)) for table, seg, bucket, user, ver in rows]


def check_partition(groups: list[list[int]], count: int, max_rows: int, max_bytes: int) -> None:
    flat = sorted(index for group in groups for index in group)
    assert flat == list(range(count)), "every statement exactly once"
    for group in groups:
        assert group == sorted(group), "statements keep their order within a group"
        assert 1 <= len(group) <= max_rows


@given(
    rows=st.lists(statement, max_size=300),
    max_rows=st.integers(1, 60),
    max_bytes=st.integers(64, 4000),
)
def test_partition_key_groups_never_mix_partitions_nor_pass_bounds(
    rows: list[tuple[str, str, int, str, int]], max_rows: int, max_bytes: int
) -> None:
    bounds = bind_all(rows)
    groups = StatementGrouper("PARTITION_KEY", max_rows, max_bytes).group(bounds)
    check_partition(groups, len(bounds), max_rows, max_bytes)
    for group in groups:
        assert len({partition_key(bounds[i]) for i in group}) == 1
        assert len({bounds[i].prepared_statement.column_metadata[0].table_name for i in group}) == 1
        if len(group) > 1:
            assert sum(statement_size(bounds[i]) for i in group) <= max_bytes


@given(
    rows=st.lists(statement, max_size=300),
    max_rows=st.integers(1, 60),
    max_bytes=st.integers(64, 4000),
    nodes=st.integers(1, 7),
    rf=st.integers(1, 3),
    vnodes=st.integers(1, 8),
    seed=st.integers(0, 2**32),
)
def test_replica_set_groups_never_mix_replica_sets_nor_pass_bounds(
    rows: list[tuple[str, str, int, str, int]],
    max_rows: int,
    max_bytes: int,
    nodes: int,
    rf: int,
    vnodes: int,
    seed: int,
) -> None:
    ring = token_map(nodes, rf, vnodes, seed)
    bounds = bind_all(rows)
    groups = StatementGrouper("REPLICA_SET", max_rows, max_bytes, lambda: ring).group(bounds)
    check_partition(groups, len(bounds), max_rows, max_bytes)
    for group in groups:
        replica_sets = {
            frozenset(ring.get_replicas(KEYSPACE, ring.token_class.from_key(bounds[i].routing_key)))
            for i in group
        }
        assert len(replica_sets) == 1, "a group spans replica sets"
        if len(group) > 1:
            assert sum(statement_size(bounds[i]) for i in group) <= max_bytes


def test_replica_set_groups_across_partitions_of_the_same_replicas() -> None:
    # One node, RF 1: every partition has the same replica, so groups fill up to max_rows.
    ring = token_map(1, 1, 4, 0)
    rows = [("feed", f"seg-{i % 7}", i % 13, f"user-{i}", i) for i in range(100)]
    bounds = bind_all(rows)
    groups = StatementGrouper("REPLICA_SET", 25, 1_000_000, lambda: ring).group(bounds)
    assert [len(group) for group in groups] == [25, 25, 25, 25]
    partitions = StatementGrouper("PARTITION_KEY", 25, 1_000_000).group(bounds)
    assert len(partitions) == len({(r[1], r[2]) for r in rows})


def test_disabled_sends_every_statement_alone() -> None:
    bounds = bind_all([("feed", "seg-a", 1, "u", 1), ("feed", "seg-a", 1, "v", 2)])
    assert StatementGrouper("DISABLED", 50, 40_000).group(bounds) == [[0], [1]]


def test_a_statement_larger_than_max_bytes_goes_alone() -> None:
    big = ("feed", "seg-a", 1, "x" * 5000, 1)
    small = ("feed", "seg-a", 1, "y", 2)
    bounds = bind_all([small, big, small])
    groups = StatementGrouper("PARTITION_KEY", 50, 1000).group(bounds)
    assert [1] in groups
    assert sorted(len(g) for g in groups) == [1, 2]


@given(
    keys=st.lists(st.integers(0, 5), max_size=200),
    max_rows=st.integers(1, 20),
    max_bytes=st.integers(1, 500),
    data=st.data(),
)
def test_chunk_bounds_rows_and_bytes(
    keys: list[Hashable], max_rows: int, max_bytes: int, data: st.DataObject
) -> None:
    sizes = data.draw(st.lists(st.integers(0, 200), min_size=len(keys), max_size=len(keys)))
    groups = chunk(keys, sizes, max_rows, max_bytes)
    check_partition(groups, len(keys), max_rows, max_bytes)
    for group in groups:
        assert len({keys[i] for i in group}) == 1
        assert len(group) == 1 or sum(sizes[i] for i in group) <= max_bytes


@given(
    rows=st.lists(statement, max_size=300),
    max_rows=st.integers(2, 60),
    nodes=st.integers(1, 4),
    rf=st.integers(1, 4),
    vnodes=st.integers(1, 8),
    seed=st.integers(0, 2**32),
)
def test_replica_set_groups_are_those_of_per_statement_replica_lookups(
    rows: list[tuple[str, str, int, str, int]],
    max_rows: int,
    nodes: int,
    rf: int,
    vnodes: int,
    seed: int,
) -> None:
    # Whether the ring has one replica set (rf >= nodes: the shortcut) or several, the groups
    # are exactly those of looking every statement's replicas up in the ring.
    ring = token_map(nodes, rf, vnodes, seed)
    bounds = bind_all(rows)
    groups = StatementGrouper("REPLICA_SET", max_rows, 4000, lambda: ring).group(bounds)
    keys = [
        frozenset(ring.get_replicas(KEYSPACE, ring.token_class.from_key(b.routing_key)))
        for b in bounds
    ]
    assert groups == chunk(keys, [statement_size(b) for b in bounds], max_rows, 4000)


def test_replica_set_sees_a_replication_change_made_in_place() -> None:
    # Three nodes at RF 3: one replica set. The keyspace is altered to RF 1 and the driver
    # rebuilds its replica map in place (same token map object): groups split by node again.
    metadata_ring = token_map(3, 3, 4, 7)
    grouper = StatementGrouper("REPLICA_SET", 1000, 1_000_000, lambda: metadata_ring)
    bounds = bind_all([("feed", f"seg-{i}", i % 41, f"u{i}", i) for i in range(200)])
    assert len(grouper.group(bounds)) == 1
    metadata = metadata_ring._metadata
    metadata.keyspaces[KEYSPACE] = KeyspaceMetadata(
        KEYSPACE, True, "SimpleStrategy", {"replication_factor": "1"}
    )
    metadata_ring.rebuild_keyspace(KEYSPACE, build_if_absent=False)  # what the driver does
    groups = grouper.group(bounds)
    assert len(groups) == 3
    for group in groups:
        owners = {
            frozenset(
                metadata_ring.get_replicas(
                    KEYSPACE, metadata_ring.token_class.from_key(bounds[i].routing_key)
                )
            )
            for i in group
        }
        assert len(owners) == 1
