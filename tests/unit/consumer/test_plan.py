"""The pure planner (consumer/plan.py), operation by operation: which statements, which values.

Bind orders are those of consumer/statements.py; each statement's write timestamp is the
command's version (the idempotence argument), which these tests pin down value by value.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.batch import UNSET, Write
from consumer.plan import Context, plan_command
from consumer.statements import Stmt
from segflow.contract.ids import MAX_TIMESTAMP_MS, MAX_VERSION, version_datetime
from segflow.contract.models import validate_record
from segflow.contract.records import CommandRecord, command_record
from segflow.db.layout import (
    EVENT_SHARDS,
    MAX_TTL_EXPIRY_MS,
    MAX_TTL_S,
    bucket_of,
    cql_event_day,
    event_day,
    event_shard,
)
from segflow.db.registry import Segment

NOW_MS = 1_750_000_000_000
CTX = Context(now_ms=NOW_MS, events_ttl_s=86_400)
VERSION = 1_700_000_000_123_456
VERSION_MS = 1_700_000_000_123  # updated_at: CQL timestamps are ms
# CQL date of 2023-11-14: days since the epoch + 2^31.
DAY = (date(2023, 11, 14) - date(1970, 1, 1)).days + 2**31
USER = "email_hash:abc"
CID = "c" * 32


def segment(segment_id: str = "s1", bucket_count: int = 8) -> Segment:
    return Segment(segment_id, None, None, None, None, None, bucket_count, None)


def record(operation: str, **fields: Any) -> CommandRecord:
    fields.setdefault("user_key", USER)
    fields.setdefault("segment_ids", ["s1"])
    built = command_record(
        command_id=CID, execution_id="e", operation=operation, version=VERSION, **fields
    )
    validate_record(built)
    return built


def stmts(writes: list[Write]) -> list[Stmt]:
    return [w.stmt for w in writes]


def event(operation: str, segment_id: str = "s1", version: int = VERSION) -> Write:
    return Write(
        Stmt.EVENT,
        (
            segment_id,
            DAY,
            event_shard(USER),
            version,
            CID,
            USER,
            operation,
            NOW_MS,
            version,
            86_400,
        ),
    )


def test_feed_add_without_expiry_is_a_live_row_without_ttl() -> None:
    writes = plan_command(record("FEED_ADD", data_bag='{"a":1}'), [segment()], CTX)
    bucket = bucket_of(USER, 8)
    assert writes == [
        Write(
            Stmt.FEED_UPSERT_SEGMENT,
            ("s1", bucket, USER, '{"a":1}', None, CID, {CID: ('{"a":1}', None)}, VERSION, 0),
        ),
        Write(
            Stmt.FEED_UPSERT_USER,
            (VERSION, 0, '{"a":1}', None, {CID: ('{"a":1}', None)}, USER, "s1"),
        ),
        event("add"),
    ]


@pytest.mark.parametrize(
    ("expires_at_ms", "ttl"),
    [
        (NOW_MS + 1, 1),  # rounded up: the row never outlives... nor dies before its expiry
        (NOW_MS + 1000, 1),
        (NOW_MS + 1001, 2),
        (MAX_TTL_EXPIRY_MS, (MAX_TTL_EXPIRY_MS - NOW_MS) // 1000),
        (MAX_TTL_EXPIRY_MS + 1, 0),  # would end after 2038-01-19 (CASSANDRA_4 mode): no TTL
        (NOW_MS + MAX_TTL_S * 1000 + 1, 0),  # beyond Cassandra's TTL limit: no TTL at all
        (MAX_TIMESTAMP_MS, 0),
    ],
)
def test_feed_add_ttl_counts_whole_seconds_up_to_the_limit(expires_at_ms: int, ttl: int) -> None:
    writes = plan_command(record("FEED_ADD", expires_at_ms=expires_at_ms), [segment()], CTX)
    assert writes[0].values[-1] == ttl
    assert writes[1].values[1] == ttl
    assert writes[0].values[4] == writes[1].values[3] == expires_at_ms
    assert writes[0].values[6] == writes[1].values[4] == {CID: (None, expires_at_ms)}


@pytest.mark.parametrize("expires_at_ms", [0, NOW_MS - 1, NOW_MS])
def test_feed_add_already_expired_removes_below_its_version(expires_at_ms: int) -> None:
    """It supersedes lower versions like any add, and leaves its own version's cells (other
    adds, a reset's hold) alone, as a live add does (issue 14.6)."""
    writes = plan_command(record("FEED_ADD", expires_at_ms=expires_at_ms), [segment()], CTX)
    assert writes == [
        Write(Stmt.FEED_DELETE_SEGMENT, (VERSION - 1, "s1", bucket_of(USER, 8), USER)),
        Write(Stmt.FEED_DELETE_USER, (VERSION - 1, USER, "s1")),
        event("add"),
    ]


