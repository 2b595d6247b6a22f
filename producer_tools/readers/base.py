"""What every reader shares: the execution context, the limits, warnings, and the interface.

A reader turns one import file into ``(position, command)`` and ``(position, RecordError)``
items, streaming: the uploader produces each command and writes each error to the rejects
file as they come, so neither the file nor its commands are ever held in memory.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, ClassVar

from producer_tools.readers.lines import (
    InputSource,
    JsonRecords,
    LineProblem,
    OpenedInput,
    iter_lines,
    open_input,
)
from segflow.contract.enums import Source
from segflow.contract.errors import RecordError, preview
from segflow.contract.ids import CommandIds
from segflow.contract.jsontext import JSON_ERRORS, strict_loads
from segflow.contract.records import CommandRecord, blank_command

ReadItem = tuple[int, CommandRecord | RecordError]
# Validates one parsed JSON line: (value, line number, raw text for error reports).
LineBuilder = Callable[[Any, int, bytes | str], CommandRecord | RecordError]


@dataclass(frozen=True, slots=True)
class ReaderLimits:
    """Caps that keep a hostile or broken file from exhausting memory (all configurable).

    * ``max_line_bytes``: one line (NDJSON) or record (CSV, quoted newlines included); a
      longer one is an error and is skipped in bounded chunks.
    * ``max_decompressed_bytes``: the whole input after gzip; past it the file stops with a
      fatal error (gzip bombs).
    * ``max_data_bag_bytes`` / ``max_metadata_bytes``: UTF-8 size of a data bag / Village
      metadata; ``max_text_chars``: free text (descriptions, names, person fields).
    * ``max_segments_per_line``: segment references of one mediarithmics line.
    * ``max_person_events``: JSON events (values, keys, brackets) of one Segmenter person.
    * ``raw_preview_chars``: how much of a bad line a ``RecordError`` echoes back.
    """

    max_line_bytes: int = 1 << 20
    max_decompressed_bytes: int = 64 << 30
    max_data_bag_bytes: int = 64 << 10
    max_metadata_bytes: int = 64 << 10
    max_text_chars: int = 4096
    max_segments_per_line: int = 1000
    max_person_events: int = 100_000
    raw_preview_chars: int = 1000

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


@dataclass(frozen=True, slots=True)
class ReadContext:
    """The execution a file is read for: it seeds command ids and versions.

    ``content_sha256`` is the SHA-256 (hex) of the file as stored and ``created_at_us`` the
    execution's creation time: with both fixed, reading the file again yields identical
    commands. ``file_name`` is recorded in each command's origin (base name only).
    """

    execution_id: str
    content_sha256: str
    created_at_us: int
    file_name: str
    strict: bool = False
    limits: ReaderLimits = field(default_factory=ReaderLimits)


@dataclass(slots=True)
class ReaderWarning:
    """An unknown field, reported once per file and field with how often it occurred."""

    file: str
    field: str
    first_line: int
    count: int = 1

    @property
    def message(self) -> str:
        """One line for the user."""
        return (
            f"{self.file}: unknown field {self.field!r} ignored "
            f"(first at line {self.first_line}, {self.count} occurrence(s))"
        )


class Reader(abc.ABC):
    """Reads one import format. Subclasses implement ``_read_opened``.

    After (or during) ``read``: ``warnings`` lists unknown fields, ``lines_read`` counts input
    lines (Segmenter: persons) and ``bytes_read`` the decompressed bytes consumed.
    ``template`` is this execution's blank command of the format's ``source``: readers copy
    it per record and set only what the record carries.
    """

    format_name: ClassVar[str]
    source: ClassVar[Source]

    def __init__(self, ctx: ReadContext) -> None:
        self.ctx = ctx
        self.ids = CommandIds(ctx.content_sha256, ctx.created_at_us)
        self.file = PurePath(ctx.file_name).name or ctx.file_name
        self.limits = ctx.limits
        self.template = blank_command(ctx.execution_id, self.source.value)
        self.lines_read = 0
        self._opened: OpenedInput | None = None
        self._unknown: dict[str, ReaderWarning] = {}

    @property
    def warnings(self) -> list[ReaderWarning]:
        """Unknown-field warnings so far (one per field)."""
        return list(self._unknown.values())

    @property
    def bytes_read(self) -> int:
        """Decompressed bytes consumed so far."""
        return 0 if self._opened is None else self._opened.bytes_read

    @property
    def source_offset(self) -> int:
        """Bytes of the file as stored (compressed) consumed so far: progress of a path."""
        return 0 if self._opened is None else self._opened.source_offset

    def read(self, source: InputSource) -> Iterator[ReadItem]:
        """Stream the items of ``source`` (a path, or a binary stream left open for its owner).

        Never raises for bad content: every problem becomes a ``RecordError`` item. Only an
        input that cannot be opened at all raises ``OSError``.
        """
        with open_input(source, self.limits.max_decompressed_bytes) as opened:
            self._opened = opened
            yield from self._read_opened(opened, source)

    @abc.abstractmethod
    def _read_opened(self, opened: OpenedInput, source: InputSource) -> Iterator[ReadItem]:
        """Yield the items of an opened input."""

    # --- helpers for subclasses ----------------------------------------------------------

    def error(
        self,
        line: int,
        field_name: str | None,
        reason: str,
        raw: bytes | str | None = None,
        fatal: bool = False,
        notice: bool = False,
    ) -> RecordError:
        """A ``RecordError`` of this file with a bounded raw excerpt (``notice``: the record
        was produced all the same; the rejects file says what it does)."""
        if isinstance(raw, bytes):
            raw = raw.rstrip(b"\r\n")
        elif isinstance(raw, str):
            raw = raw.rstrip("\r\n")
        return RecordError(
            self.file,
            line,
            field_name,
            reason,
            preview(raw, self.limits.raw_preview_chars),
            fatal,
            notice,
        )

    def unknown_fields(
        self, names: Iterable[str], line: int, raw: bytes | str | None, prefix: str = ""
    ) -> RecordError | None:
        """Note unknown fields: one warning per field, or (strict) an error for this record."""
        ordered = sorted(names)
        if self.ctx.strict:
            return self.error(line, prefix + ordered[0], "unknown field (strict mode)", raw)
        for name in ordered:
            key = prefix + name
            seen = self._unknown.get(key)
            if seen is None:
                self._unknown[key] = ReaderWarning(self.file, key, line)
            else:
                seen.count += 1
        return None


class NdjsonReader(Reader):
    """One JSON object per line (mediarithmics NDJSON, Village): the line loop, once.

    An object spread over several lines (pretty-printed, as in the mediarithmics seed's curl
    example) is one command, reported at its first line (``lines.JsonRecords``). Blank lines are
    skipped, over-long or undecodable lines become errors, and each parsed
    value goes to the subclass's ``line_builder`` (a plain callable, fetched once per file:
    the loop runs per line on the uploader's hot path).
    """

    @abc.abstractmethod
    def line_builder(self) -> LineBuilder:
        """The validate stage for one parsed line."""

    def take_notice(self) -> RecordError | None:
        """A notice the record just built also needs in the rejects file (default: none)."""
        return None

    def read_line(self, line: int, raw: bytes) -> CommandRecord | RecordError | None:
        """One raw line -> command, error, or None (blank line).

        For callers that split lines themselves (e.g. parallel workers fed by
        ``lines.iter_lines``); ``read`` does the same inline.
        """
        try:
            parsed = strict_loads(raw)
        except JSON_ERRORS as exc:
            if not raw.strip():
                return None
            return self.error(line, None, f"not valid JSON: {str(exc)[:200]}", raw)
        return self.line_builder()(parsed, line, raw)

    def _read_opened(self, opened: OpenedInput, source: InputSource) -> Iterator[ReadItem]:
        build = self.line_builder()
        loads = strict_loads
        error = self.error
        take_notice = self.take_notice
        records = JsonRecords(
            iter_lines(opened.stream, self.limits.max_line_bytes), self.limits.max_line_bytes
        )
        for line, raw in records:
            self.lines_read = records.last
            if type(raw) is not bytes:
                assert isinstance(raw, LineProblem)
                yield line, error(line, None, raw.reason, raw.raw, raw.fatal)
                continue
            try:
                parsed = loads(raw)
            except JSON_ERRORS as exc:
                if not raw.strip():
                    continue
                yield line, error(line, None, f"not valid JSON: {str(exc)[:200]}", raw)
                continue
            yield line, build(parsed, line, raw)
            notice = take_notice()
            if notice is not None:
                yield line, notice
