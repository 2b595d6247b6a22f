"""The segment registry: resolve ids and technical names, create segments, cache lookups.

Every command names segments by id and/or technical name; the consumer needs each segment's
bucket count and must reject (or create, by policy) unknown ones. Lookups are cached for
``registry_cache_ttl_s``; a miss is re-read from Cassandra before a record is dead-lettered,
so a segment created a second ago is never rejected because of a stale cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cassandra import ConsistencyLevel


@dataclass(frozen=True)
class Segment:
    """A registered segment."""

    segment_id: str
    technical_name: str | None
    name: str | None
    description: str | None
    segment_type: str | None
    broadcast_medium_id: str | None
    bucket_count: int
    feed_cleared_at: int | None


class SegmentRegistry:
    """Cached access to ``segments`` and ``segments_by_technical_name``."""

    def __init__(self, session: Any, default_bucket_count: int, cache_ttl_s: float) -> None:
        self._session = session
        self._default_buckets = default_bucket_count
        self._ttl = cache_ttl_s
        self._by_id: dict[str, tuple[float, Segment | None]] = {}
        self._by_name: dict[str, tuple[float, str | None]] = {}
        self._select = session.prepare(
            "SELECT segment_id, technical_name, name, description, segment_type, "
            "broadcast_medium_id, bucket_count, feed_cleared_at FROM {ks}.segments "
            "WHERE segment_id = ?"
        )
        self._select_name = session.prepare(
            "SELECT segment_id FROM {ks}.segments_by_technical_name WHERE technical_name = ?"
        )
        # The creation LWT writes identity only (its cells carry the Paxos ballot's wall-clock
        # timestamp). Definition fields are written by versioned updates, so the definition is
        # decided by version alone: a creation can never shadow an older-versioned Segmenter
        # definition applied after it (a lagging consumer, an auto-created segment).
        self._create = session.prepare(
            "INSERT INTO {ks}.segments (segment_id, technical_name, bucket_count, created_at) "
            "VALUES (?, ?, ?, ?) IF NOT EXISTS"
        )
        self._define = session.prepare(
            "UPDATE {ks}.segments USING TIMESTAMP ? SET name = ?, description = ?, "
            "segment_type = ?, broadcast_medium_id = ?, updated_at = ? WHERE segment_id = ?"
        )
        self._create_name = session.prepare(
            "INSERT INTO {ks}.segments_by_technical_name (technical_name, segment_id) "
            "VALUES (?, ?) "
            "IF NOT EXISTS"
        )

    def get(self, segment_id: str, fresh: bool = False) -> Segment | None:
        """The segment, or None when unknown (re-read from Cassandra when ``fresh``)."""
        now = time.monotonic()
        cached = self._by_id.get(segment_id)
        if cached is not None and not fresh and now - cached[0] < self._ttl:
            return cached[1]
        row = self._session.execute(self._select, (segment_id,)).one()
        segment = _segment(row) if row is not None else None
        self._by_id[segment_id] = (now, segment)
        return segment

    def resolve_name(self, technical_name: str, fresh: bool = False) -> str | None:
        """The id registered for a technical name, or None."""
        now = time.monotonic()
        cached = self._by_name.get(technical_name)
        if cached is not None and not fresh and now - cached[0] < self._ttl:
            return cached[1]
        row = self._session.execute(self._select_name, (technical_name,)).one()
        segment_id = str(row.segment_id) if row is not None else None
        self._by_name[technical_name] = (now, segment_id)
        return segment_id

    def create(
        self,
        segment_id: str,
        technical_name: str | None = None,
        name: str | None = None,
        description: str | None = None,
        segment_type: str | None = None,
        broadcast_medium_id: str | None = None,
        bucket_count: int | None = None,
        definition_version: int | None = None,
    ) -> tuple[Segment, bool]:
        """Create the segment unless it exists; returns (segment, created).

        A lightweight transaction makes creation race-free across consumer processes and
        keeps ``bucket_count`` fixed forever once chosen. The definition fields given (only
        when this call created the segment) are written at ``definition_version`` (µs;
        default: now, for segments created by people), like any versioned definition.
        """
        if technical_name:
            owner = self.resolve_name(technical_name, fresh=True)
            if owner is not None and owner != segment_id:
                raise ValueError(
                    f"technical name {technical_name!r} already belongs to segment {owner}"
                )
        now = datetime.now(tz=UTC)
        result = self._session.execute(
            self._create,
            (segment_id, technical_name, bucket_count or self._default_buckets, now),
        )
        created = bool(result.was_applied)
        fields = (name, description, segment_type, broadcast_medium_id)
        if created and any(value is not None for value in fields):
            version = definition_version or int(now.timestamp() * 1_000_000)
            updated_at = datetime.fromtimestamp(version / 1_000_000, tz=UTC)
            self._session.execute(self._define, (version, *fields, updated_at, segment_id))
        if created and technical_name:
            self._session.execute(self._create_name, (technical_name, segment_id))
            self._by_name.pop(technical_name, None)
        # The LWT's own answer is the truth: a read-back at the default LOCAL_ONE may reach a
        # replica the Paxos commit has not reached yet and find nothing ("vanished"), which
        # used to raise a RuntimeError that no caller treats as transient.
        if created:
            segment = Segment(
                segment_id=segment_id,
                technical_name=technical_name,
                name=name,
                description=description,
                segment_type=segment_type,
                broadcast_medium_id=broadcast_medium_id,
                bucket_count=bucket_count or self._default_buckets,
                feed_cleared_at=None,
            )
        else:
            existing = result.one()
            segment = (
                _segment(existing)
                if existing is not None and getattr(existing, "segment_id", None)
                else self._serial_get(segment_id)
            )
        self._by_id[segment_id] = (time.monotonic(), segment)
        return segment, created

    def _serial_get(self, segment_id: str) -> Segment:
        """Read at SERIAL: sees every committed LWT, whichever replica answers."""
        bound = self._select.bind((segment_id,))
        bound.consistency_level = ConsistencyLevel.SERIAL
        row = self._session.execute(bound).one()
        if row is None:
            raise LookupError(f"segment {segment_id} was deleted while being created")
        return _segment(row)

    def all(self) -> list[Segment]:
        """All registered segments, paged (registry sizes are small: thousands, not millions)."""
        rows = self._session.execute(
            "SELECT segment_id, technical_name, name, description, segment_type, "
            "broadcast_medium_id, bucket_count, feed_cleared_at FROM {ks}.segments"
        )
        return sorted((_segment(row) for row in rows), key=lambda seg: seg.segment_id)

    def find(self, ref: str) -> Segment | None:
        """A segment by id, else by technical name (fresh reads: for commands run by people)."""
        segment = self.get(ref, fresh=True)
        if segment is None:
            resolved = self.resolve_name(ref, fresh=True)
            segment = self.get(resolved, fresh=True) if resolved else None
        return segment

    def forget(self, segment_id: str) -> None:
        """Drop a cached entry (after this process changed the segment)."""
        self._by_id.pop(segment_id, None)


def _segment(row: Any) -> Segment:
    return Segment(
        segment_id=row.segment_id,
        technical_name=row.technical_name,
        name=row.name,
        description=row.description,
        segment_type=row.segment_type,
        broadcast_medium_id=row.broadcast_medium_id,
        bucket_count=int(row.bucket_count or 1),
        feed_cleared_at=row.feed_cleared_at,
    )