def test_feed_remove_is_two_tombstones_and_an_event() -> None:
    writes = plan_command(record("FEED_REMOVE"), [segment(bucket_count=3)], CTX)
    assert writes == [
        Write(Stmt.FEED_DELETE_SEGMENT, (VERSION, "s1", bucket_of(USER, 3), USER)),
        Write(Stmt.FEED_DELETE_USER, (VERSION, USER, "s1")),
        event("remove"),
    ]


@pytest.mark.parametrize(
    ("operation", "state"), [("OVERRIDE_ADD", "add"), ("OVERRIDE_BLOCK", "block")]
)
def test_override_set(operation: str, state: str) -> None:
    writes = plan_command(
        record(operation, metadata='{"k":"v"}', reference_id="r", description="d"),
        [segment()],
        CTX,
    )
    village = (state, CID, '{"k":"v"}', "r", "d")
    assert writes == [
        Write(
            Stmt.OVERRIDE_SET_SEGMENT,
            ("s1", bucket_of(USER, 8), USER, state, CID, village, VERSION),
        ),
        Write(Stmt.OVERRIDE_SET_USER, (VERSION, state, village, USER, "s1")),
        event(state),
    ]


def test_override_reset_holds_the_status_and_deletes_nothing() -> None:
    """Seed 002: a reset "does not change Segment status": it marks the override and the feed
    row as held at its version (no deletion); the next feed change decides."""
    writes = plan_command(record("OVERRIDE_RESET"), [segment()], CTX)
    bucket = bucket_of(USER, 8)
    held = {VERSION}
    village = ("reset", CID, None, None, None)
    assert writes == [
        Write(
            Stmt.OVERRIDE_RESET_SEGMENT,
            (VERSION, held, CID, village, "s1", bucket, USER),
        ),
        Write(Stmt.FEED_HOLD_SEGMENT, (VERSION, held, "s1", bucket, USER)),
        Write(Stmt.OVERRIDE_RESET_USER, (VERSION, held, held, village, USER, "s1")),
        event("reset"),
    ]


def test_a_command_on_several_segments_writes_each_with_its_own_buckets() -> None:
    segments = [segment("s1", 8), segment("s2", 5)]
    writes = plan_command(record("FEED_REMOVE", segment_ids=["s1", "s2"]), segments, CTX)
    assert stmts(writes) == [Stmt.FEED_DELETE_SEGMENT, Stmt.FEED_DELETE_USER, Stmt.EVENT] * 2
    assert writes[0].values[1:3] == ("s1", bucket_of(USER, 8))
    assert writes[3].values[1:3] == ("s2", bucket_of(USER, 5))
    assert writes[5] == event("remove", "s2")


def test_replace_begin_upserts_the_definition_only() -> None:
    definition = {"id": "s1", "name": "N", "description": None, "broadcast_medium_id": "b",
                  "segment_type": None}  # fmt: skip
    writes = plan_command(
        record("REPLACE_BEGIN", user_key=None, segment=definition), [segment()], CTX
    )
    assert writes == [
        Write(
            Stmt.SEGMENT_DEFINITION,
            (
                VERSION,
                "N",
                UNSET,
                UNSET,
                "b",
                VERSION_MS,
                "s1",
            ),
        )
    ]


