"""Helpers shared by the contract tests: contexts, reading a file or bytes, splitting results."""

from __future__ import annotations

import io
from pathlib import Path

from producer_tools.readers import ReadContext, ReaderLimits, make_reader
from producer_tools.readers.base import Reader, ReadItem
from segflow.contract.errors import RecordError
from segflow.contract.records import CommandRecord

FIXTURES = Path(__file__).parent / "fixtures"
SHA = "ab" * 32
CREATED_AT_US = 1_700_000_000_000_000
CREATED_AT_MS = CREATED_AT_US // 1000


def context(
    file_name: str = "input.ndjson",
    strict: bool = False,
    limits: ReaderLimits | None = None,
    created_at_us: int = CREATED_AT_US,
    sha: str = SHA,
) -> ReadContext:
    """A read context with fixed execution values (deterministic ids and versions)."""
    return ReadContext(
        execution_id="exec-test",
        content_sha256=sha,
        created_at_us=created_at_us,
        file_name=file_name,
        strict=strict,
        limits=limits or ReaderLimits(),
    )


def read_bytes(
    format_name: str,
    data: bytes,
    file_name: str = "input",
    strict: bool = False,
    limits: ReaderLimits | None = None,
) -> tuple[Reader, list[ReadItem]]:
    """Run a reader over in-memory bytes; returns the reader (warnings) and every item."""
    reader = make_reader(format_name, context(file_name, strict, limits))
    return reader, list(reader.read(io.BytesIO(data)))


def read_path(
    format_name: str, path: Path, strict: bool = False, limits: ReaderLimits | None = None
) -> tuple[Reader, list[ReadItem]]:
    """Run a reader over a file."""
    reader = make_reader(format_name, context(path.name, strict, limits))
    return reader, list(reader.read(path))


def commands(items: list[ReadItem]) -> list[CommandRecord]:
    """The commands among reader items."""
    return [item for _, item in items if not isinstance(item, RecordError)]


def errors(items: list[ReadItem]) -> list[RecordError]:
    """The errors among reader items."""
    return [item for _, item in items if isinstance(item, RecordError)]


def only_error(items: list[ReadItem]) -> RecordError:
    """The single item, which must be an error."""
    assert len(items) == 1, items
    item = items[0][1]
    assert isinstance(item, RecordError), item
    return item


def only_command(items: list[ReadItem]) -> CommandRecord:
    """The single item, which must be a command."""
    assert len(items) == 1, items
    item = items[0][1]
    assert not isinstance(item, RecordError), item
    return item
