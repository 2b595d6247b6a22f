"""The consumer's prepared statements: their names (``Stmt``) and CQL, prepared once per session.

Bind order matches the value tuples built in ``consumer.plan``. All statements are
idempotent (fixed write timestamps, no counters, no list appends), which is what allows the
writer to retry them freely.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Stmt(StrEnum):
    """The prepared statements the consumer writes with."""

    FEED_UPSERT_SEGMENT = "feed_upsert_segment"
    FEED_DELETE_SEGMENT = "feed_delete_segment"
    FEED_UPSERT_USER = "feed_upsert_user"
    FEED_DELETE_USER = "feed_delete_user"
    OVERRIDE_SET_SEGMENT = "override_set_segment"
    OVERRIDE_RESET_SEGMENT = "override_reset_segment"
    OVERRIDE_SET_USER = "override_set_user"
    OVERRIDE_RESET_USER = "override_reset_user"
    FEED_HOLD_SEGMENT = "feed_hold_segment"
    EVENT = "event"
    CLEAR_BUCKET = "clear_bucket"
    MARK_CLEARED = "mark_cleared"
    SEGMENT_DEFINITION = "segment_definition"
    PROFILE_UPSERT = "profile_upsert"


CQL: dict[Stmt, str] = {
    Stmt.FEED_UPSERT_SEGMENT: (
        "INSERT INTO {ks}.feed_by_segment (segment_id, bucket, user_key, data_bag, expires_at, "
        "command_id, held, adds) VALUES (?, ?, ?, ?, ?, ?, null, ?) USING TIMESTAMP ? AND TTL ?"
    ),
    Stmt.FEED_DELETE_SEGMENT: (
        "DELETE FROM {ks}.feed_by_segment USING TIMESTAMP ? "
        "WHERE segment_id = ? AND bucket = ? AND user_key = ?"
    ),
    Stmt.FEED_UPSERT_USER: (
        "UPDATE {ks}.segments_by_user USING TIMESTAMP ? AND TTL ? SET feed_member = true, "
        "feed_data_bag = ?, feed_expires_at = ?, feed_held = null, feed_adds = ? "
        "WHERE user_key = ? AND segment_id = ?"
    ),
    Stmt.FEED_DELETE_USER: (
        "DELETE feed_member, feed_data_bag, feed_expires_at, feed_held, feed_adds "
        "FROM {ks}.segments_by_user USING TIMESTAMP ? WHERE user_key = ? AND segment_id = ?"
    ),
    Stmt.OVERRIDE_SET_SEGMENT: (
        "INSERT INTO {ks}.override_by_segment (segment_id, bucket, user_key, state, command_id, "
        "village) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
    ),
    Stmt.OVERRIDE_RESET_SEGMENT: (
        "UPDATE {ks}.override_by_segment USING TIMESTAMP ? SET resets = resets + ?, "
        "command_id = ?, village = ? WHERE segment_id = ? AND bucket = ? AND user_key = ?"
    ),
    Stmt.OVERRIDE_SET_USER: (
        "UPDATE {ks}.segments_by_user USING TIMESTAMP ? SET override_state = ?, "
        "override_village = ? WHERE user_key = ? AND segment_id = ?"
    ),
    Stmt.OVERRIDE_RESET_USER: (
        "UPDATE {ks}.segments_by_user USING TIMESTAMP ? SET override_resets = override_resets + ?, "
        "feed_held = feed_held + ?, override_village = ? WHERE user_key = ? AND segment_id = ?"
    ),
    Stmt.FEED_HOLD_SEGMENT: (
        "UPDATE {ks}.feed_by_segment USING TIMESTAMP ? SET held = held + ? "
        "WHERE segment_id = ? AND bucket = ? AND user_key = ?"
    ),
    Stmt.EVENT: (
        "INSERT INTO {ks}.membership_events (segment_id, day, shard, version, command_id, "
        "user_key, "
        "operation, applied_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
    ),
    Stmt.CLEAR_BUCKET: (
        "DELETE FROM {ks}.feed_by_segment USING TIMESTAMP ? WHERE segment_id = ? AND bucket = ?"
    ),
    Stmt.MARK_CLEARED: (
        "UPDATE {ks}.segments USING TIMESTAMP ? SET feed_cleared_at = ? WHERE segment_id = ?"
    ),
    Stmt.SEGMENT_DEFINITION: (
        "UPDATE {ks}.segments USING TIMESTAMP ? SET name = ?, description = ?, segment_type = ?, "
        "broadcast_medium_id = ?, updated_at = ? WHERE segment_id = ?"
    ),
    Stmt.PROFILE_UPSERT: (
        "UPDATE {ks}.profiles USING TIMESTAMP ? SET external_id = ?, first_name = ?, "
        "last_name = ?, "
        "email = ?, phone = ?, tags = tags + ?, updated_at = ? WHERE user_key = ?"
    ),
}


def prepare_all(session: Any) -> dict[Stmt, Any]:
    """Prepare every statement once; the result is reused for every batch."""
    prepared: dict[Stmt, Any] = {}
    for stmt, cql in CQL.items():
        statement = session.prepare(cql)
        statement.is_idempotent = True
        prepared[stmt] = statement
    return prepared
