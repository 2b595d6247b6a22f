"""Which hour buckets of ``export_job_queue`` a worker reads at each scan (pure logic).

A job's queue entry lives in the bucket of its ``created_at`` and stays there until the job
ends, so only two kinds of bucket can hold something claimable:

* the current one (and its neighbours, for clocks a little apart between replicas): every
  new job lands there;
* buckets that held entries at the last read: a job released for a retry, or whose worker
  died, is still where it was queued.

So a worker reads the buckets around now plus the ones it last saw non-empty, and sweeps the
whole poll-URL window only every ``full_every_s`` (another replica's worker may have queued
into a bucket this one has not looked at since; clocks jump). Idle, that is 3 small reads a
scan instead of one per hour of the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from http_api.export.jobs import bucket_of


@dataclass
class BucketSweep:
    """Remembers the non-empty buckets between scans of one worker."""

    window_s: float
    full_every_s: float
    _known: set[int] = field(default_factory=set)
    _last_full: float | None = None

    def window(self, now: datetime) -> list[int]:
        """Every bucket an open job can be in: created within the poll-URL window (plus one
        bucket either side for clock differences)."""
        first = bucket_of(now - timedelta(seconds=self.window_s)) - 1
        return list(range(first, bucket_of(now) + 2))

    def plan(self, now: datetime, monotonic_s: float) -> tuple[list[int], bool]:
        """The buckets to read now, and whether that is a full sweep of the window."""
        window = self.window(now)
        if self._last_full is None or monotonic_s - self._last_full >= self.full_every_s:
            self._last_full = monotonic_s
            return window, True
        current = bucket_of(now)
        hot = {current - 1, current, current + 1}
        hot |= {bucket for bucket in self._known if window[0] <= bucket <= window[-1]}
        return sorted(hot), False

    def seen(self, read: dict[int, int], full: bool) -> None:
        """Record what a read found (bucket -> entries); a full sweep replaces the memory."""
        nonempty = {bucket for bucket, count in read.items() if count}
        if full:
            self._known = nonempty
        else:
            self._known = (self._known - set(read)) | nonempty

    @property
    def known(self) -> frozenset[int]:
        """Buckets last seen holding entries."""
        return frozenset(self._known)
