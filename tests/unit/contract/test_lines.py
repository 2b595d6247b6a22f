"""Streaming input: gzip by magic, BOM, CRLF, and the caps on lines and decompressed bytes."""

from __future__ import annotations

import gzip
import io
import tracemalloc
from pathlib import Path

from producer_tools.readers import ReaderLimits, make_reader
from producer_tools.readers.lines import LineProblem, iter_lines, open_input
from tests.unit.contract.helpers import context, errors, read_bytes

LINE = b'{"operation":"UPDATE","expiration_duration":0,"email_hash":"h","segment_id":"1"}'


def _lines(data: bytes, max_line: int = 100, cap: int = 10**9) -> list[tuple[int, object]]:
    with open_input(io.BytesIO(data), cap) as opened:
        return list(iter_lines(opened.stream, max_line))


def test_lines_are_numbered_from_one_and_keep_their_newline() -> None:
    assert _lines(b"a\r\nb\n\nc") == [(1, b"a\r\n"), (2, b"b\n"), (3, b"\n"), (4, b"c")]
    assert _lines(b"") == []


def test_bom_is_dropped_once() -> None:
    with open_input(io.BytesIO(b"\xef\xbb\xbfa\n\xef\xbb\xbfb"), 10**6) as opened:
        assert opened.had_bom
        assert list(iter_lines(opened.stream, 100)) == [(1, b"a\n"), (2, b"\xef\xbb\xbfb")]


def test_gzip_is_detected_by_magic_not_name(tmp_path: Path) -> None:
    path = tmp_path / "plain-name.ndjson"
    path.write_bytes(gzip.compress(b"\xef\xbb\xbfa\nb\n") + gzip.compress(b"c\n"))
    with open_input(path, 10**6) as opened:
        assert opened.compressed
        assert opened.had_bom
        assert [line for _, line in iter_lines(opened.stream, 100)] == [b"a\n", b"b\n", b"c\n"]
    fake = tmp_path / "fake.gz"
    fake.write_bytes(b"x\n")
    with open_input(fake, 10**6) as opened:
        assert not opened.compressed


def test_a_long_line_is_one_error_and_reading_goes_on() -> None:
    items = _lines(b"ok\n" + b"x" * 5000 + b"\nafter\n", max_line=100)
    assert items[0] == (1, b"ok\n")
    number, problem = items[1]
    assert number == 2
    assert isinstance(problem, LineProblem)
    assert not problem.fatal
    assert "longer than 100 bytes" in problem.reason
    assert items[2] == (3, b"after\n")


def test_a_line_exactly_at_the_cap_is_accepted() -> None:
    assert _lines(b"x" * 100 + b"\n" + b"y" * 100, max_line=100) == [
        (1, b"x" * 100 + b"\n"),
        (2, b"y" * 100),
    ]


class _Endless(io.RawIOBase):
    """``size`` bytes of one byte value, produced lazily (never held in memory)."""

    def __init__(self, size: int, byte: bytes = b"x") -> None:
        self.left = size
        self.byte = byte

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = self.byte * n
        self.left -= n
        return n


def test_a_file_without_newline_fails_in_constant_memory() -> None:
    reader = make_reader(
        "mediarithmics-ndjson", context(limits=ReaderLimits(max_line_bytes=1 << 20))
    )
    tracemalloc.start()
    try:
        items = list(reader.read(io.BufferedReader(_Endless(64 * 1024 * 1024))))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(items) == 1
    assert "longer than 1048576 bytes" in errors(items)[0].reason
    assert peak < 12 * 1024 * 1024, peak


def test_a_gzip_bomb_stops_at_the_decompressed_cap() -> None:
    bomb = gzip.compress(b"x" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100_000
    limits = ReaderLimits(max_decompressed_bytes=4 * 1024 * 1024)
    _, items = read_bytes("mediarithmics-ndjson", bomb, "bomb.ndjson.gz", limits=limits)
    error = errors(items)[-1]
    assert error.fatal
    assert "exceeds the cap of 4194304 bytes" in error.reason


def test_corrupt_and_truncated_gzip_fail_cleanly() -> None:
    data = gzip.compress((LINE + b"\n") * 1000)
    _, items = read_bytes("mediarithmics-ndjson", data[: len(data) // 2], "t.gz")
    error = errors(items)[-1]
    assert error.fatal
    assert "gzip" in error.reason
    assert len(items) > 1  # the lines before the cut were read
    corrupt = data[:20] + bytes(b ^ 0xFF for b in data[20:60]) + data[60:]
    _, items = read_bytes("mediarithmics-ndjson", corrupt, "c.gz")
    assert errors(items)[-1].fatal


def test_gzip_input_is_streamed_not_buffered() -> None:
    data = gzip.compress((LINE + b"\n") * 150_000)  # 12 MB decompressed
    reader = make_reader("mediarithmics-ndjson", context("big.ndjson.gz"))
    tracemalloc.start()
    try:
        count = sum(1 for _ in reader.read(io.BytesIO(data)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 150_000
    assert reader.bytes_read == (len(LINE) + 1) * 150_000
    assert peak < 6 * 1024 * 1024, peak
