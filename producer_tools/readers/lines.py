"""Open an import file as a bounded, decompressed byte stream and split it into lines.

Every reader goes through here so that the limits hold for every format: gzip and zstd are
detected by their magic bytes (not trusted from the file name) and decompressed as a stream
(zstd: a truncated last frame is an error, not a silent end); a cap on the
total decompressed bytes stops a gzip bomb; a cap on line length makes a file without
newlines fail with one error instead of growing one line until memory runs out. Memory use is
the read buffer plus one line, whatever the file size.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Input fed to the zstd decoder per call: its output per call is bounded by what so little
# input can expand to (measured: 8 MiB from 256 bytes of a maximally compressed run of zeros).
ZSTD_INPUT_SLICE = 256
UTF8_BOM = b"\xef\xbb\xbf"
READ_BUFFER_BYTES = 1 << 20

InputSource = Path | str | BinaryIO


class InputLimitError(Exception):
    """The decompressed input grew past ``max_decompressed_bytes``."""


class TruncatedZstdError(EOFError):
    """The input ended inside a zstd frame."""


# Errors a damaged or hostile input raises while being read; they end the file, not the run.
STREAM_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    zlib.error,
    zstandard.ZstdError,
    InputLimitError,
)


def describe_stream_error(exc: BaseException) -> str:
    """One line saying why the input could not be read further."""
    if isinstance(exc, InputLimitError):
        return str(exc)
    if isinstance(exc, zstandard.ZstdError | TruncatedZstdError):
        return f"corrupt or truncated zstd data: {exc}"
    if isinstance(exc, gzip.BadGzipFile | zlib.error | EOFError):
        return f"corrupt or truncated gzip data: {exc}"
    return f"cannot read input: {type(exc).__name__}: {exc}"


class _CappedRaw(io.RawIOBase):
    """Counts the bytes that pass and refuses to go past a cap."""

    def __init__(self, inner: BinaryIO, cap: int) -> None:
        super().__init__()
        # read1: return what is available now, so the lines before a corrupt or truncated
        # gzip tail are delivered before the error, not lost with a half-filled buffer.
        self._read = getattr(inner, "read1", inner.read)
        self._cap = cap
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self.count += size
        if self.count > self._cap:
            raise InputLimitError(
                f"decompressed input exceeds the cap of {self._cap} bytes (max_decompressed_bytes)"
            )
        return size


class _ReadOnly(io.RawIOBase):
    """Gives any object with ``read`` the raw interface ``io.BufferedReader`` needs."""

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _ZstdRaw(io.RawIOBase):
    """Streams zstd frames (several in a row too) and refuses a truncated last frame.

    ``zstandard``'s stream reader ends silently at a truncated frame, which would upload a
    partial file as if it were whole; its decompression object says whether a frame ended.
    """

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self._read = getattr(inner, "read1", inner.read)
        self._context = zstandard.ZstdDecompressor()
        self._frame = self._context.decompressobj()
        self._in_frame = False
        self._input = memoryview(b"")
        self._output = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._output:
            if not self._input:
                self._input = memoryview(self._read(64 * 1024))
                if not self._input:
                    if self._in_frame:
                        raise TruncatedZstdError("the input ends inside a frame")
                    return 0
            piece, self._input = self._input[:ZSTD_INPUT_SLICE], self._input[ZSTD_INPUT_SLICE:]
            self._in_frame = True
            self._output = memoryview(self._frame.decompress(piece))
            if self._frame.eof:
                rest = self._frame.unused_data
                self._frame = self._context.decompressobj()
                self._in_frame = False
                if rest:
                    self._input = memoryview(bytes(rest) + bytes(self._input))
        size = min(len(buffer), len(self._output))
        buffer[:size] = self._output[:size]
        self._output = self._output[size:]
        return size


def compression_of(head: bytes) -> str | None:
    """``gzip``, ``zstd`` or ``None``, from a file's first four bytes (its magic number)."""
    if head[:2] == GZIP_MAGIC:
        return "gzip"
    if head[:4] == ZSTD_MAGIC:
        return "zstd"
    return None


@dataclass
class OpenedInput:
    """A decompressed, BOM-less, capped byte stream and what was found while opening it."""

    stream: io.BufferedReader[_CappedRaw]
    compressed: bool
    had_bom: bool
    _counter: _CappedRaw
    compression: str | None = None
    _source: BinaryIO | None = None

    @property
    def bytes_read(self) -> int:
        """Decompressed bytes pulled from the source so far (read-ahead included)."""
        return self._counter.count

    @property
    def source_offset(self) -> int:
        """Bytes of the input *as stored* consumed so far (the compressed offset), for progress;
        equal to ``bytes_read`` for an uncompressed input, 0 when unknown (a pipe)."""
        if self._source is None:
            return 0
        try:
            return self._source.tell()
        except (OSError, ValueError):
            return 0


