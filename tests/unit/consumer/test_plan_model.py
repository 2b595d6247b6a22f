"""The pure planner against the reference model: planned writes, applied with Cassandra's
last-write-wins rules in *any* order (and replayed) and read back by the readers' own
functions, give exactly the membership of ``tests.support.reference_model.effective_state``.

``CellStore`` is the smallest model of what Cassandra does with the statements of
``consumer.statements`` (their CQL, cell by cell): an INSERT writes a row marker and its
cells, an UPDATE only its cells; every cell carries its write timestamp and the highest
wins; at equal timestamps a tombstone beats an expiring cell, which beats a plain one, then
the greater value wins (``Cells.reconcile``). A set is one cell per element plus a
collection deletion: ``s = s + ?`` adds elements, ``s = null`` (INSERT or UPDATE) deletes
the set at timestamp - 1 (CQL's collection overwrite), ``DELETE s`` at the timestamp; a map
``m = ?`` is that overwrite plus one cell per key. A frozen tuple is one cell whose values
compare component by component (null first). A row
deletion hides everything of the row written at or below it, a partition deletion everything
of the partition; a row is returned while its marker or any cell or element is live. TTLs
are not modelled: the readers hide an expired feed cell by its ``expires_at`` before its TTL
runs out. The rows read back are handed to ``segflow.db.membership``'s merge (by segment)
and ``effective_from_user_row`` (by user), so the test checks the real reader logic.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from consumer.batch import UNSET, Write
from consumer.plan import Context, plan_command
from consumer.statements import CQL
from segflow.contract.records import CommandRecord, command_record
from segflow.contract.validation import check_record
from segflow.db.layout import MAX_TTL_S
from segflow.db.membership import Member, _merge, effective_from_user_row
from segflow.db.registry import Segment
from tests.support.reference_model import Membership, effective_state

NOW_MS = 1_750_000_000_000
NOW = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=NOW_MS)
CTX = Context(now_ms=NOW_MS, events_ttl_s=86_400)
USERS = ("user_id:a", "user_id:b", "email:c@d.e")
SEGMENTS = {
    "s1": Segment("s1", None, None, None, None, None, 1, None),
    "s2": Segment("s2", None, None, None, None, None, 3, None),
}
_EPOCH = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)


class _SetNull:
    """``s = null`` on a set column: CQL's collection overwrite, a deletion at timestamp - 1."""


SET_NULL = _SetNull()


@dataclass(frozen=True)
class SetAdd:
    """``s = s + ?`` on a set column: one live cell per element."""

    elements: frozenset[int]


# A cell: (timestamp, tombstone, ttl, value).
Cell = tuple[int, bool, int, Any]


def _value_bytes(value: Any) -> Any:
    """The serialized value Cassandra compares at equal timestamps (text, boolean, bigint; a
    frozen tuple component by component, a null component first)."""
    if value is None:
        return b""
    if isinstance(value, tuple):
        return tuple((0, b"") if v is None else (1, _value_bytes(v)) for v in value)
    if isinstance(value, bool):
        return b"\x01" if value else b"\x00"
    if isinstance(value, int):
        return value.to_bytes(8, "big", signed=True)
    assert isinstance(value, str)
    return value.encode()


def _reconcile_rank(cell: Cell) -> tuple[int, bool, bool, int, Any]:
    ts, tombstone, ttl, value = cell
    return ts, tombstone or ttl > 0, tombstone, ttl, _value_bytes(value)


@dataclass
class _Row:
    marker: int = -1  # the INSERT's row marker timestamp
    deleted: int = -1  # row tombstone
    cells: dict[str, Cell] = field(default_factory=dict)
    sets: dict[str, tuple[int, dict[int, int]]] = field(default_factory=dict)
    maps: dict[str, tuple[int, dict[str, tuple[int, Any]]]] = field(default_factory=dict)


