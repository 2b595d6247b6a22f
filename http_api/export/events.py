"""Membership events of an export window: read from Cassandra, spilled to disk by user.

membership_events is partitioned by (segment, day, shard) and ordered by version, while the
export file is ordered by profile. Joining the two in memory would grow with the window, so
the window's events go into a temporary SQLite table indexed by user key; the profile pass
takes each user's events out of it (``take``) and whatever is left belongs to users that
are no longer members (``leftovers``), exported after the members.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from itertools import groupby
from pathlib import Path
from typing import Any

from http_api.export.profile_entry import ExportEvent
from segflow.contract.ids import datetime_version
from segflow.db.layout import EVENT_SHARDS
from segflow.db.session import aware

IN_FLIGHT = 32
INSERT_BATCH = 5000


class EventReader:
    """Range reads of membership_events by segment, day and shard."""

    def __init__(self, session: Any, page_size: int) -> None:
        self._session = session
        self._select = session.prepare(
            "SELECT segment_id, user_key, version, command_id, operation, applied_at "
            "FROM {ks}.membership_events WHERE segment_id = ? AND day = ? AND shard = ? "
            "AND version >= ? AND version <= ?"
        )
        self._select.fetch_size = page_size

    def read(
        self,
        segment_ids: Iterable[str],
        start_at: datetime,
        end_at: datetime,
        types: frozenset[str],
    ) -> Iterator[ExportEvent]:
        """Events of ``types`` with version time in [start_at, end_at], a few reads in flight."""
        low, high = _us(start_at), _us(end_at)
        window: deque[Any] = deque()
        for args in _partitions(segment_ids, start_at, end_at, low, high):
            window.append(self._session.execute_async(self._select, args))
            if len(window) >= IN_FLIGHT:
                yield from _events(window.popleft().result(), types)
        while window:
            yield from _events(window.popleft().result(), types)


class EventSpill:
    """A temporary on-disk table of events keyed by user key (deleted on ``close``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.unlink(missing_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute(
            "CREATE TABLE events (user_key TEXT, segment_id TEXT, version INTEGER, "
            "command_id TEXT, operation TEXT, applied_at_ms INTEGER)"
        )
        self.count = 0

    def fill(self, events: Iterable[ExportEvent]) -> int:
        """Store every event, then index by user; returns how many were stored."""
        batch: list[tuple[Any, ...]] = []
        self._db.execute("BEGIN")
        for event in events:
            batch.append(
                (
                    event.user_key,
                    event.segment_id,
                    event.version,
                    event.command_id,
                    event.operation,
                    event.applied_at_ms,
                )
            )
            if len(batch) >= INSERT_BATCH:
                self._insert(batch)
        self._insert(batch)
        self._db.execute("COMMIT")
        self._db.execute("CREATE INDEX events_by_user ON events (user_key)")
        return self.count

    def take(self, user_key: str) -> list[ExportEvent]:
        """Remove and return ``user_key``'s events."""
        if not self.count:
            return []
        rows = self._db.execute(
            "DELETE FROM events WHERE user_key = ? RETURNING user_key, segment_id, version, "
            "command_id, operation, applied_at_ms",
            (user_key,),
        ).fetchall()
        return [_event(row) for row in rows]

    def leftovers(self) -> Iterator[tuple[str, list[ExportEvent]]]:
        """Users whose events were not taken, each with their events, in user key order."""
        cursor = self._db.execute(
            "SELECT user_key, segment_id, version, command_id, operation, applied_at_ms "
            "FROM events ORDER BY user_key"
        )
        for user_key, rows in groupby(cursor, key=lambda row: row[0]):
            yield user_key, [_event(row) for row in rows]

    def close(self) -> None:
        """Close and delete the file."""
        self._db.close()
        self.path.unlink(missing_ok=True)

    def _insert(self, batch: list[tuple[Any, ...]]) -> None:
        self._db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", batch)
        self.count += len(batch)
        batch.clear()


def _partitions(
    segment_ids: Iterable[str], start_at: datetime, end_at: datetime, low: int, high: int
) -> Iterator[tuple[Any, ...]]:
    first, last = start_at.astimezone(UTC).date(), end_at.astimezone(UTC).date()
    for segment_id in segment_ids:
        # By ordinal: stepping a date past 9999-12-31 would raise, and a window may end there.
        for ordinal in range(first.toordinal(), last.toordinal() + 1):
            day = date.fromordinal(ordinal)
            for shard in range(EVENT_SHARDS):
                yield (segment_id, day, shard, low, high)


def _events(rows: Iterable[Any], types: frozenset[str]) -> Iterator[ExportEvent]:
    for row in rows:
        if row.operation in types:
            applied = row.applied_at
            applied_ms = 0 if applied is None else int(aware(applied).timestamp() * 1000)
            yield ExportEvent(
                row.segment_id, row.user_key, row.version, row.command_id, row.operation, applied_ms
            )


def _event(row: tuple[Any, ...]) -> ExportEvent:
    return ExportEvent(row[1], row[0], row[2], row[3], row[4], row[5])


def _us(moment: datetime) -> int:
    """µs since the epoch, exactly: a float timestamp is 32 µs coarse near year 9999, which
    would move the window's bounds across events."""
    return datetime_version(moment)
