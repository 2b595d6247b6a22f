"""``segflow dlq``'s pure parts: which offsets are read, which letters match, what a replayed
record carries, and that inspect's samples and counts never carry a user key."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.dead_letter import ERROR, DeadLetter, headers_of
from consumer.dlq import Inspection, Letter, LetterFilter, sample_line
from segflow.errors import SegflowError
from segflow.headers import EXECUTION_ID, SEQUENCE
from segflow.settings import DeadLetterOptions

USER = "email:jane.doe@example.com"
ORIGINAL_HEADERS = [(EXECUTION_ID, b"exec-1"), (SEQUENCE, b"4")]


def letter(
    reason: str = "unknown_segment",
    error: str = "segment 's-1' is not registered",
    offset: int = 10,
    execution_id: str | None = "exec-1",
    value: bytes = b"\xc3\x01value",
    **extra: str | None,
) -> Letter:
    dead = DeadLetter(
        topic="segflow-commands",
        partition=2,
        offset=99,
        key=USER.encode(),
        value=value,
        reason=reason,
        error=error,
        execution_id=execution_id,
        original_headers=list(ORIGINAL_HEADERS),
        **extra,
    )
    headers = [
        (name, value if isinstance(value, bytes) else str(value).encode())
        for name, value in headers_of(dead)
    ]
    return Letter(1, offset, 1_796_000_000_000, dead.key, dead.value, headers)


def test_replay_headers_are_the_original_ones() -> None:
    assert letter().replay_headers() == ORIGINAL_HEADERS
    with_fingerprint = letter("unknown_schema", schema_fingerprint="0x0123456789ABCDEF")
    assert with_fingerprint.replay_headers() == ORIGINAL_HEADERS
    assert with_fingerprint.sample()["schema_fingerprint"] == "0x0123456789ABCDEF"


def test_samples_carry_no_user_key_even_when_the_error_text_does() -> None:
    written = letter("invalid")
    # A letter whose dlq.error quotes the key (written before errors were scrubbed).
    raw_error = f"user_key: {USER} is not canonical; also '{USER}'".encode()
    headers = [(n, raw_error if n == ERROR else v) for n, v in written.headers]
    leaky = Letter(1, 10, written.timestamp_ms, written.key, written.value, headers)
    sample = leaky.sample()
    line = sample_line(sample)
    document = json.dumps(sample)
    for shown in (line, document):
        assert "jane.doe" not in shown
    assert "1@10" in line
    assert "from=segflow-commands/2@99" in line
    assert "execution=exec-1" in line


def test_inspection_counts_by_reason_execution_and_time() -> None:
    found = Inspection("hour", samples_per_reason=1)
    for item in (letter(), letter(offset=11), letter("invalid", execution_id=None)):
        found.add(item)
    document = found.document()
    assert document["total"] == 3
    assert document["by_reason"] == {"unknown_segment": 2, "invalid": 1}
    assert document["by_execution"] == {"exec-1": {"unknown_segment": 2}, "-": {"invalid": 1}}
    assert list(document["by_time"].values()) == [{"unknown_segment": 2, "invalid": 1}]
    assert [len(samples) for samples in document["samples"].values()] == [1, 1]
    assert "jane.doe" not in json.dumps(document)


def test_filters_on_reason_and_execution() -> None:
    chosen = LetterFilter(frozenset({"unknown_segment"}), "exec-1")
    assert chosen.matches(letter())
    assert not chosen.matches(letter("invalid"))
    assert not chosen.matches(letter(execution_id="exec-2"))
    assert LetterFilter().matches(letter("anything", execution_id=None))


@given(
    low=st.integers(0, 50),
    size=st.integers(0, 50),
    start=st.none() | st.integers(0, 120),
    length=st.none() | st.integers(0, 60),
    partition=st.none() | st.integers(0, 2),
)
def test_spans_are_the_requested_offsets_inside_the_watermarks(
    low: int, size: int, start: int | None, length: int | None, partition: int | None
) -> None:
    end = None if start is None or length is None else start + length
    chosen = LetterFilter(partition=partition, from_offset=start, to_offset=end)
    high = low + size
    for number in range(3):
        first, stop = chosen.span(number, low, high)
        wanted = {
            offset
            for offset in range(low, high)
            if (partition is None or number == partition)
            and (start is None or offset >= start)
            and (end is None or offset <= end)
        }
        assert set(range(first, stop)) == wanted


def test_an_inverted_offset_range_is_a_usage_error() -> None:
    with pytest.raises(SegflowError, match="is after") as caught:
        LetterFilter.of(DeadLetterOptions(from_offset=5, to_offset=4))
    assert caught.value.exit_code == 2


def test_the_same_record_dead_lettered_twice_has_one_identity() -> None:
    assert letter(offset=1).digest() == letter(offset=2, error="again").digest()
    assert letter().digest() != letter(value=b"\xc3\x01other").digest()
