"""Read effective membership back: a segment's members, a user's segments.

Effective membership = the override when set after every reset (add -> member, block ->
not); else, after a reset, the status the reset found while no feed change came after it
(``override_decides``); else the feed layer (live row whose expiry has not passed). Members
are streamed bucket by bucket with a merge-join of the feed and override partitions (both
ordered by user_key), so memory stays flat for any segment size; the next buckets are
fetched while the current one is merged.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from segflow.db.registry import Segment
from segflow.db.session import aware

PREFETCH_BUCKETS = 16
PAGE_SIZE = 2000


@dataclass(frozen=True, slots=True)
class Member:
    """One effective member of a segment (or one segment of a user).

    ``metadata``, ``reference_id`` and ``description`` are the latest Village status change's
    reporting fields, on members ``via`` override.
    """

    segment_id: str
    user_key: str
    via: str  # "feed" | "override"
    expires_at: datetime | None
    data_bag: str | None
    metadata: str | None = None
    reference_id: str | None = None
    description: str | None = None


def override_decides(state: str | None, state_version: int | None, resets: Any, held: Any) -> bool:
    """Whether the Village override decides membership (else the feed layer does).

    ``state`` (add/block) written at ``state_version``; ``resets``: every reset's version;
    ``held``: the resets no feed change came after (feed changes delete the feed row's held
    set at their version). The state decides while written after every reset, or while the
    first reset after it is still held: that reset kept the status it found, and no feed
    change has decided since. A later reset after a feed change finds a feed-decided user and
    holds nothing new, which is why the *first* reset after the state is the one that counts.
    """
    if state is None or state_version is None:
        return False
    if not resets:
        return True
    first_after = min((r for r in resets if r >= state_version), default=None)
    return first_after is None or (bool(held) and first_after in held)


class MembershipReader:
    """Prepared read statements over the membership tables."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._feed = session.prepare(
            "SELECT user_key, data_bag, expires_at, command_id, held, adds "
            "FROM {ks}.feed_by_segment "
            "WHERE segment_id = ? AND bucket = ?"
        )
        self._feed.fetch_size = PAGE_SIZE
        self._override = session.prepare(
            "SELECT user_key, state, WRITETIME(state) AS state_version, resets, metadata, "
            "reference_id, description, village FROM {ks}.override_by_segment "
            "WHERE segment_id = ? AND bucket = ?"
        )
        self._override.fetch_size = PAGE_SIZE
        self._by_user = session.prepare(
            f"SELECT {BY_USER_COLUMNS} FROM {{ks}}.segments_by_user WHERE user_key = ?"
        )
        self._cleared = session.prepare(
            "SELECT feed_cleared_at FROM {ks}.segments WHERE segment_id = ?"
        )

    def members(self, segment: Segment, now: datetime | None = None) -> Iterator[Member]:
        """Effective members of ``segment`` in (bucket, user_key) order."""
        now = now or datetime.now(tz=UTC)
        window: deque[tuple[Any, Any]] = deque()
        next_bucket = 0
        while next_bucket < segment.bucket_count or window:
            while next_bucket < segment.bucket_count and len(window) < PREFETCH_BUCKETS:
                args = (segment.segment_id, next_bucket)
                window.append(
                    (
                        self._session.execute_async(self._feed, args),
                        self._session.execute_async(self._override, args),
                    )
                )
                next_bucket += 1
            feed_future, override_future = window.popleft()
            yield from _merge(
                segment.segment_id, iter(feed_future.result()), iter(override_future.result()), now
            )

    def user_segments(self, user_key: str, now: datetime | None = None) -> list[Member]:
        """The segments ``user_key`` is effectively a member of."""
        now = now or datetime.now(tz=UTC)
        rows = self._session.execute(self._by_user, (user_key,))
        found = (effective_from_user_row(row, user_key, self._cleared_at, now) for row in rows)
        return [member for member in found if member is not None]

    def _cleared_at(self, segment_id: str) -> int | None:
        row = self._session.execute(self._cleared, (segment_id,)).one()
        return None if row is None else row.feed_cleared_at


BY_USER_COLUMNS = (
    "segment_id, feed_member, WRITETIME(feed_member) AS feed_version, feed_data_bag, "
    "feed_expires_at, feed_held, override_state, WRITETIME(override_state) AS override_version, "
    "override_resets, override_metadata, override_reference_id, override_description, "
    "feed_adds, override_village"
)


