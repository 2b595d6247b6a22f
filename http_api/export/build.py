"""Build one export file: read Cassandra page by page, write profile entries as they come.

Two shapes (see the README's "Export API"):

* with ``segment_filter``: the segment's effective members (bucket by bucket), then users that
  only have events of that segment in the window; one section per profile, the segment's.
* without: every profile, i.e. the union of the ``profiles`` and ``segments_by_user``
  tables, read as two full scans in token order and merge-joined; one section per segment
  the profile is a member of or has events in, or ``_profile`` when there is none.

Lookups a profile needs (its profile row, its other memberships for tags) are issued a
chunk of users at a time, a few chunks ahead of the writer, so latency overlaps and memory
stays bounded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from http_api.export.catalog import PROFILE_SECTION, needs_profile
from http_api.export.events import EventReader, EventSpill
from http_api.export.file_writer import JsonObjectWriter
from http_api.export.profile_entry import ExportEvent, Profile, profile_entry
from http_api.export.request import ExportSpec
from segflow.db.membership import (
    BY_USER_COLUMNS,
    Member,
    MembershipReader,
    effective_from_user_row,
)
from segflow.db.registry import Segment, SegmentRegistry

LOOKUP_CHUNK = 100
LOOKUPS_IN_FLIGHT = 8
CHECKPOINT_EVERY = 1000
PROFILE_COLUMNS = "user_key, external_id, first_name, last_name, email, phone, tags"

Checkpoint = Callable[[int], None]


class ExportAborted(Exception):  # noqa: N818 (a control-flow signal, not an error)
    """Raised by a checkpoint to stop a build (shutdown, lost lease)."""


@dataclass
class _Candidate:
    """A profile on its way to the file: what is known, and lookups in flight."""

    user_key: str
    member: Member | None
    events: list[ExportEvent]


class ExportBuilder:
    """Reads for exports over one Cassandra session (statements prepared once)."""

    def __init__(self, session: Any, page_size: int, spill_dir: Path) -> None:
        self._session = session
        self._page_size = page_size
        self._spill_dir = spill_dir
        self._registry = SegmentRegistry(session, default_bucket_count=1, cache_ttl_s=0)
        self._members = MembershipReader(session)
        self._events = EventReader(session, page_size)
        # Lookups go LOOKUP_CHUNK users at a time (``IN``): one driver round trip per chunk
        # instead of per profile, the driver's CPU being the bottleneck of point reads.
        self._profiles_in = session.prepare(
            f"SELECT {PROFILE_COLUMNS} FROM {{ks}}.profiles WHERE user_key IN ?"
        )
        self._by_user_in = session.prepare(
            f"SELECT user_key, {BY_USER_COLUMNS} FROM {{ks}}.segments_by_user WHERE user_key IN ?"
        )
        self._by_user_in.fetch_size = page_size

    def build(
        self,
        spec: ExportSpec,
        writer: JsonObjectWriter,
        now: datetime,
        checkpoint: Checkpoint,
        spill_name: str,
    ) -> int:
        """Write every profile of ``spec`` into ``writer``; returns the profile count."""
        if not spec.lists_profiles:
            return 0  # seed 004: no attribute and no tag -> no profile in the file
        segments = {segment.segment_id: segment for segment in self._registry.all()}
        spill = EventSpill(self._spill_dir / f"{spill_name}.events.sqlite")
        try:
            if spec.events and spec.start_at is not None and spec.end_at is not None:
                scope = [spec.segment_filter] if spec.segment_filter else sorted(segments)
                events = self._events.read(
                    scope, spec.start_at, spec.end_at, frozenset(spec.events)
                )
                spill.fill(_with_checkpoints(events, checkpoint))
            if spec.segment_filter is not None:
                segment = segments.get(spec.segment_filter)
                if segment is None:
                    return 0  # deleted from the registry since the request: nothing to list
                return self._filtered(spec, segment, segments, spill, writer, now, checkpoint)
            return self._everyone(spec, segments, spill, writer, now, checkpoint)
        finally:
            spill.close()

    def _filtered(
        self,
        spec: ExportSpec,
        segment: Segment,
        segments: dict[str, Segment],
        spill: EventSpill,
        writer: JsonObjectWriter,
        now: datetime,
        checkpoint: Checkpoint,
    ) -> int:
        def candidates() -> Iterator[_Candidate]:
            for member in self._members.members(segment, now):
                yield _Candidate(member.user_key, member, spill.take(member.user_key))
            for user_key, events in spill.leftovers():
                yield _Candidate(user_key, None, events)

        want_profile = needs_profile(spec.attributes)
        want_tags = bool(spec.tags)
        cleared = _cleared_lookup(segments)
        section = segment.segment_id
        count = 0
        window: deque[tuple[list[_Candidate], Any, Any]] = deque()

        def flush_one() -> None:
            nonlocal count
            chunk, profile_future, by_user_future = window.popleft()
            profiles: dict[str, Profile | None] = {}
            if profile_future is not None:
                profiles = {row.user_key: _profile(row) for row in profile_future.result()}
            member_of: dict[str, set[str]] = {}
            if by_user_future is not None:
                for row in by_user_future.result():
                    found = effective_from_user_row(row, row.user_key, cleared, now)
                    if found is not None:
                        member_of.setdefault(row.user_key, set()).add(found.segment_id)
            for done in chunk:
                section_members = {section: done.member} if done.member is not None else {}
                entry = profile_entry(
                    spec,
                    [section],
                    section_members,
                    member_of.get(done.user_key, ()),
                    profiles.get(done.user_key),
                    done.events,
                )
                writer.add(done.user_key, entry)
                count += 1
                if count % CHECKPOINT_EVERY == 0:
                    checkpoint(count)

        for chunk in _chunked(candidates(), LOOKUP_CHUNK):
            keys = [candidate.user_key for candidate in chunk]
            window.append(
                (
                    chunk,
                    self._session.execute_async(self._profiles_in, (keys,))
                    if want_profile
                    else None,
                    self._session.execute_async(self._by_user_in, (keys,)) if want_tags else None,
                )
            )
            if len(window) >= LOOKUPS_IN_FLIGHT:
                flush_one()
        while window:
            flush_one()
        return count

    def _everyone(
        self,
        spec: ExportSpec,
        segments: dict[str, Segment],
        spill: EventSpill,
        writer: JsonObjectWriter,
        now: datetime,
        checkpoint: Checkpoint,
    ) -> int:
        cleared = _cleared_lookup(segments)
        count = 0
        profiles = self._scan(f"SELECT token(user_key), {PROFILE_COLUMNS} FROM {{ks}}.profiles")
        memberships = self._scan(
            f"SELECT token(user_key), user_key, {BY_USER_COLUMNS} FROM {{ks}}.segments_by_user"
        )
        for user_key, profile_rows, by_user_rows in _merge_by_token(profiles, memberships):
            members: dict[str, Member] = {}
            for row in by_user_rows:
                found = effective_from_user_row(row, user_key, cleared, now)
                if found is not None:
                    members[found.segment_id] = found
            profile = _profile(profile_rows[0]) if profile_rows else None
            self._write_everyone(spec, writer, user_key, members, profile, spill.take(user_key))
            count += 1
            if count % CHECKPOINT_EVERY == 0:
                checkpoint(count)
        for user_key, events in spill.leftovers():
            self._write_everyone(spec, writer, user_key, {}, None, events)
            count += 1
        return count

    @staticmethod
    def _write_everyone(
        spec: ExportSpec,
        writer: JsonObjectWriter,
        user_key: str,
        members: dict[str, Member],
        profile: Profile | None,
        events: list[ExportEvent],
    ) -> None:
        sections = sorted(set(members) | {event.segment_id for event in events})
        entry = profile_entry(
            spec, sections or [PROFILE_SECTION], members, members.keys(), profile, events
        )
        writer.add(user_key, entry)

    def _scan(self, query: str) -> Iterator[Any]:
        statement = self._session.prepare(query)
        statement.fetch_size = self._page_size
        return iter(self._session.execute(statement))


def _chunked(items: Iterator[_Candidate], size: int) -> Iterator[list[_Candidate]]:
    chunk: list[_Candidate] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _with_checkpoints(
    events: Iterator[ExportEvent], checkpoint: Checkpoint
) -> Iterator[ExportEvent]:
    """Reading a long window takes a while: keep renewing the lease (count 0 = no profile yet)."""
    for index, event in enumerate(events, start=1):
        if index % (CHECKPOINT_EVERY * 10) == 0:
            checkpoint(0)
        yield event


def _merge_by_token(
    profiles: Iterator[Any], memberships: Iterator[Any]
) -> Iterator[tuple[str, list[Any], list[Any]]]:
    """Join two token-ordered scans (rows grouped by partition) into one row per user.

    Both tables are partitioned by user_key with the same partitioner, so a full scan returns
    users in the same (token, key) order in both.
    """
    p = next(profiles, None)
    m = next(memberships, None)
    while p is not None or m is not None:
        p_key = None if p is None else (p[0], p.user_key)
        m_key = None if m is None else (m[0], m.user_key)
        current = min(key for key in (p_key, m_key) if key is not None)
        profile_rows: list[Any] = []
        member_rows: list[Any] = []
        while p is not None and (p[0], p.user_key) == current:
            profile_rows.append(p)
            p = next(profiles, None)
        while m is not None and (m[0], m.user_key) == current:
            member_rows.append(m)
            m = next(memberships, None)
        yield current[1], profile_rows, member_rows


def _profile(row: Any) -> Profile | None:
    if row is None:
        return None
    return Profile(
        fields={
            "external_id": row.external_id,
            "first_name": row.first_name,
            "last_name": row.last_name,
            "email": row.email,
            "phone": row.phone,
        },
        tags=dict(row.tags or {}),
    )


def _cleared_lookup(segments: dict[str, Segment]) -> Callable[[str], int | None]:
    def cleared(segment_id: str) -> int | None:
        segment = segments.get(segment_id)
        return None if segment is None else segment.feed_cleared_at

    return cleared
