"""Group a batch's bound statements into UNLOGGED Cassandra batches: pure, no I/O.

Why group at all: one request per row costs the Python driver ~200 µs of client CPU and the
node ~130 µs per row; an UNLOGGED batch of ~50 rows costs ~10 µs per row on both sides
(issue 12). Grouping never changes what converges: every statement keeps its own
``USING TIMESTAMP`` and TTL bind values (the batch sets no timestamp of its own), and an
UNLOGGED batch gives no atomicity we would rely on, so a batch is exactly the sum of its
statements and can be retried whole.

Modes (the ones DSBulk offers for its loads):

- ``PARTITION_KEY``: statements of one partition (same table, same partition key) together.
  The node applies such a batch as one mutation.
- ``REPLICA_SET``: statements whose partitions have the same replicas, from the driver's token
  map, together. The driver's ``TokenAwarePolicy`` routes a batch by its first statement's
  routing key, so the coordinator is a replica of every row in it: no extra hop.
- ``DISABLED``: every statement is sent alone (the old behaviour).

Bounds: a group holds at most ``max_rows`` statements and about ``max_bytes`` of bound values
(the server measures the mutations' data size, which is the values plus small per-cell
overheads; ``ROW_OVERHEAD_BYTES`` approximates those). A single statement larger than
``max_bytes`` is sent alone.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, Literal

GroupingMode = Literal["PARTITION_KEY", "REPLICA_SET", "DISABLED"]

# Per-statement bytes the node counts beyond the bound values: the write timestamp and TTL of
# each cell, the clustering prefix and row header. An upper estimate, so a group stays below
# the server's threshold even when its cells are many and small.
ROW_OVERHEAD_BYTES = 48


def chunk(
    keys: Sequence[Hashable], sizes: Sequence[int], max_rows: int, max_bytes: int
) -> list[list[int]]:
    """Indices of ``keys`` grouped by equal key, each group within ``max_rows``/``max_bytes``.

    Statements keep their relative order inside a group; every index appears exactly once.
    A statement whose size alone passes ``max_bytes`` forms a group of its own.
    """
    open_groups: dict[Hashable, tuple[list[int], int]] = {}
    done: list[list[int]] = []
    for index, key in enumerate(keys):
        size = sizes[index]
        if size > max_bytes:  # alone, leaving its key's open group open
            done.append([index])
            continue
        current = open_groups.get(key)
        if current is not None:
            members, used = current
            if len(members) < max_rows and used + size <= max_bytes:
                members.append(index)
                open_groups[key] = (members, used + size)
                continue
            done.append(members)
        open_groups[key] = ([index], size)
    done.extend(members for members, _used in open_groups.values())
    return done


def statement_size(bound: Any) -> int:
    """Estimated bytes a bound statement adds to a batch (serialized values + overhead)."""
    return ROW_OVERHEAD_BYTES + sum([len(v) for v in bound.values if v.__class__ is bytes])


def partition_key(bound: Any) -> Hashable:
    """The partition a bound statement writes: its table and serialized partition key."""
    meta = bound.prepared_statement.column_metadata
    table = meta[0].table_name if meta else None
    return (bound.keyspace, table, bound.routing_key)


class ReplicaKeys:
    """Maps routing keys to the set of their replicas, from a driver ``TokenMap``.

    The token map comes from ``cluster.metadata.token_map`` and is replaced by the driver when
    the topology changes, so it is read through a callable each batch. Replica lists are
    shared per ring range, so their frozen sets are cached by list identity (the list itself
    is kept, so its id cannot be reused while cached).

    A keyspace whose every ring range has the same replicas (one node; or RF equal to the node
    count, e.g. 3 nodes at RF=3) has one replica set: its key is that set for every statement,
    without serializing a routing key, hashing it and searching the ring per statement (about
    a tenth of the consumer's CPU on the feed mix). The check is redone whenever the driver
    rebuilds the keyspace's replica map (new token map, or a replication change in place).
    """

    def __init__(self, token_map: Callable[[], Any]) -> None:
        self._token_map = token_map
        self._map: Any = None
        self._cache: dict[int, tuple[list[Any], Hashable]] = {}
        # keyspace -> (the driver's replica map it was computed from, the one set or None)
        self._uniform: dict[str, tuple[Any, Hashable]] = {}

    def uniform(self, keyspace: str | None) -> Hashable:
        """The one replica set of every range of ``keyspace``; ``None`` when there are several."""
        token_map = self._map
        if token_map is None or keyspace is None:
            return None
        by_keyspace = getattr(token_map, "tokens_to_hosts_by_ks", None)
        if not isinstance(by_keyspace, dict):
            return None
        replica_map = by_keyspace.get(keyspace)
        if replica_map is None:  # not built yet: the driver builds it on the first lookup
            try:
                token_map.get_replicas(keyspace, token_map.ring[0])
            except Exception:
                return None
            replica_map = by_keyspace.get(keyspace)
        if not replica_map:
            return None
        cached = self._uniform.get(keyspace)
        if cached is not None and cached[0] is replica_map:
            return cached[1]
        sets = {frozenset(hosts) for hosts in replica_map.values()}
        only = next(iter(sets)) if len(sets) == 1 else None
        self._uniform[keyspace] = (replica_map, only)
        return only

    def key(self, keyspace: str | None, routing_key: bytes | None) -> Hashable:
        """The replica set of a partition; ``None`` when the token map cannot tell."""
        token_map = self._map
        if token_map is None or routing_key is None or keyspace is None:
            return None
        try:
            replicas = token_map.get_replicas(keyspace, token_map.token_class.from_key(routing_key))
        except Exception:  # no murmur3 extension, unknown keyspace: group across replicas
            return None
        if not replicas:
            return None
        cached = self._cache.get(id(replicas))
        if cached is not None:
            return cached[1]
        frozen = frozenset(replicas)
        self._cache[id(replicas)] = (replicas, frozen)
        return frozen

    def refresh(self) -> None:
        """Pick up the driver's current token map (dropping the caches if it changed)."""
        current = self._token_map()
        if current is not self._map:
            self._map = current
            self._cache.clear()
            self._uniform.clear()


class StatementGrouper:
    """Splits bound statements into groups according to one mode and its bounds."""

    def __init__(
        self,
        mode: GroupingMode,
        max_rows: int,
        max_bytes: int,
        token_map: Callable[[], Any] = lambda: None,
    ) -> None:
        self.mode = mode
        self._max_rows = max_rows if mode != "DISABLED" else 1
        self._max_bytes = max_bytes
        self._replicas = ReplicaKeys(token_map)

    def key(self, bound: Any) -> Hashable:
        """The grouping key of one bound statement under this grouper's mode."""
        if self.mode == "PARTITION_KEY":
            return partition_key(bound)
        if self.mode == "REPLICA_SET":
            return self._replicas.key(bound.keyspace, bound.routing_key)
        return None

    def group(self, bounds: Sequence[Any]) -> list[list[int]]:
        """Index groups of ``bounds``; with ``DISABLED`` every statement alone."""
        if self.mode == "DISABLED" or self._max_rows == 1:
            return [[index] for index in range(len(bounds))]
        self._replicas.refresh()
        keys = self._keys(bounds)
        sizes = [statement_size(bound) for bound in bounds]
        return chunk(keys, sizes, self._max_rows, self._max_bytes)

    def _keys(self, bounds: Sequence[Any]) -> list[Hashable]:
        if self.mode == "REPLICA_SET":
            uniform = {ks: self._replicas.uniform(ks) for ks in {b.keyspace for b in bounds}}
            if None not in uniform.values():
                return [uniform[bound.keyspace] for bound in bounds]
        return [self.key(bound) for bound in bounds]