@pytest.mark.parametrize("with_definition", [True, False])
def test_replace_end_clears_every_bucket_below_its_version(with_definition: bool) -> None:
    definition = {"id": "s1", "name": None, "description": "d", "broadcast_medium_id": None,
                  "segment_type": "t"}  # fmt: skip
    fields: dict[str, Any] = {"user_key": None, "member_count": 2}
    if with_definition:
        fields["segment"] = definition
    writes = plan_command(record("REPLACE_END", **fields), [segment(bucket_count=4)], CTX)
    cleared = VERSION - 1
    assert writes[:5] == [
        *(Write(Stmt.CLEAR_BUCKET, (cleared, "s1", b)) for b in range(4)),
        Write(Stmt.MARK_CLEARED, (cleared, cleared, "s1")),
    ]
    (definition_write,) = writes[5:]
    assert definition_write.stmt is Stmt.SEGMENT_DEFINITION
    expected = ("d", "t") if with_definition else (UNSET, UNSET)
    assert definition_write.values[2:4] == expected


def test_replace_member_is_a_feed_add_event_replace_and_a_profile() -> None:
    person = {"external_id": "x", "first_name": "F", "last_name": None, "email": "e@x",
              "phone": None, "substitution_tags": [{"tag": "t", "value": "1"},
                                                   {"tag": "t", "value": "2"}]}  # fmt: skip
    user = "user_id:x"
    writes = plan_command(record("REPLACE_MEMBER", user_key=user, person=person), [segment()], CTX)
    assert stmts(writes) == [
        Stmt.FEED_UPSERT_SEGMENT,
        Stmt.FEED_UPSERT_USER,
        Stmt.EVENT,
        Stmt.PROFILE_UPSERT,
    ]
    adds = {CID: (None, None)}
    assert writes[0].values == ("s1", bucket_of(user, 8), user, None, None, CID, adds, VERSION, 0)
    assert writes[2].values[2] == event_shard(user)
    assert writes[2].values[6] == "replace"
    assert writes[3].values == (
        VERSION,
        "x",
        "F",
        UNSET,
        "e@x",
        UNSET,
        {"t": "2"},  # the last value sent for a tag wins
        VERSION_MS,
        user,
    )


def test_the_largest_version_plans_to_the_last_microsecond_of_year_9999() -> None:
    """Issue 13: ``fromtimestamp(version / 1e6)`` raised here and crashed every consumer."""
    top = {**record("REPLACE_BEGIN", user_key=None, segment={"id": "s1"}), "version": MAX_VERSION}
    validate_record(top)
    (write,) = plan_command(top, [segment()], CTX)  # type: ignore[arg-type]
    assert write.values[5] == as_ms(datetime(9999, 12, 31, 23, 59, 59, 999_000, UTC))
    feed = {**record("FEED_REMOVE"), "version": MAX_VERSION}
    writes = plan_command(feed, [segment()], CTX)  # type: ignore[arg-type]
    assert writes[2].values[1] == (date(9999, 12, 31) - date(1970, 1, 1)).days + 2**31
    assert event_day(MAX_VERSION) == date(9999, 12, 31)


def as_ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


@given(st.integers(0, MAX_VERSION))
def test_the_cql_event_day_is_the_event_day(version: int) -> None:
    """The writer binds the integer, the readers query by ``date``: they must be one day."""
    cql = cql_event_day(version)
    assert date(1970, 1, 1) + timedelta(days=cql - 2**31) == event_day(version)
    assert event_day(version) == version_datetime(version).date()


def test_every_event_shard_is_reachable_and_bounded() -> None:
    shards = {event_shard(f"user_id:{i}") for i in range(20_000)}
    assert shards == set(range(EVENT_SHARDS))