@contextmanager
def open_input(
    source: InputSource, max_decompressed_bytes: int, buffer_size: int = READ_BUFFER_BYTES
) -> Iterator[OpenedInput]:
    """Open ``source`` (a path or a binary stream) for reading, gzip-aware.

    A path is opened and closed here; a stream passed in is read but left open (its owner
    closes it). Raises ``OSError`` when the path cannot be opened.
    """
    owned: BinaryIO | None = None
    if isinstance(source, str | Path):
        owned = open(source, "rb")  # noqa: SIM115 - closed in the finally below
        base: BinaryIO = owned
    else:
        base = source
    try:
        peekable = (
            base
            if isinstance(base, io.BufferedReader)
            else io.BufferedReader(_ReadOnly(base), buffer_size=64 * 1024)
        )
        compression = compression_of(peekable.peek(4)[:4])
        compressed = compression is not None
        decompressed: BinaryIO
        if compression == "gzip":
            decompressed = gzip.GzipFile(fileobj=peekable, mode="rb")  # type: ignore[assignment]
        elif compression == "zstd":
            decompressed = io.BufferedReader(_ZstdRaw(peekable))
        else:
            decompressed = peekable
        counter = _CappedRaw(decompressed, max_decompressed_bytes)
        stream = io.BufferedReader(counter, buffer_size=buffer_size)
        had_bom = False
        try:
            if stream.peek(3)[:3] == UTF8_BOM:
                stream.read(3)
                had_bom = True
        except STREAM_ERRORS:
            # Reported by whoever reads the stream next: the same error will be raised again.
            pass
        yield OpenedInput(stream, compressed, had_bom, counter, compression, owned)
    finally:
        if owned is not None:
            owned.close()


@dataclass(frozen=True, slots=True)
class LineProblem:
    """A line that could not be delivered; ``fatal`` ends the file."""

    reason: str
    raw: bytes
    fatal: bool


def iter_lines(
    stream: io.BufferedReader[_CappedRaw], max_line_bytes: int
) -> Iterator[tuple[int, bytes | LineProblem]]:
    """Yield ``(line_number, line)`` with line numbers from 1, newline kept.

    A line longer than ``max_line_bytes`` (newline excluded) yields a ``LineProblem`` and is
    skipped in bounded chunks; a read error yields a fatal ``LineProblem`` and stops.
    """
    readline = stream.readline
    limit = max_line_bytes + 1
    line_number = 0
    try:
        while True:
            chunk = readline(limit)
            if not chunk:
                return
            line_number += 1
            if len(chunk) < limit or chunk[-1] == 10:  # 10 = b"\n"
                yield line_number, chunk
                continue
            head = chunk[:200]
            while chunk and chunk[-1] != 10:
                chunk = readline(READ_BUFFER_BYTES)
            yield (
                line_number,
                LineProblem(
                    f"line longer than {max_line_bytes} bytes (max_line_bytes)", head, False
                ),
            )
    except STREAM_ERRORS as exc:
        yield line_number + 1, LineProblem(describe_stream_error(exc), b"", True)


# JSON strings cannot hold a raw newline, so a string never spans lines: removing the strings
# of one line leaves only structural brackets to count.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def _depth_change(text: bytes) -> int:
    if b'"' in text:
        text = _JSON_STRING.sub(b"", text)
    return text.count(b"{") + text.count(b"[") - text.count(b"}") - text.count(b"]")


class JsonRecords:
    """NDJSON lines, with a JSON object spread over several lines joined into one record.

    The seeds' own examples send one object pretty-printed (the mediarithmics curl body), so
    an object is either one line (NDJSON, the streaming path: one cheap ``endswith`` check per
    line) or starts with an unindented line opening ``{`` that does not close it and takes the
    following lines until its brackets balance. Yields ``(first_line, bytes | LineProblem)``
    like ``iter_lines``; ``last`` is the last input line consumed (for ``lines_read``).

    A record that never closes is reported at its first line, without swallowing the rest of
    the file: it ends at the next unindented ``{`` line (a new top-level object: pretty
    printers indent nested ones), at a bad line, at the end of the input, or when it grows
    past ``max_record_bytes``; the lines that follow are read afresh.
    """

    def __init__(self, lines: Iterator[tuple[int, bytes | LineProblem]], max_record_bytes: int):
        self._lines = lines
        self._max = max_record_bytes
        self.last = 0

    def __iter__(self) -> Iterator[tuple[int, bytes | LineProblem]]:
        parts: list[bytes] = []
        start = depth = size = 0
        skipping = False  # the record outgrew the cap: its remaining lines are skipped
        for line, raw in self._lines:
            self.last = line
            if parts:
                if type(raw) is bytes and not raw.startswith(b"{"):
                    depth += _depth_change(raw)
                    if not skipping:
                        parts.append(raw)
                        size += len(raw)
                    if depth <= 0:
                        if not skipping:
                            yield start, b"".join(parts)
                        parts, skipping = [], False
                    elif not skipping and size > self._max:
                        what = f"is longer than {self._max} bytes (max_line_bytes)"
                        yield start, self._unclosed(parts, start, what)
                        skipping = True
                    continue
                if not skipping:
                    yield start, self._unclosed(parts, start, f"is not closed before line {line}")
                parts, skipping = [], False
            if type(raw) is not bytes or raw.endswith((b"}\n", b"}\r\n")):
                yield line, raw
                continue
            stripped = raw.rstrip()
            if not raw.startswith(b"{") or stripped.endswith(b"}"):
                yield line, raw
                continue
            change = _depth_change(stripped)
            if change <= 0:
                yield line, raw
                continue
            parts, start, depth, size = [raw], line, change, len(raw)
        if parts and not skipping:
            yield start, self._unclosed(parts, start, "is not closed at the end of the input")

    @staticmethod
    def _unclosed(parts: list[bytes], start: int, what: str) -> LineProblem:
        return LineProblem(
            f"not valid JSON: the object starting at line {start} {what}", parts[0][:200], False
        )
