"""Segment creation answers from its lightweight transaction, not from a read-back (issue 13).

Right after the ``IF NOT EXISTS`` insert, ``create`` used to re-read the row at the default
LOCAL_ONE and raise the non-transient "vanished right after creation" RuntimeError when it
found nothing (a replica the Paxos commit had not reached yet): the consumer crashed on it.
A single test node has no lagging replica, so the same "the LWT applied but a plain read sees
nothing" state is made with a row tombstone written in the future: the LWT sees no row and
applies, the plain read still sees the tombstone win.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from segflow.db.registry import SegmentRegistry

pytestmark = pytest.mark.integration


def test_create_returns_what_the_lwt_decided_even_when_a_plain_read_misses_it(
    cassandra_session: Any,
) -> None:
    segment_id = f"lwt-{uuid.uuid4().hex[:8]}"
    future_us = (int(time.time()) + 3600) * 1_000_000
    cassandra_session.execute(
        f"DELETE FROM {{ks}}.segments USING TIMESTAMP {future_us} WHERE segment_id = %s",
        (segment_id,),
    )
    registry = SegmentRegistry(cassandra_session, 4, 60.0)
    segment, created = registry.create(segment_id, name="N1", bucket_count=8)
    assert created
    assert (segment.segment_id, segment.name, segment.bucket_count) == (segment_id, "N1", 8)
    assert registry.get(segment_id) == segment  # cached from the LWT's answer


def test_create_of_an_existing_segment_returns_the_stored_row(cassandra_session: Any) -> None:
    segment_id = f"lwt-{uuid.uuid4().hex[:8]}"
    first, created = SegmentRegistry(cassandra_session, 4, 0).create(
        segment_id, name="first", bucket_count=2
    )
    assert created
    again, created_again = SegmentRegistry(cassandra_session, 16, 0).create(
        segment_id, name="second", bucket_count=32
    )
    assert not created_again
    assert again == first  # bucket count fixed forever, the first definition kept