# The membership tables the readers read (schemas/cql): their set columns (every other
# column is a plain cell) and (partition key, clustering key). Writes to other tables (the
# change log, profiles) are checked against their CQL's bind markers and not kept.
SET_COLUMNS = {
    "feed_by_segment": {"held"},
    "override_by_segment": {"resets"},
    "segments_by_user": {"override_resets", "feed_held"},
    "segments": set[str](),
}
MAP_COLUMNS = {"feed_by_segment": {"adds"}, "segments_by_user": {"feed_adds"}}
PRIMARY_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "feed_by_segment": (("segment_id", "bucket"), ("user_key",)),
    "override_by_segment": (("segment_id", "bucket"), ("user_key",)),
    "segments_by_user": (("user_key",), ("segment_id",)),
    "segments": (("segment_id",), ()),
    "profiles": (("user_key",), ()),
    "membership_events": (("segment_id", "day", "shard"), ("version", "command_id", "user_key")),
}
_INSERT = re.compile(
    r"INSERT INTO \{ks\}\.(\w+) \(([\w, ]+)\) VALUES \(([\w?, ]+)\) "
    r"USING TIMESTAMP \?( AND TTL \?)?"
)
_UPDATE = re.compile(r"UPDATE \{ks\}\.(\w+) USING TIMESTAMP \?( AND TTL \?)? SET (.+) WHERE (.+)")
_DELETE = re.compile(r"DELETE ?([\w, ]*) FROM \{ks\}\.(\w+) USING TIMESTAMP \? WHERE (.+)")


class _Bind:
    """A ``?`` in the CQL: the next bound value."""


