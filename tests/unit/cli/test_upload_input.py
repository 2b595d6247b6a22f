"""``upload`` inputs: zstd by magic bytes (streamed, capped, truncation refused), stdin."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
from pathlib import Path

import pytest
import zstandard
from hypothesis import assume, given
from hypothesis import strategies as st

from producer_tools.cli import _spool_stdin, progress_text
from producer_tools.readers.base import ReadContext
from producer_tools.readers.detect import detect_format
from producer_tools.readers.lines import LineProblem, compression_of, iter_lines, open_input
from producer_tools.readers.registry import make_reader

LINE = json.dumps(
    {"operation": "UPDATE", "compartment_id": "1", "user_account_id": "a", "segment_ids": ["s"]}
).encode()


def lines_of(data: bytes, cap: int = 10**9) -> list[bytes | LineProblem]:
    with open_input(io.BytesIO(data), cap) as opened:
        return [line for _, line in iter_lines(opened.stream, 1 << 20)]


@given(st.lists(st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"") + b"\n"), max_size=30))
def test_zstd_input_reads_like_the_plain_input(rows: list[bytes]) -> None:
    data = b"".join(rows)
    assume(compression_of(data[:4]) is None)  # plain data that starts with a magic number is
    # read as what the magic says, by design (the same holds for gzip)
    assert lines_of(zstandard.ZstdCompressor().compress(data)) == lines_of(data)


def test_zstd_several_frames_and_streamed_frames() -> None:
    first, second = b"a\nb\n", b"c\n" * 10_000
    compressor = zstandard.ZstdCompressor()
    buffer = io.BytesIO()
    with compressor.stream_writer(buffer, closefd=False) as writer:  # no content size
        writer.write(second)
    data = compressor.compress(first) + buffer.getvalue()
    assert lines_of(data) == [b"a\n", b"b\n", *[b"c\n"] * 10_000]


def test_truncated_or_corrupt_zstd_is_a_fatal_problem_not_a_silent_end() -> None:
    data = zstandard.ZstdCompressor().compress(b"x\n" * 100_000)
    for broken in (data[: len(data) // 2], data[:4] + b"\x00" * 40):
        got = lines_of(broken)
        assert isinstance(got[-1], LineProblem)
        assert got[-1].fatal
        assert got[-1].reason.startswith("corrupt or truncated zstd data: ")


def test_zstd_bomb_stops_at_the_decompressed_cap() -> None:
    bomb = zstandard.ZstdCompressor(level=19).compress(bytes(64 << 20))
    assert len(bomb) < 4096
    got = lines_of(bomb, cap=1 << 20)
    assert isinstance(got[-1], LineProblem)
    assert "exceeds the cap" in got[-1].reason


def test_zstd_file_is_detected_whatever_its_name(tmp_path: Path) -> None:
    path = tmp_path / "export.bin"
    path.write_bytes(zstandard.ZstdCompressor().compress(LINE + b"\n"))
    assert detect_format(path).format == "mediarithmics-ndjson"
    named = tmp_path / "segments.csv.zst"
    named.write_bytes(zstandard.ZstdCompressor().compress(b"operation;expiration_duration\n"))
    assert detect_format(named).format == "mediarithmics-csv"


def test_stdin_is_spooled_and_named_by_its_sha256(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (LINE + b"\n") * 1000
    fake = io.TextIOWrapper(io.BytesIO(data))
    monkeypatch.setattr("sys.stdin", fake)
    path, digest = _spool_stdin(tmp_path)
    assert digest == hashlib.sha256(data).hexdigest()
    assert path.name == f"stdin-{digest[:16]}"
    assert path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.parametrize("compress", [gzip.compress, zstandard.ZstdCompressor().compress])
def test_progress_of_a_compressed_ndjson_stays_within_0_and_100_percent(
    tmp_path: Path, compress: object
) -> None:
    """A gzipped ``.ndjson`` once showed 1636 % and "ETA -0s": the share is now the offset in
    the file as stored, found by magic bytes, not by the name."""
    path = tmp_path / "big.ndjson"  # compressed, but not named so
    noise = random.Random(7)
    body = b"".join(
        LINE.replace(b'"a"', f'"{noise.getrandbits(64):x}"'.encode()) + b"\n" for _ in range(60_000)
    )
    path.write_bytes(compress(body))  # type: ignore[operator]
    size = path.stat().st_size
    reader = make_reader(
        "mediarithmics-ndjson", ReadContext("e" * 32, "a" * 64, 1_700_000_000_000_000, path.name)
    )
    shares = []
    for index, _item in enumerate(reader.read(path)):
        if index % 5000 == 4999:
            text = progress_text(reader, 0, size, 1.0)
            percent = int(text.split("%")[0].rsplit(" ", 1)[1])
            eta = float(text.split("ETA ")[1].split("s")[0].replace(",", ""))
            shares.append(percent)
            assert 0 <= percent <= 100, text
            assert eta >= 0, text
    assert shares == sorted(shares)
    assert shares[0] < 50 < shares[-1]
