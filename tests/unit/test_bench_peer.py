"""The pure parts of bench/bench_peer.py: the rows each writer gets, and the printed table.

The bench itself needs Kafka Connect, a JVM and the stack (minutes), so it is not run here; what
can silently skew its figures is checked instead: that the peer's JSON array and the JVM's TSV
line carry exactly the consumer's feed row in the sink's bind order, and that the ratios are
computed the right way round.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.bench_peer import (
    EXPIRY_MS,
    SINK_CQL,
    FeedRow,
    Result,
    camel_sink_url,
    feed_adds,
    feed_row,
    format_table,
    json_record,
    tsv_line,
)
from bench.child_stats import proc_cpu_s
from segflow.contract.records import CommandRecord, command_record
from segflow.db.layout import bucket_of

NOW_MS = 1_780_000_000_000

# Text the bench could meet in a field, minus the TSV separators it refuses.
field_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\t\n\r"),
    min_size=1,
)


def row(**changes: object) -> FeedRow:
    values: dict[str, object] = {
        "segment_id": "seg",
        "bucket": 3,
        "user_key": "user_id:u1",
        "data_bag": '{"score": 7}',
        "expires_at_ms": NOW_MS + 1000,
        "command_id": "c1",
        "version": 1_700_000_000_000_001,
        "ttl": 1,
    }
    values.update(changes)
    return FeedRow(**values)  # type: ignore[arg-type]


def test_json_record_binds_every_marker_of_the_sink_cql_in_order() -> None:
    values = json.loads(json_record(row()))
    assert len(values) == SINK_CQL.count("?")
    assert values == [
        "seg",
        3,
        "user_id:u1",
        '{"score": 7}',
        NOW_MS + 1000,
        "c1",
        1_700_000_000_000_001,
        1,
    ]
    # USING TIMESTAMP and TTL are the last two markers, as the array's last two values.
    assert SINK_CQL.endswith("USING TIMESTAMP ? AND TTL ?")


@given(
    segment=field_text,
    user=field_text,
    bag=st.none() | field_text,
    command=field_text,
    version=st.integers(min_value=0, max_value=2**63 - 1),
    ttl=st.integers(min_value=1, max_value=630_720_000),
)
def test_tsv_line_splits_back_into_the_row(
    segment: str, user: str, bag: str | None, command: str, version: int, ttl: int
) -> None:
    line = tsv_line(
        row(
            segment_id=segment,
            user_key=user,
            data_bag=bag,
            command_id=command,
            version=version,
            ttl=ttl,
        )
    )
    assert line.endswith("\n")
    fields = line[:-1].split("\t")  # what BatchedFeedWriter.load does (split with limit -1)
    assert fields == [
        segment,
        "3",
        user,
        r"\N" if bag is None else bag,
        str(NOW_MS + 1000),
        command,
        str(version),
        str(ttl),
    ]


def test_tsv_line_refuses_a_field_with_a_separator() -> None:
    with pytest.raises(ValueError, match="tab or a newline"):
        tsv_line(row(data_bag="a\tb"))


def feed_command(operation: str) -> CommandRecord:
    """A one-segment feed command expiring 1.5 s after NOW_MS."""
    return command_record(
        command_id="c9",
        execution_id="e",
        operation=operation,
        version=42,
        user_key="user_id:u9",
        segment_ids=["seg-a"],
        expires_at_ms=NOW_MS + 1500,
    )


def test_feed_row_is_the_consumers_row_for_an_add() -> None:
    found = feed_row(feed_command("FEED_ADD"), 64, NOW_MS)
    # TTL rounds up: 1.5 s to the expiry is a 2 s TTL, as consumer.plan computes it.
    assert found == FeedRow(
        "seg-a", bucket_of("user_id:u9", 64), "user_id:u9", None, NOW_MS + 1500, "c9", 42, 2
    )


def test_feed_row_refuses_a_removal() -> None:
    with pytest.raises(ValueError, match="FEED_ADD"):
        feed_row(feed_command("FEED_REMOVE"), 64, NOW_MS)


def test_feed_adds_gives_exactly_the_count_all_adds_with_the_expiry() -> None:
    adds = feed_adds("e", 500, ["s0", "s1"], NOW_MS)
    assert len(adds) == 500
    assert {cmd["operation"] for cmd in adds} == {"FEED_ADD"}
    assert {cmd["expires_at_ms"] for cmd in adds} == {NOW_MS + EXPIRY_MS}


def test_camel_sink_url_carries_the_cql_raw_for_the_keyspace() -> None:
    url = camel_sink_url("127.0.0.1", 9042, "datacenter1", "ks1")
    assert url.startswith("cql:127.0.0.1:9042/ks1?datacenter=datacenter1&cql=RAW(INSERT INTO ks1.")
    assert url.endswith("USING TIMESTAMP ? AND TTL ?)")
    assert "{ks}" not in url


def test_format_table_puts_segflow_over_the_peer_and_the_ceiling() -> None:
    results = [
        Result("(j) ceiling", 100_000, 1.0, 10.0, 20.0, "1"),
        Result("(p) peer", 100_000, 20.0, 18.0, 16.0, "1"),
        Result("(s) segflow", 100_000, 4.0, 26.0, 30.0, "3 + progress"),
    ]
    text = format_table(results, "(p) peer", "(j) ceiling", "(s) segflow")
    lines = text.splitlines()
    # rows/s, then CPU-s per 1M rows (x10 for 100k rows), client then Cassandra.
    assert "| (j) ceiling | 100,000 | 1 | 100 | 200 |" in lines
    assert "| (p) peer | 5,000 | 1 | 180 | 160 |" in lines
    assert "| (s) segflow | 25,000 | 3 + progress | 260 | 300 |" in lines
    assert re.search(r"segflow / peer = 5\.00\b", text)
    assert re.search(r"segflow / JVM ceiling = 0\.25\b", text)


def test_proc_cpu_s_follows_this_process_cpu_time() -> None:
    def own_cpu() -> float:
        times = os.times()
        return times.user + times.system

    before, before_own = proc_cpu_s(os.getpid()), own_cpu()
    total = 0
    while own_cpu() - before_own < 0.1:
        total += sum(range(10_000))
    grown = proc_cpu_s(os.getpid()) - before
    # Both count clock ticks of the same process; allow a couple of ticks of rounding.
    assert 0.05 <= grown <= own_cpu() - before_own + 0.05
    assert total > 0