def _where(
    table: str, where: str, values: Iterator[Any]
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(partition key, clustering key prefix) of a ``WHERE k = ? AND ...`` clause."""
    bound: dict[str, Any] = {}
    for condition in where.split(" AND "):
        column, term = condition.split(" = ")
        assert term == "?", where
        bound[column] = next(values)
    partition, clustering = PRIMARY_KEYS[table]
    assert set(bound) - set(partition) <= set(clustering), where
    pk = tuple(bound[c] for c in partition)
    return pk, tuple(bound[c] for c in clustering if c in bound)


@dataclass
class CellStore:
    """Partitions of rows of cells, with row and partition deletions, per table."""

    rows: dict[tuple[str, tuple[Any, ...]], dict[tuple[Any, ...], _Row]] = field(
        default_factory=dict
    )
    partition_deleted: dict[tuple[str, tuple[Any, ...]], int] = field(default_factory=dict)

    def _row(self, table: str, pk: tuple[Any, ...], ck: tuple[Any, ...]) -> _Row:
        return self.rows.setdefault((table, pk), {}).setdefault(ck, _Row())

    def _write(
        self,
        table: str,
        pk: tuple[Any, ...],
        ck: tuple[Any, ...],
        ts: int,
        ttl: int,
        columns: dict[str, Any],
        insert: bool,
    ) -> None:
        """An INSERT (``insert``: with a row marker) or an UPDATE of ``columns``."""
        row = self._row(table, pk, ck)
        if insert:
            row.marker = max(row.marker, ts)
        for column, value in columns.items():
            if value is UNSET:
                continue
            if column in MAP_COLUMNS.get(table, ()):
                assert isinstance(value, dict), (table, column, value)
                deleted, entries = self.maps_of(row, column)
                row.maps[column] = (max(deleted, ts - 1), entries)
                for key, element in value.items():
                    if key not in entries or entries[key][0] < ts:
                        entries[key] = (ts, element)
                continue
            if column in SET_COLUMNS[table]:
                deleted, elements = row.sets.setdefault(column, (-1, {}))
                if isinstance(value, SetAdd):
                    for element in value.elements:
                        elements[element] = max(elements.get(element, -1), ts)
                else:
                    assert value is SET_NULL, (table, column, value)
                    row.sets[column] = (max(deleted, ts - 1), elements)
                continue
            assert not isinstance(value, _SetNull | SetAdd), (table, column)
            cell: Cell = (ts, value is None, 0 if value is None else ttl, value)
            old = row.cells.get(column)
            if old is None or _reconcile_rank(cell) > _reconcile_rank(old):
                row.cells[column] = cell

    def _delete(
        self,
        table: str,
        pk: tuple[Any, ...],
        ck: tuple[Any, ...],
        ts: int,
        columns: tuple[str, ...],
    ) -> None:
        """``DELETE columns`` (or the whole row when ``columns`` is empty)."""
        row = self._row(table, pk, ck)
        if not columns:
            row.deleted = max(row.deleted, ts)
            return
        for column in columns:
            if column in MAP_COLUMNS.get(table, ()):
                deleted, entries = self.maps_of(row, column)
                row.maps[column] = (max(deleted, ts), entries)
            elif column in SET_COLUMNS[table]:
                deleted, elements = row.sets.setdefault(column, (-1, {}))
                row.sets[column] = (max(deleted, ts), elements)
            else:
                self._write(table, pk, ck, ts, 0, {column: None}, False)

    @staticmethod
    def maps_of(row: _Row, column: str) -> tuple[int, dict[str, tuple[int, Any]]]:
        return row.maps.setdefault(column, (-1, {}))

    def apply(self, write: Write) -> None:
        """One planned write, as its CQL in ``consumer.statements`` says: the statement's text
        is interpreted, its bind markers taken from ``write.values`` in order (so a bind order
        the plan and the CQL disagree on shows up here too)."""
        cql = CQL[write.stmt]
        values = iter(write.values)

        def bind(term: str) -> Any:
            return {"?": _Bind, "null": None, "true": True}[term]

        def take(term: Any) -> Any:
            return next(values) if term is _Bind else term

        if found := _INSERT.fullmatch(cql):
            table, names, terms, has_ttl = found.groups()
            row = dict(zip(names.split(", "), map(take, map(bind, terms.split(", "))), strict=True))
            ts, ttl = next(values), next(values) if has_ttl else 0
            pk, ck = (tuple(row.pop(c) for c in cols) for cols in PRIMARY_KEYS[table])
            columns = {
                c: SET_NULL if v is None and c in SET_COLUMNS[table] else v for c, v in row.items()
            }
            if table in SET_COLUMNS:
                self._write(table, pk, ck, ts, ttl, columns, True)
        elif found := _UPDATE.fullmatch(cql):
            table, has_ttl, assignments, where = found.groups()
            ts, ttl = next(values), next(values) if has_ttl else 0
            columns = {}
            for assignment in assignments.split(", "):
                column, term = assignment.split(" = ")
                if term == f"{column} + ?":
                    columns[column] = SetAdd(frozenset(next(values)))
                else:
                    value = take(bind(term))
                    null_set = value is None and column in SET_COLUMNS.get(table, ())
                    columns[column] = SET_NULL if null_set else value
            pk, ck = _where(table, where, values)
            if table in SET_COLUMNS:
                self._write(table, pk, ck, ts, ttl, columns, False)
        elif found := _DELETE.fullmatch(cql):
            names, table, where = found.groups()
            ts = next(values)
            pk, ck = _where(table, where, values)
            if len(ck) < len(PRIMARY_KEYS[table][1]):
                assert not names, cql  # a partition deletion
                assert not ck, cql
                key = (table, pk)
                self.partition_deleted[key] = max(self.partition_deleted.get(key, -1), ts)
            else:
                self._delete(table, pk, ck, ts, tuple(names.split(", ")) if names else ())
        else:
            raise AssertionError(f"a statement this model does not know: {cql}")
        assert next(values, _Bind) is _Bind, f"more values than bind markers: {write}"

    def select(self, table: str, pk: tuple[Any, ...]) -> list[SimpleNamespace]:
        """The partition's live rows in clustering order, as the driver returns them.

        Every column is there (null when dead; a set is null when empty), and
        ``writetime_<column>`` is the write timestamp of a live plain cell.
        """
        shadow = self.partition_deleted.get((table, pk), -1)
        out = []
        for ck, row in sorted(self.rows.get((table, pk), {}).items()):
            floor = max(shadow, row.deleted)
            live = row.marker > floor
            values: dict[str, Any] = {}
            for column, (ts, tombstone, _, value) in row.cells.items():
                if not tombstone and ts > floor:
                    values[column] = value
                    values[f"writetime_{column}"] = ts
                    live = True
            for column, (deleted, elements) in row.sets.items():
                kept = {e for e, ts in elements.items() if ts > max(floor, deleted)}
                if kept:
                    values[column] = kept
                    live = True
            for column, (deleted, entries) in row.maps.items():
                mapped = {
                    k: _naive_pair(v) for k, (ts, v) in entries.items() if ts > max(floor, deleted)
                }
                if mapped:
                    values[column] = mapped
                    live = True
            if live:
                out.append(SimpleNamespace(ck=ck, values=values))
        return out

    def _cleared_at(self, segment_id: str) -> int | None:
        rows = self.select("segments", (segment_id,))
        return rows[0].values.get("feed_cleared_at") if rows else None

    def by_segment(self) -> dict[str, dict[str, Membership]]:
        """What ``MembershipReader.members`` reads: feed and override buckets, merged."""
        state: dict[str, dict[str, Membership]] = {}
        for segment in SEGMENTS.values():
            for bucket in range(segment.bucket_count):
                pk = (segment.segment_id, bucket)
                feed = (
                    SimpleNamespace(
                        user_key=row.ck[0],
                        data_bag=row.values.get("data_bag"),
                        expires_at=_naive(row.values.get("expires_at")),
                        command_id=row.values.get("command_id"),
                        held=row.values.get("held"),
                        adds=row.values.get("adds"),
                    )
                    for row in self.select("feed_by_segment", pk)
                )
                overrides = (
                    SimpleNamespace(
                        user_key=row.ck[0],
                        state=row.values.get("state"),
                        state_version=row.values.get("writetime_state"),
                        resets=row.values.get("resets"),
                        metadata=row.values.get("metadata"),
                        reference_id=row.values.get("reference_id"),
                        description=row.values.get("description"),
                        village=row.values.get("village"),
                    )
                    for row in self.select("override_by_segment", pk)
                )
                for member in _merge(segment.segment_id, feed, overrides, NOW):
                    _put(state, member)
        return state

    def by_user(self) -> dict[str, dict[str, Membership]]:
        """What ``MembershipReader.user_segments`` reads: segments_by_user, feed_cleared_at."""
        state: dict[str, dict[str, Membership]] = {}
        for user in USERS:
            for row in self.select("segments_by_user", (user,)):
                v = row.values
                read = SimpleNamespace(
                    segment_id=row.ck[0],
                    feed_member=v.get("feed_member"),
                    feed_version=v.get("writetime_feed_member"),
                    feed_data_bag=v.get("feed_data_bag"),
                    feed_expires_at=_naive(v.get("feed_expires_at")),
                    feed_held=v.get("feed_held"),
                    override_state=v.get("override_state"),
                    override_version=v.get("writetime_override_state"),
                    override_resets=v.get("override_resets"),
                    override_metadata=v.get("override_metadata"),
                    override_reference_id=v.get("override_reference_id"),
                    override_description=v.get("override_description"),
                    feed_adds=v.get("feed_adds"),
                    override_village=v.get("override_village"),
                )
                member = effective_from_user_row(read, user, self._cleared_at, NOW)
                if member is not None:
                    _put(state, member)
        return state


def _naive_pair(element: tuple[str | None, int | None]) -> tuple[str | None, datetime | None]:
    """A map element (data_bag, expires_at) as the driver returns it."""
    return element[0], _naive(element[1])


def _naive(ms: int | None) -> datetime | None:
    """A ``timestamp`` column as the driver returns it: a naive UTC datetime."""
    return None if ms is None else _EPOCH + ms * _MS


def _put(state: dict[str, dict[str, Membership]], member: Member) -> None:
    expires = member.expires_at
    found = Membership(
        member.via,
        member.data_bag,
        None if expires is None else (expires.replace(tzinfo=None) - _EPOCH) // _MS,
        member.metadata,
        member.reference_id,
        member.description,
    )
    assert member.user_key not in state.get(member.segment_id, {}), member
    state.setdefault(member.segment_id, {})[member.user_key] = found


def _command(rng: random.Random, version: int) -> list[CommandRecord]:
    """One command (or a whole replace: BEGIN, members, END at one version)."""
    kind = rng.choice(("add", "add", "remove", "override", "replace"))
    segment_ids = rng.sample(sorted(SEGMENTS), rng.choice((1, 1, 2)))
    command_id = f"c{version}-{rng.getrandbits(64):x}"  # distinct ids, also at one version
    common: dict[str, Any] = {"command_id": command_id, "execution_id": "e", "version": version}
    if kind == "replace":
        segment = [segment_ids[0]]
        members = rng.sample(USERS[:2], rng.randint(0, 2))
        out = [
            command_record(
                **common,
                operation="REPLACE_BEGIN",
                user_key=None,
                segment_ids=segment,
                segment={"id": segment[0]},
            )
        ]
        out += [
            command_record(
                **common,
                operation="REPLACE_MEMBER",
                user_key=user,
                segment_ids=segment,
                person={"external_id": user[8:]},
            )
            for user in members
        ]
        if rng.random() < 0.8:  # a replace cut off before its END clears nothing
            out.append(
                command_record(
                    **common,
                    operation="REPLACE_END",
                    user_key=None,
                    segment_ids=segment,
                    member_count=len(members),
                )
            )
        return out
    user = rng.choice(USERS)
    if kind == "override":
        operation = rng.choice(("OVERRIDE_ADD", "OVERRIDE_BLOCK", "OVERRIDE_RESET"))
        return [
            command_record(
                **common,
                operation=operation,
                user_key=user,
                segment_ids=segment_ids,
                metadata=rng.choice((None, '{"m":1}', '{"m":2}')),
                reference_id=rng.choice((None, "r1", "r2")),
                description=rng.choice((None, "d1", "d2")),
            )
        ]
    if kind == "remove":
        return [
            command_record(
                **common, operation="FEED_REMOVE", user_key=user, segment_ids=segment_ids
            )
        ]
    expires = rng.choice(
        (None, NOW_MS - 1, NOW_MS, NOW_MS + 1, NOW_MS + 10**6, NOW_MS + MAX_TTL_S * 1000 + 5)
    )
    bag = rng.choice((None, '{"k":1}', '"x"'))
    return [
        command_record(
            **common,
            operation="FEED_ADD",
            user_key=user,
            segment_ids=segment_ids,
            expires_at_ms=expires,
            data_bag=bag,
        )
    ]


def _fill_person(record: CommandRecord) -> CommandRecord:
    if record["person"] is not None:
        record["person"] = {
            "external_id": record["person"]["external_id"],
            "first_name": None,
            "last_name": None,
            "email": None,
            "phone": None,
            "substitution_tags": [],
        }
    if record["segment"] is not None:
        record["segment"] = {
            "id": record["segment"]["id"],
            "name": None,
            "description": None,
            "broadcast_medium_id": None,
            "segment_type": None,
        }
    return record


@given(st.integers(0, 2**32), st.integers(1, 25))
def test_planned_writes_in_any_order_give_the_reference_membership(seed: int, size: int) -> None:
    rng = random.Random(seed)
    versions = rng.sample(range(1_700_000_000_000_000, 1_700_000_000_000_100), size)
    # Equal versions (issue 14.6): a third of the commands share an earlier one's version.
    versions = [
        rng.choice(versions[:i]) if i and rng.random() < 0.3 else v for i, v in enumerate(versions)
    ]
    commands = [_fill_person(c) for v in versions for c in _command(rng, v)]
    writes: list[Write] = []
    for record in commands:
        check_record(record)
        writes += plan_command(record, [SEGMENTS[s] for s in record["segment_ids"]], CTX)
    expected = effective_state(sorted(commands, key=lambda c: c["version"]), NOW_MS)
    for _ in range(3):
        rng.shuffle(writes)
        store = CellStore()
        for write in writes + rng.sample(writes, len(writes) // 3):  # a replay on top
            store.apply(write)
        assert store.by_segment() == expected
        assert store.by_user() == expected


TIE_VERSION = 1_700_000_000_000_050


def _tie_add(command_id: str, bag: str | None, expires: int | None) -> CommandRecord:
    return command_record(
        command_id=command_id,
        execution_id="e",
        operation="FEED_ADD",
        version=TIE_VERSION,
        user_key=USERS[0],
        segment_ids=["s2"],
        expires_at_ms=expires,
        data_bag=bag,
    )


def _tie_village(command_id: str, operation: str, metadata: str | None) -> CommandRecord:
    return command_record(
        command_id=command_id,
        execution_id="e",
        operation=operation,
        version=TIE_VERSION,
        user_key=USERS[0],
        segment_ids=["s2"],
        metadata=metadata,
        reference_id=f"ref-{command_id}",
        description=None,
    )


EXPIRIES = (None, NOW_MS - 1, NOW_MS + 10**6, NOW_MS + 2 * 10**6)


@given(
    st.lists(
        st.tuples(st.sampled_from((None, '"a"', '"b"')), st.sampled_from(EXPIRIES)),
        min_size=2,
        max_size=4,
    ),
    st.lists(st.sampled_from(("OVERRIDE_ADD", "OVERRIDE_BLOCK", "OVERRIDE_RESET")), max_size=3),
    st.randoms(use_true_random=False),
)
def test_equal_version_commands_keep_one_commands_whole_row(
    adds: list[tuple[str | None, int | None]], village: list[str], rng: random.Random
) -> None:
    """Issue 14.6: adds (and Village commands) at one version about one user and segment give
    one command's data bag *and* expiry (and one command's Village fields), in every order."""
    commands = [_tie_add(f"c{i}", bag, exp) for i, (bag, exp) in enumerate(adds)]
    commands += [_tie_village(f"v{i}", op, f'{{"m":{i}}}') for i, op in enumerate(village)]
    expected = effective_state(commands, NOW_MS)
    member = expected.get("s2", {}).get(USERS[0])
    if member is not None and member.via == "feed":
        assert (member.data_bag, member.expires_at_ms) in adds  # one add's whole row
    writes = [w for record in commands for w in plan_command(record, [SEGMENTS["s2"]], CTX)]
    for _ in range(4):
        rng.shuffle(writes)
        store = CellStore()
        for write in writes:
            store.apply(write)
        assert store.by_segment() == expected
        assert store.by_user() == expected