def effective_from_user_row(
    row: Any, user_key: str, cleared_at: Callable[[str], int | None], now: datetime
) -> Member | None:
    """Effective membership from one segments_by_user row (columns: ``BY_USER_COLUMNS``).

    Feed cells written at or below the segment's ``feed_cleared_at`` were cleared by a
    replace (held resets too: a reset's held element is its version); ``cleared_at`` is only
    asked when a live feed cell or a hold needs that check.
    """
    entry = _feed_entry(row.feed_adds, row.feed_member, row.feed_data_bag, row.feed_expires_at, now)
    in_feed = entry is not None
    held = row.feed_held
    cleared: int | None = None
    if in_feed or held:
        cleared = cleared_at(row.segment_id)
    if in_feed:
        in_feed = cleared is None or row.feed_version > cleared
    if held and cleared is not None:
        held = {r for r in held if r > cleared}
    state = row.override_state
    if override_decides(state, row.override_version, row.override_resets, held):
        if state != "add":
            return None
        bag = entry[0] if in_feed and entry is not None else None
        return Member(
            row.segment_id,
            user_key,
            "override",
            None,
            bag,
            *village_fields(
                row.override_village,
                row.override_metadata,
                row.override_reference_id,
                row.override_description,
            ),
        )
    if in_feed and entry is not None:
        return Member(row.segment_id, user_key, "feed", entry[1], entry[0])
    return None


def _merge(
    segment_id: str, feed: Iterator[Any], overrides: Iterator[Any], now: datetime
) -> Iterator[Member]:
    """Merge-join two user_key-ordered streams into effective members.

    A feed row is a feed member only when an add wrote it (``command_id``): a reset's hold
    alone also makes a row.
    """
    f = next(feed, None)
    o = next(overrides, None)
    while f is not None or o is not None:
        if f is not None and (o is None or f.user_key < o.user_key):
            entry = _feed_entry(f.adds, f.command_id, f.data_bag, f.expires_at, now)
            if entry is not None:
                yield Member(segment_id, f.user_key, "feed", entry[1], entry[0])
            f = next(feed, None)
        elif o is not None and (f is None or o.user_key < f.user_key):
            if o.state == "add" and override_decides(o.state, o.state_version, o.resets, None):
                yield _override_member(segment_id, o, None)
            o = next(overrides, None)
        elif f is not None and o is not None:
            entry = _feed_entry(f.adds, f.command_id, f.data_bag, f.expires_at, now)
            if override_decides(o.state, o.state_version, o.resets, f.held):
                if o.state == "add":
                    yield _override_member(segment_id, o, entry[0] if entry else None)
            elif entry is not None:
                yield Member(segment_id, f.user_key, "feed", entry[1], entry[0])
            f = next(feed, None)
            o = next(overrides, None)


def _override_member(segment_id: str, o: Any, data_bag: str | None) -> Member:
    return Member(
        segment_id,
        o.user_key,
        "override",
        None,
        data_bag,
        *village_fields(o.village, o.metadata, o.reference_id, o.description),
    )


FeedEntry = tuple[str | None, datetime | None]


def live_add(adds: Any, now: datetime) -> FeedEntry | None:
    """(data_bag, expires_at) of the add that decides a feed row, or None when none is live.

    ``adds``: command_id -> (data_bag, expires_at) of the adds at the row's version (an add
    overwrites the map, so only equal-version adds share it). Of the live ones, the one that
    keeps the user longest decides (no expiry is longest), then the greatest command_id: one
    command's whole row, the same in every delivery order. Taking it among the live ones is
    the same as taking it among all: any live one outlasts every expired one.
    """
    best: tuple[bool, datetime, str] | None = None
    found: FeedEntry | None = None
    for command_id, (data_bag, expires_at) in adds.items():
        expires = aware(expires_at)
        if not _alive(expires, now):
            continue
        rank = (expires is None, expires or now, command_id)
        if best is None or rank > best:
            best, found = rank, (data_bag, expires)
    return found


def _feed_entry(
    adds: Any, written: Any, data_bag: str | None, expires_at: datetime | None, now: datetime
) -> FeedEntry | None:
    """A feed row's live (data_bag, expires_at): from ``adds`` (V010 on), else from the row
    written before V010 (``written``: its command_id or feed_member cell)."""
    if adds:
        return live_add(adds, now)
    expires = aware(expires_at)
    if written is None or written is False or not _alive(expires, now):
        return None
    return data_bag, expires


def village_fields(
    village: Any, metadata: str | None, reference_id: str | None, description: str | None
) -> tuple[str | None, str | None, str | None]:
    """(metadata, reference_id, description) of an override: from the ``village`` cell
    (kind, command_id, metadata, reference_id, description; V010 on), else the V007 columns."""
    if village is not None:
        return village[2], village[3], village[4]
    return metadata, reference_id, description


def _alive(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is None or expires_at > now
