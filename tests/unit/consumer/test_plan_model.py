"""The pure planner against the reference model: planned writes, applied with Cassandra's
last-write-wins rules in *any* order and read back as the readers do, give exactly the
membership of ``tests.support.reference_model.effective_state``.

``CellStore`` is the smallest model of what Cassandra does with these writes: a cell or row
carries its write timestamp; the highest timestamp wins; at equal timestamps a deletion wins;
a partition deletion hides every row of the partition written at or below it. TTLs are not
modelled: the readers hide an expired row by its ``expires_at`` before its TTL runs out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from consumer.batch import Write
from consumer.plan import Context, plan_command
from consumer.statements import Stmt
from segflow.contract.records import CommandRecord, command_record
from segflow.contract.validation import check_record
from segflow.db.layout import MAX_TTL_S
from segflow.db.registry import Segment
from tests.support.reference_model import Membership, effective_state

NOW_MS = 1_750_000_000_000
CTX = Context(now_ms=NOW_MS, events_ttl_s=86_400)
USERS = ("user_id:a", "user_id:b", "email:c@d.e")
SEGMENTS = {
    "s1": Segment("s1", None, None, None, None, None, 1, None),
    "s2": Segment("s2", None, None, None, None, None, 3, None),
}
DELETE, WRITE = 1, 0  # at equal timestamps a deletion wins


@dataclass
class CellStore:
    """Rows of the by-segment tables, cells of segments_by_user, partition deletions."""

    rows: dict[tuple[Any, ...], tuple[int, int, tuple[Any, ...]]] = field(default_factory=dict)
    cells: dict[tuple[Any, ...], tuple[int, int, Any]] = field(default_factory=dict)
    cleared: dict[tuple[str, int], int] = field(default_factory=dict)
    cleared_at: dict[str, int] = field(default_factory=dict)

    def _row(self, key: tuple[Any, ...], ts: int, kind: int, values: tuple[Any, ...]) -> None:
        old = self.rows.get(key)
        if old is None or (ts, kind, values) > old:
            self.rows[key] = (ts, kind, values)

    def _cell(self, key: tuple[Any, ...], ts: int, value: Any) -> None:
        kind = DELETE if value is None else WRITE
        old = self.cells.get(key)
        if (
            old is None
            or (ts, kind) > old[:2]
            or ((ts, kind) == old[:2] and str(value) > str(old[2]))
        ):
            self.cells[key] = (ts, kind, value)

    def apply(self, write: Write) -> None:
        v = write.values
        match write.stmt:
            case Stmt.FEED_UPSERT_SEGMENT:
                self._row(("feed", v[0], v[1], v[2]), v[6], WRITE, (v[3], v[4]))
            case Stmt.FEED_DELETE_SEGMENT:
                self._row(("feed", v[1], v[2], v[3]), v[0], DELETE, ())
            case Stmt.OVERRIDE_SET_SEGMENT:
                self._row(("override", v[0], v[1], v[2]), v[5], WRITE, (v[3],))
            case Stmt.OVERRIDE_DELETE_SEGMENT:
                self._row(("override", v[1], v[2], v[3]), v[0], DELETE, ())
            case Stmt.FEED_UPSERT_USER:
                for column, value in (("member", True), ("bag", v[2]), ("expires", v[3])):
                    self._cell((v[4], v[5], column), v[0], value)
            case Stmt.FEED_DELETE_USER:
                for column in ("member", "bag", "expires"):
                    self._cell((v[1], v[2], column), v[0], None)
            case Stmt.OVERRIDE_SET_USER:
                self._cell((v[2], v[3], "override"), v[0], v[1])
            case Stmt.OVERRIDE_DELETE_USER:
                self._cell((v[1], v[2], "override"), v[0], None)
            case Stmt.CLEAR_BUCKET:
                key = (v[1], v[2])
                self.cleared[key] = max(self.cleared.get(key, -1), v[0])
            case Stmt.MARK_CLEARED:
                self.cleared_at[v[2]] = max(self.cleared_at.get(v[2], -1), v[1])
            case Stmt.EVENT | Stmt.SEGMENT_DEFINITION | Stmt.PROFILE_UPSERT:
                pass

    def _live(self, table: str, segment: str, user: str) -> tuple[Any, ...] | None:
        bucket = next(
            (k[2] for k in self.rows if k[0] == table and k[1] == segment and k[3] == user), None
        )
        if bucket is None:
            return None
        ts, kind, values = self.rows[(table, segment, bucket, user)]
        if kind == DELETE or (ts <= self.cleared.get((segment, bucket), -1) and table == "feed"):
            return None
        return values

    def by_segment(self) -> dict[str, dict[str, Membership]]:
        """What ``MembershipReader.members`` reads: feed and override rows, merged."""
        state: dict[str, dict[str, Membership]] = {}
        for segment in SEGMENTS:
            for user in USERS:
                feed = self._live("feed", segment, user)
                if feed is not None and feed[1] is not None and feed[1] <= NOW_MS:
                    feed = None
                override = self._live("override", segment, user)
                if override is not None and override[0] == "block":
                    continue
                if override is not None:
                    member = Membership("override", feed[0] if feed else None, None)
                elif feed is not None:
                    member = Membership("feed", feed[0], feed[1])
                else:
                    continue
                state.setdefault(segment, {})[user] = member
        return state

    def by_user(self) -> dict[str, dict[str, Membership]]:
        """What ``effective_from_user_row`` reads: segments_by_user cells, feed_cleared_at."""
        state: dict[str, dict[str, Membership]] = {}
        for segment in SEGMENTS:
            for user in USERS:

                def cell(column: str, u: str = user, s: str = segment) -> tuple[int, Any]:
                    ts, kind, value = self.cells.get((u, s, column), (-1, DELETE, None))
                    return ts, None if kind == DELETE else value

                feed_ts, member = cell("member")
                expires = cell("expires")[1]
                in_feed = bool(member) and (expires is None or expires > NOW_MS)
                in_feed = in_feed and feed_ts > self.cleared_at.get(segment, -1)
                override = cell("override")[1]
                bag = cell("bag")[1] if in_feed else None
                if override == "block":
                    continue
                if override == "add":
                    state.setdefault(segment, {})[user] = Membership("override", bag, None)
                elif in_feed:
                    state.setdefault(segment, {})[user] = Membership("feed", bag, expires)
        return state


def _command(rng: random.Random, version: int) -> list[CommandRecord]:
    """One command (or a whole replace: BEGIN, members, END at one version)."""
    kind = rng.choice(("add", "add", "remove", "override", "replace"))
    segment_ids = rng.sample(sorted(SEGMENTS), rng.choice((1, 1, 2)))
    common: dict[str, Any] = {"command_id": f"c{version}", "execution_id": "e", "version": version}
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
            command_record(**common, operation=operation, user_key=user, segment_ids=segment_ids)
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
    commands = [_fill_person(c) for v in versions for c in _command(rng, v)]
    writes: list[Write] = []
    for record in commands:
        check_record(record)
        writes += plan_command(record, [SEGMENTS[s] for s in record["segment_ids"]], CTX)
    expected = effective_state(sorted(commands, key=lambda c: c["version"]), NOW_MS)
    for _ in range(3):
        rng.shuffle(writes)
        store = CellStore()
        for write in writes:
            store.apply(write)
        assert store.by_segment() == expected
        assert store.by_user() == expected
