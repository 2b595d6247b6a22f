"""Turn one decoded command into the Cassandra writes that apply it: pure, no I/O.

Every write carries the command's version as its write timestamp, which is what makes the
consumer idempotent and order-independent: applying the same writes twice, or in another
order, leaves the same cells. See the README's "Membership semantics" for the contract.

Time columns are bound as the integers CQL carries (``timestamp``: ms since the epoch,
``date``: days since the epoch + 2^31), exact for every version and expiry of the contract
and cheaper on both sides than a ``datetime`` the driver would take apart again.

Writes per command (one segment): feed add/remove 3 (by segment, by user, event); override
add/block 3, reset 4 (override and feed hold by segment, by user, event); replace member 4
(+ profile); replace begin 1 (definition); replace end ``bucket_count`` partition deletions
+ 2 (registry clear mark and definition).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from consumer.batch import UNSET, Write
from consumer.statements import Stmt
from segflow.contract.enums import Operation
from segflow.contract.records import CommandRecord
from segflow.db.layout import (
    EVENT_SHARDS,
    MAX_TTL_EXPIRY_MS,
    MAX_TTL_S,
    cql_event_day,
    user_hash,
)

_FEED_ADD = Operation.FEED_ADD.value
_REPLACE_BEGIN = Operation.REPLACE_BEGIN.value
_REPLACE_END = Operation.REPLACE_END.value
_REPLACE_MEMBER = Operation.REPLACE_MEMBER.value
OVERRIDE_STATE: dict[str, str | None] = {
    Operation.OVERRIDE_ADD.value: "add",
    Operation.OVERRIDE_BLOCK.value: "block",
    Operation.OVERRIDE_RESET.value: None,
}


class PlannedSegment(Protocol):
    """What the plan needs of a registered segment (``segflow.db.registry.Segment``)."""

    @property
    def segment_id(self) -> str: ...

    @property
    def bucket_count(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Context:
    """Apply-time facts the plan depends on (one per batch)."""

    now_ms: int
    events_ttl_s: int


def plan_command(
    record: CommandRecord, segments: Sequence[PlannedSegment], ctx: Context
) -> list[Write]:
    """Every write of one validated command, on the segments it resolved to.

    ``segments`` are the command's segments in order (ids first, then resolved technical
    names, without duplicates); segment-level records (``REPLACE_BEGIN/END``) name exactly
    one. The clear happens on END, which the reader yields only once the whole document
    parsed: a document cut off mid-way adds its members but never empties the segment. BEGIN
    and END share the replace's version, so their order does not matter.
    """
    operation = record["operation"]
    version = record["version"]
    if operation in (_REPLACE_BEGIN, _REPLACE_END):
        segment = segments[0]
        definition: Mapping[str, Any] = record["segment"] or {"id": segment.segment_id}
        if operation == _REPLACE_BEGIN:
            return [plan_definition(segment.segment_id, version, definition)]
        return plan_replace_clear(segment.segment_id, segment.bucket_count, version, definition)
    user_key = record["user_key"]
    assert user_key is not None  # checked by validation
    command_id = record["command_id"]
    writes: list[Write] = []
    if operation == _REPLACE_MEMBER:
        person = record["person"]
        for segment in segments:
            writes += plan_replace_member(
                segment.segment_id,
                segment.bucket_count,
                user_key,
                version,
                command_id,
                person,
                ctx,
            )
    elif operation in OVERRIDE_STATE:
        state = OVERRIDE_STATE[operation]
        village = (record["metadata"], record["reference_id"], record["description"])
        for segment in segments:
            writes += plan_override(
                segment.segment_id,
                segment.bucket_count,
                user_key,
                version,
                command_id,
                state,
                ctx,
                village,
            )
    else:
        add = operation == _FEED_ADD
        expires_at_ms = record["expires_at_ms"]
        data_bag = record["data_bag"]
        for segment in segments:
            writes += plan_feed(
                segment.segment_id,
                segment.bucket_count,
                user_key,
                version,
                command_id,
                add,
                expires_at_ms,
                data_bag,
                ctx,
            )
    return writes


def plan_feed(
    segment_id: str,
    bucket_count: int,
    user_key: str,
    version: int,
    command_id: str,
    add: bool,
    expires_at_ms: int | None,
    data_bag: str | None,
    ctx: Context,
    event_operation: str | None = None,
) -> list[Write]:
    """Feed layer: an add (live row with TTL) or a removal (row tombstone), both at ``version``.

    An add also writes its payload as the one element ``{command_id: (data_bag, expiry)}`` of
    the row's ``adds`` map (an overwrite: lower versions' elements go, equal versions' stay),
    so equal-version adds keep one command's whole row: readers take the live one that keeps
    the user longest, then the greatest command_id (README "Membership semantics").

    An add whose expiry has already passed writes nothing live: it deletes the row at
    ``version - 1``, so it supersedes every lower version, as a live add would, and leaves
    what is at its own version (another add, a reset's hold) as an add does. The change
    event says ``add``/``remove`` unless ``event_operation`` names it (a replace's member).
    """
    hashed = user_hash(user_key)
    bucket = hashed % bucket_count
    expired = expires_at_ms is not None and expires_at_ms <= ctx.now_ms
    writes: list[Write]
    if add and not expired:
        ttl = 0
        expires = None
        if expires_at_ms is not None:
            ttl = -(-(expires_at_ms - ctx.now_ms) // 1000)
            ttl = 0 if ttl > MAX_TTL_S or expires_at_ms > MAX_TTL_EXPIRY_MS else ttl
            expires = expires_at_ms
        adds = {command_id: (data_bag, expires)}
        writes = [
            Write(
                Stmt.FEED_UPSERT_SEGMENT,
                (segment_id, bucket, user_key, data_bag, expires, command_id, adds, version, ttl),
            ),
            Write(
                Stmt.FEED_UPSERT_USER,
                (version, ttl, data_bag, expires, adds, user_key, segment_id),
            ),
        ]
    else:
        deleted_at = version - 1 if add else version  # an expired add: below its version
        writes = [
            Write(Stmt.FEED_DELETE_SEGMENT, (deleted_at, segment_id, bucket, user_key)),
            Write(Stmt.FEED_DELETE_USER, (deleted_at, user_key, segment_id)),
        ]
    writes.append(
        _event(
            segment_id,
            user_key,
            hashed,
            version,
            command_id,
            event_operation or ("add" if add else "remove"),
            ctx,
        )
    )
    return writes


VillageFields = tuple[str | None, str | None, str | None]
NO_VILLAGE_FIELDS: VillageFields = (None, None, None)


def plan_override(
    segment_id: str,
    bucket_count: int,
    user_key: str,
    version: int,
    command_id: str,
    state: str | None,
    ctx: Context,
    village: VillageFields = NO_VILLAGE_FIELDS,
) -> list[Write]:
    """Override layer: ``add``/``block`` set the state, ``None`` (reset) holds it; no expiry.

    Seed 002: a reset "does not change Segment status but it allows Program and Rule logic
    to affect this user's Segment membership going forward". So a reset deletes nothing: it
    adds its version to the override row's ``resets`` and to the feed row's ``held`` set,
    which the next feed change (a higher version; at equal versions only a removal) deletes.
    Readers keep the state the reset found while that hold stands, else the feed decides —
    write times alone decide, no read-modify-write (README "Membership semantics").

    ``village`` = (metadata, reference_id, description): the status change's reporting
    fields, stored with the override as one cell ``(kind, command_id, *village)``: the latest
    status change's fields win, and at one version the greater cell (reset > block > add,
    then the greater command_id), so they are always one command's.
    """
    hashed = user_hash(user_key)
    bucket = hashed % bucket_count
    fields = (state or "reset", command_id, *village)
    if state is None:
        resets = {version}
        writes = [
            Write(
                Stmt.OVERRIDE_RESET_SEGMENT,
                (version, resets, command_id, fields, segment_id, bucket, user_key),
            ),
            Write(Stmt.FEED_HOLD_SEGMENT, (version, resets, segment_id, bucket, user_key)),
            Write(
                Stmt.OVERRIDE_RESET_USER, (version, resets, resets, fields, user_key, segment_id)
            ),
        ]
        operation = "reset"
    else:
        writes = [
            Write(
                Stmt.OVERRIDE_SET_SEGMENT,
                (segment_id, bucket, user_key, state, command_id, fields, version),
            ),
            Write(Stmt.OVERRIDE_SET_USER, (version, state, fields, user_key, segment_id)),
        ]
        operation = state
    writes.append(_event(segment_id, user_key, hashed, version, command_id, operation, ctx))
    return writes


def plan_replace_clear(
    segment_id: str, bucket_count: int, version: int, definition: Mapping[str, Any] | None
) -> list[Write]:
    """Clear the segment's feed layer below the replace: every bucket at ``version - 1``.

    Planned for REPLACE_END (the whole document was read), never for a partial replace.

    The by-user view cannot be range-deleted, so the registry records ``feed_cleared_at``
    (written at that same timestamp, so the maximum wins) and readers ignore older feed
    cells. Later-versioned commands, delivered before or after, stay untouched.
    """
    cleared = version - 1
    writes = [
        Write(Stmt.CLEAR_BUCKET, (cleared, segment_id, bucket)) for bucket in range(bucket_count)
    ]
    writes.append(Write(Stmt.MARK_CLEARED, (cleared, cleared, segment_id)))
    if definition is not None:
        writes.append(plan_definition(segment_id, version, definition))
    return writes


def plan_definition(segment_id: str, version: int, definition: Mapping[str, Any]) -> Write:
    """Upsert a segment's descriptive fields (name, description, type, broadcast medium)."""
    return Write(
        Stmt.SEGMENT_DEFINITION,
        (
            version,
            _or_unset(definition.get("name")),
            _or_unset(definition.get("description")),
            _or_unset(definition.get("segment_type")),
            _or_unset(definition.get("broadcast_medium_id")),
            version // 1000,
            segment_id,
        ),
    )


def plan_replace_member(
    segment_id: str,
    bucket_count: int,
    user_key: str,
    version: int,
    command_id: str,
    person: Mapping[str, Any] | None,
    ctx: Context,
) -> list[Write]:
    """One listed person: a feed add at the replace's version, plus its profile upsert."""
    writes = plan_feed(
        segment_id, bucket_count, user_key, version, command_id, True, None, None, ctx, "replace"
    )
    if person is not None:
        writes.append(plan_profile(user_key, version, person))
    return writes


def plan_profile(user_key: str, version: int, person: Mapping[str, Any]) -> Write:
    """Upsert the fields a person carries; sent substitution tags are added or updated."""
    tags = {tag["tag"]: tag["value"] for tag in person.get("substitution_tags") or []}
    return Write(
        Stmt.PROFILE_UPSERT,
        (
            version,
            _or_unset(person.get("external_id")),
            _or_unset(person.get("first_name")),
            _or_unset(person.get("last_name")),
            _or_unset(person.get("email")),
            _or_unset(person.get("phone")),
            tags,
            version // 1000,
            user_key,
        ),
    )


def _event(
    segment_id: str,
    user_key: str,
    hashed: int,
    version: int,
    command_id: str,
    operation: str,
    ctx: Context,
) -> Write:
    """The change event; ``hashed`` is ``user_hash(user_key)``, computed once per command."""
    return Write(
        Stmt.EVENT,
        (
            segment_id,
            cql_event_day(version),
            hashed % EVENT_SHARDS,
            version,
            command_id,
            user_key,
            operation,
            ctx.now_ms,
            version,
            ctx.events_ttl_s,
        ),
    )


def _or_unset(value: Any) -> Any:
    return UNSET if value is None else value
