"""Export speed and memory: ``segflow export`` against a bare driver read of the same rows.

Run (stack up and migrated): ``python -m bench.bench_export --sizes 100000,1000000``

For each size N a segment of N members with a profile each is seeded once (kept between runs:
segment ``bench-export-N``, written straight with the consumer's own statements), then:

(a) a bare cassandra-driver loop reading exactly what the export reads: every bucket
    partition of the segment, prefetched, and the members' profiles 100 keys per ``IN``
    query, 8 queries in flight — no JSON, no file: the ceiling on this node;
(b) ``segflow export bench-export-N --attributes email,first_name,membership.via,
    data_bag.score --gzip`` as a child process: wall time and its own peak RSS
    (``bench.child_stats``).

Printed: profiles/s of both, b/a, peak RSS per size, and RSS(largest)/RSS(smallest) — the
export's memory must stay flat (goal: within 10 %).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from cassandra.concurrent import execute_concurrent_with_args

from bench.child_stats import measured_child
from segflow.db.layout import bucket_of
from segflow.db.registry import SegmentRegistry
from segflow.db.session import connect
from segflow.settings import CassandraSettings

BUCKETS = 1024
ATTRIBUTES = "email,first_name,membership.via,data_bag.score"


def seed(session: Any, segment_id: str, size: int) -> None:
    """N members (feed rows) with profiles; skipped when the segment is already complete."""
    registry = SegmentRegistry(session, BUCKETS, 0)
    existing = registry.get(segment_id, fresh=True)
    if existing is not None and existing.description == f"seeded {size}":
        return
    registry.create(segment_id, bucket_count=BUCKETS)
    feed = session.prepare(
        "INSERT INTO {ks}.feed_by_segment (segment_id, bucket, user_key, data_bag, command_id) "
        "VALUES (?, ?, ?, ?, ?)"
    )
    profile = session.prepare(
        "INSERT INTO {ks}.profiles (user_key, first_name, email, tags) VALUES (?, ?, ?, ?)"
    )
    started = time.perf_counter()
    step = 50_000
    for low in range(0, size, step):
        keys = [f"user_id:{segment_id}-{i}" for i in range(low, min(size, low + step))]
        execute_concurrent_with_args(
            session,
            feed,
            [
                (segment_id, bucket_of(k, BUCKETS), k, json.dumps({"score": i}), "seed")
                for i, k in enumerate(keys, start=low)
            ],
            concurrency=256,
        )
        execute_concurrent_with_args(
            session,
            profile,
            [(k, f"F{i}", f"{i}@example.com", {"city": "Oslo"}) for i, k in enumerate(keys)],
            concurrency=256,
        )
    session.execute(
        "UPDATE {ks}.segments SET description = %s WHERE segment_id = %s",
        (f"seeded {size}", segment_id),
    )
    print(f"seeded {segment_id}: {size:,} members in {time.perf_counter() - started:.0f} s")


def bare_read(session: Any, segment_id: str) -> int:
    """(a): the same reads as the export, nothing else."""
    select = session.prepare(
        "SELECT user_key, data_bag, expires_at FROM {ks}.feed_by_segment "
        "WHERE segment_id = ? AND bucket = ?"
    )
    select.fetch_size = 2000
    profiles = session.prepare(
        "SELECT user_key, external_id, first_name, last_name, email, phone, tags "
        "FROM {ks}.profiles WHERE user_key IN ?"
    )
    buckets: deque[Any] = deque()
    lookups: deque[Any] = deque()
    chunk: list[str] = []
    count = 0

    def drain(limit: int) -> int:
        rows = 0
        while len(lookups) > limit:
            rows += sum(1 for _ in lookups.popleft().result())
        return rows

    next_bucket = 0
    while next_bucket < BUCKETS or buckets:
        while next_bucket < BUCKETS and len(buckets) < 16:
            buckets.append(session.execute_async(select, (segment_id, next_bucket)))
            next_bucket += 1
        for row in buckets.popleft().result():
            chunk.append(row.user_key)
            if len(chunk) == 100:
                lookups.append(session.execute_async(profiles, (chunk,)))
                chunk = []
                count += drain(8)
    if chunk:
        lookups.append(session.execute_async(profiles, (chunk,)))
    return count + drain(0)


def run_export(cassandra: CassandraSettings, segment_id: str, out: Path) -> tuple[float, float]:
    """(b): wall seconds and peak RSS (MB) of ``segflow export``."""
    env = {
        **os.environ,
        "SEGFLOW_CASSANDRA__KEYSPACE": cassandra.keyspace,
        "SEGFLOW_LOG__LEVEL": "WARNING",
    }
    begin = time.perf_counter()
    cmd = [sys.executable, "-m", "segflow.cli", "export", segment_id]
    cmd += ["--attributes", ATTRIBUTES, "--out", str(out), "--gzip"]
    stats, output = measured_child(cmd, env)
    seconds = time.perf_counter() - begin
    if stats["status"] != 0:
        raise RuntimeError(f"segflow export failed:\n{output[-2000:]}")
    return seconds, stats["maxrss_kb"] / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    cassandra = CassandraSettings()
    cluster, session = connect(cassandra, cassandra.keyspace)
    rows = []
    try:
        for size in sizes:
            segment_id = f"bench-export-{size}"
            seed(session, segment_id, size)
            begin = time.perf_counter()
            read = bare_read(session, segment_id)
            bare_s = time.perf_counter() - begin
            assert read == size, f"bare read found {read} profiles, expected {size}"
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "export.json.gz"
                seconds, rss = run_export(cassandra, segment_id, out)
                file_mb = out.stat().st_size / 1e6
            rows.append((size, size / bare_s, size / seconds, rss, file_mb))
    finally:
        cluster.shutdown()
    print(
        f"\n{'members':>10} {'(a) bare read/s':>16} {'(b) export/s':>13} {'b/a':>5} "
        f"{'peak RSS MB':>12} {'file MB (gz)':>13}"
    )
    for size, bare, export, rss, file_mb in rows:
        print(
            f"{size:>10,} {bare:>16,.0f} {export:>13,.0f} {export / bare:>5.2f} {rss:>12.0f} "
            f"{file_mb:>13.1f}"
        )
    if len(rows) > 1:
        print(
            f"RSS {rows[-1][0]:,} / RSS {rows[0][0]:,} = {rows[-1][3] / rows[0][3]:.2f} "
            "(goal: <= 1.10)"
        )


if __name__ == "__main__":
    main()
