"""The events window of an export is exact to the µs and reaches the last day of year 9999.

A request with ``end_at`` on 9999-12-31 is valid (400 only past year 9999), so its build
must not overflow stepping past that day, and its bounds must not move by float rounding
(a float timestamp is 32 µs coarse there).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from http_api.export.events import _partitions, _us
from segflow.contract.ids import MAX_VERSION, datetime_version, version_datetime
from segflow.db.layout import EVENT_SHARDS

END = datetime.max.replace(tzinfo=UTC)


def test_a_window_ending_on_the_last_day_of_9999_reads_every_day_to_it() -> None:
    start = datetime(9999, 12, 29, 12, tzinfo=UTC)
    partitions = list(_partitions(["s"], start, END, 0, 1))
    days = sorted({p[1] for p in partitions})
    assert [d.day for d in days] == [29, 30, 31]
    assert len(partitions) == 3 * EVENT_SHARDS


def test_the_last_microsecond_of_9999_is_the_last_version() -> None:
    assert _us(END) == MAX_VERSION
    assert _us(END - timedelta(microseconds=1)) == MAX_VERSION - 1


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC]),
    )
)
def test_window_bounds_are_exact_versions(moment: datetime) -> None:
    assert version_datetime(_us(moment)) == moment
    assert datetime_version(moment + timedelta(microseconds=1)) == _us(moment) + 1
