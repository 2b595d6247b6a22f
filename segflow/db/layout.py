"""The membership tables' partition layout, shared by the writer (consumer) and the readers.

Membership rows of a segment are spread over ``bucket_count`` partitions by a stable hash of
the user key, and change events over (segment, UTC day, shard) partitions. The consumer that
writes a row and the export API or CLI that reads it back must agree on these numbers, so they
live here, once.
"""

from __future__ import annotations

import zlib
from datetime import date
from functools import lru_cache

from segflow.contract.ids import US_PER_DAY, version_day

# Shards of a (segment, day) of membership_events: enough that 100M commands on one segment in
# one day (one replace shares a single version, so time buckets cannot spread it) stay below
# 100k rows per partition: 100M / 1024 = 97.7k (schemas/README.md, "Partition sizes"). Rows
# written before V005 used 16 shards; readers read all 1024, which include those 16.
EVENT_SHARDS = 1024
# Cassandra refuses TTLs above 20 years; a longer expiry is stored (expires_at) without a TTL
# and readers still hide the row once expires_at has passed.
MAX_TTL_S = 20 * 365 * 24 * 3600
# Cassandra 5.0 in storage_compatibility_mode CASSANDRA_4 (the shipped default, and every
# cluster upgraded from 4.x) keeps a cell's expiry as int32 seconds and refuses a TTL that ends
# after 2038-01-19 ("exceeds maximum supported expiration date"). Such rows, too, are stored
# without a TTL; a day of margin covers clock skew between the consumer and the coordinator.
MAX_TTL_EXPIRY_MS = (2**31 - 1 - 86_400) * 1000


def user_hash(user_key: str) -> int:
    """CRC-32 of the user key: the one hash both buckets and event shards derive from."""
    return zlib.crc32(user_key.encode())


def bucket_of(user_key: str, bucket_count: int) -> int:
    """Stable bucket of a user within a segment's membership partitions."""
    return user_hash(user_key) % bucket_count


def event_shard(user_key: str) -> int:
    """Shard of a user's change events within a (segment, day) of membership_events."""
    return user_hash(user_key) % EVENT_SHARDS


# CQL ``date`` on the wire: unsigned days with the epoch at 2^31 (the driver binds an int as is).
CQL_DATE_EPOCH = 1 << 31


def cql_event_day(version_us: int) -> int:
    """``event_day`` as the integer CQL carries: the writer binds it without building a date."""
    return version_us // US_PER_DAY + CQL_DATE_EPOCH


def event_day(version_us: int) -> date:
    """UTC day of a version, the time bucket of membership_events (exact up to year 9999)."""
    return _day(version_us // US_PER_DAY)


@lru_cache(maxsize=1024)
def _day(day_number: int) -> date:
    """The date of a day number: the versions of a batch share a few days, so it is cached."""
    return version_day(day_number * US_PER_DAY)
