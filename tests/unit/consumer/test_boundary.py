"""The consumer's boundary, pure: decode -> validate -> plan never lets an exception escape.

Whatever bytes a record holds, it is applied or dead-lettered with a reason (issue 13): here
that means every value either decodes, validates and plans into writes Cassandra can bind, or
raises ``DecodeError`` / ``InvalidCommandError`` (the dead-letter reasons ``undecodable`` and
``invalid``). Each test checks 100k values in the default "ci" hypothesis profile (1000
examples of 100), see ``tests.unit.contract.wide_records``.

``stage`` chains the very functions ``CommandPlanner.plan`` calls; only the registry lookup is
replaced by a pure resolution (every id and technical name is a registered segment).
"""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from consumer.batch import UNSET, Write
from consumer.plan import Context, plan_command
from consumer.statements import Stmt
from segflow.contract.codec import default_codec
from segflow.contract.errors import DecodeError
from segflow.contract.ids import MAX_TIMESTAMP_MS, MAX_VERSION, US_PER_DAY
from segflow.contract.models import InvalidCommandError
from segflow.contract.records import CommandRecord
from segflow.contract.validation import check_record
from segflow.db.layout import CQL_DATE_EPOCH, EVENT_SHARDS, MAX_TTL_S
from segflow.db.registry import Segment
from tests.unit.contract.wide_records import BATCH, BOUNDARY, damaged, seeds, wide_record

CODEC = default_codec()
CTX = Context(now_ms=1_750_000_000_000, events_ttl_s=90 * 86_400)
LONG_MIN, LONG_MAX = -(1 << 63), (1 << 63) - 1
INT_MAX = (1 << 31) - 1
# Where the bound values of each statement hold a TTL (CQL int, 0 = none, at most 20 years).
TTL_AT = {Stmt.FEED_UPSERT_SEGMENT: 8, Stmt.FEED_UPSERT_USER: 1, Stmt.EVENT: 9}
# Where they hold a CQL timestamp (ms; year 9999 at most) and the last CQL date of year 9999.
TIMESTAMP_AT = {
    Stmt.FEED_UPSERT_SEGMENT: 4,
    Stmt.FEED_UPSERT_USER: 3,
    Stmt.EVENT: 7,
    Stmt.SEGMENT_DEFINITION: 5,
    Stmt.PROFILE_UPSERT: 7,
}
MAX_DAY = MAX_VERSION // US_PER_DAY
KEY_BYTES = 65_535  # Cassandra's limit for one partition or clustering key component


def segments_of(record: CommandRecord) -> list[Segment]:
    """Every referenced segment, registered, with bucket counts from 1 to 64."""
    refs = dict.fromkeys([*record["segment_ids"], *record["segment_technical_names"]])
    return [Segment(ref, None, None, None, None, None, 1 + len(ref) % 64, None) for ref in refs]


def stage(data: bytes) -> tuple[CommandRecord, list[Write]]:
    """decode -> validate -> plan, as the planner runs them (raises only contract errors)."""
    record = CODEC.decode(data)
    check_record(record)
    return record, plan_command(record, segments_of(record), CTX)


def assert_bindable(record: CommandRecord, writes: list[Write]) -> None:
    """Every value fits its CQL type and the key limits, so no write can fail on its data."""
    assert writes
    seen: set[tuple[Stmt, tuple[type, ...]]] = set()
    for write in writes:
        shape = (write.stmt, tuple(map(type, write.values)))
        if shape in seen and len(writes) > 100:
            continue  # a 1000-segment command: one write of each shape is checked in full
        seen.add(shape)
        for value in write.values:
            assert value is None or value is UNSET or type(value) in (str, int, dict, set, tuple), (
                write.stmt,
                type(value),
            )
            if type(value) is set:  # a reset's held versions: set<bigint>
                assert all(type(v) is int and LONG_MIN <= v <= LONG_MAX for v in value)
            elif type(value) is tuple:  # the override's Village cell: tuple<text x 5>
                assert len(value) == 5
                assert all(v is None or type(v) is str for v in value)
            elif type(value) is int:
                assert LONG_MIN <= value <= LONG_MAX, write.stmt
            elif isinstance(value, str) and value in (record["user_key"], record["command_id"]):
                assert len(value.encode()) <= KEY_BYTES
        if write.stmt in TTL_AT:
            assert 0 <= write.values[TTL_AT[write.stmt]] <= max(MAX_TTL_S, CTX.events_ttl_s)
        if write.stmt in TIMESTAMP_AT:
            moment = write.values[TIMESTAMP_AT[write.stmt]]
            assert moment is None or 0 <= moment <= MAX_TIMESTAMP_MS, write.stmt
        if write.stmt is Stmt.EVENT:
            assert CQL_DATE_EPOCH <= write.values[1] <= CQL_DATE_EPOCH + MAX_DAY
            assert 0 <= write.values[2] < EVENT_SHARDS
        if write.stmt in (Stmt.FEED_UPSERT_SEGMENT, Stmt.OVERRIDE_SET_SEGMENT):
            assert 0 <= write.values[1] < 64
    assert CTX.events_ttl_s <= INT_MAX


def fate(data: bytes) -> str:
    """``applied``, ``undecodable`` or ``invalid``: anything else escaping fails the test."""
    reason: str | None = None
    try:
        record, writes = stage(data)
    except DecodeError as exc:
        reason = "undecodable" if exc.reason and exc.detail else "undecodable without a reason"
    except InvalidCommandError as exc:
        reason = "invalid" if str(exc) else "invalid without a reason"
    if reason is not None:
        assert reason in ("undecodable", "invalid"), reason
        return reason
    assert_bindable(record, writes)
    return "applied"


@BOUNDARY
@given(seeds)
def test_contract_valid_records_are_always_applied(seed: int) -> None:
    """100k valid records, every field over its whole range: each one plans, none is refused."""
    rng = random.Random(seed)
    for _ in range(BATCH):
        record = wide_record(rng)
        assert fate(CODEC.encode(record)) == "applied", record["operation"]


@BOUNDARY
@given(seeds, st.binary(max_size=64))
def test_arbitrary_bytes_are_applied_or_dead_lettered(seed: int, raw: bytes) -> None:
    """100k byte strings: pure noise, noise behind a valid header, and damaged encodings of
    wide records (flipped, cut, inserted bytes, lengths and counts of ±2^63)."""
    rng = random.Random(seed)
    fate(raw)
    fate(CODEC.header + raw)
    valid = CODEC.encode(wide_record(rng))
    for _ in range(BATCH - 2):
        pick = rng.random()
        if pick < 0.1:
            data = rng.randbytes(rng.randint(0, 200))
        elif pick < 0.2:
            data = CODEC.header + rng.randbytes(rng.randint(0, 200))
        else:
            data = damaged(rng, valid)
        fate(data)
