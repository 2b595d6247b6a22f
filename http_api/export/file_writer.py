"""Stream one JSON object ``{key: value, ...}`` into a file that appears atomically.

The object is written entry by entry (memory flat whatever the profile count) into a
temporary file next to the target, fsynced, then renamed over the target: a reader sees
either no file or a complete one, never a torn export.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

GZIP_LEVEL = 6


@dataclass(frozen=True, slots=True)
class FileStats:
    """What was written: entries, uncompressed JSON bytes and bytes on disk."""

    entries: int
    json_bytes: int
    file_bytes: int


class JsonObjectWriter:
    """Context manager: ``add()`` entries, then ``commit()``; leaving without it aborts."""

    def __init__(self, target: Path, compress: bool, tmp_tag: str = "tmp") -> None:
        self.target = target
        self.tmp_path = target.with_name(f"{target.name}.{tmp_tag}.tmp")
        self._compress = compress
        self._raw: IO[bytes] | None = None
        self._out: IO[bytes] | None = None
        self._entries = 0
        self._json_bytes = 0
        self._committed = False

    def __enter__(self) -> JsonObjectWriter:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._raw = open(self.tmp_path, "wb")
        self._out = self._raw
        if self._compress:
            self._out = gzip.GzipFile(  # type: ignore[assignment]  # GzipFile is an IO[bytes]
                filename="", mode="wb", fileobj=self._raw, compresslevel=GZIP_LEVEL
            )
        self._write(b"{")
        return self

    def add(self, key: str, value: Any) -> None:
        """Append one ``"key": value`` entry."""
        chunk = orjson.dumps(key) + b":" + orjson.dumps(value)
        self._write(chunk if self._entries == 0 else b"," + chunk)
        self._entries += 1

    def commit(self) -> FileStats:
        """Close the object, make it durable and move it into place."""
        self._write(b"}")
        assert self._out is not None
        assert self._raw is not None
        if self._out is not self._raw:
            self._out.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        file_bytes = self.tmp_path.stat().st_size
        os.replace(self.tmp_path, self.target)
        _fsync_dir(self.target.parent)
        self._committed = True
        return FileStats(self._entries, self._json_bytes, file_bytes)

    def abort(self) -> None:
        """Drop the temporary file; the target is untouched."""
        for handle in (self._out, self._raw):
            if handle is not None and not handle.closed:
                handle.close()
        self.tmp_path.unlink(missing_ok=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._committed:
            self.abort()

    def _write(self, data: bytes) -> None:
        assert self._out is not None
        self._out.write(data)
        self._json_bytes += len(data)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
