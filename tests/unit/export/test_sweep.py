"""Which queue buckets a worker reads: never the whole window at every scan, never a miss.

The property: whatever sequence of scans, jobs queued (always into the bucket of the time
they were created) and jobs ended, a bucket still holding an open job inside the window is
read at every scan, and a full sweep happens at least every ``full_every_s``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from http_api.export.jobs import BUCKET_S, bucket_of, bucket_range
from http_api.export.sweep import BucketSweep

T0 = datetime(2026, 12, 4, 10, 30, tzinfo=UTC)
DAY = 86_400


def test_first_scan_sweeps_the_window_then_only_hot_buckets() -> None:
    sweep = BucketSweep(window_s=DAY, full_every_s=30)
    buckets, full = sweep.plan(T0, 0.0)
    assert full
    assert buckets == list(range(bucket_of(T0) - 25, bucket_of(T0) + 2))  # 24 h + 1 either side
    sweep.seen(dict.fromkeys(buckets, 0) | {bucket_of(T0) - 7: 2}, full)
    again, full = sweep.plan(T0, 1.0)
    assert not full
    now = bucket_of(T0)
    assert again == [now - 7, now - 1, now, now + 1]
    sweep.seen(dict.fromkeys(again, 0), full)  # the old job ended
    assert sweep.plan(T0, 2.0) == ([now - 1, now, now + 1], False)
    assert sweep.plan(T0, 31.0)[1]  # full again after full_every_s


def test_buckets_that_left_the_window_are_forgotten() -> None:
    sweep = BucketSweep(window_s=3600, full_every_s=1000)
    buckets, full = sweep.plan(T0, 0.0)
    sweep.seen({buckets[0]: 1}, full)
    later = T0 + timedelta(hours=5)
    assert sweep.plan(later, 1.0) == (
        [bucket_of(later) - 1, bucket_of(later), bucket_of(later) + 1],
        False,
    )


def test_bucket_range_covers_both_ends() -> None:
    assert bucket_range(T0, T0) == [bucket_of(T0)]
    assert bucket_range(T0 - timedelta(days=1), T0) == list(
        range(bucket_of(T0) - 24, bucket_of(T0) + 1)
    )
    assert bucket_of(datetime(1970, 1, 1, 1, tzinfo=UTC)) == 1 == 3600 // BUCKET_S


step = st.tuples(
    st.integers(min_value=0, max_value=3 * 3600),  # seconds the clock moves on
    st.integers(min_value=0, max_value=3),  # jobs queued now
    st.integers(min_value=0, max_value=3),  # open jobs that end
)


@given(st.lists(step, min_size=1, max_size=60), st.integers(min_value=2, max_value=48))
def test_no_open_job_is_ever_missed(steps: list[tuple[int, int, int]], hours: int) -> None:
    window_s = hours * 3600
    sweep = BucketSweep(window_s=window_s, full_every_s=600)
    queue: dict[int, int] = {}  # bucket -> open jobs, the table's truth
    now, mono, full_reads = T0, 0.0, 0
    for advance, queued, ended in steps:
        now += timedelta(seconds=advance)
        mono += advance
        queue[bucket_of(now)] = queue.get(bucket_of(now), 0) + queued
        for bucket in sorted(queue)[:ended]:
            queue[bucket] -= 1
        buckets, full = sweep.plan(now, mono)
        full_reads += full
        live = [b for b, n in queue.items() if n > 0 and b >= bucket_of(now) - hours]
        assert set(live) <= set(buckets), (live, buckets)
        if not full:
            assert len(buckets) <= 3 + len(live) + len(sweep.known)
        sweep.seen({b: queue.get(b, 0) for b in buckets}, full)
    assert full_reads >= 1
