"""Guess an import file's format from its name and its first bytes (``--format auto``).

Extensions alone cannot decide: ``.json``/``.ndjson`` may hold any of three formats and files
are often renamed. So the decision is made on content, with the extension as a tie-breaker:

1. The content is sniffed after gzip decompression and BOM removal (first 64 KiB).
2. A first line that parses as a JSON object is NDJSON (mediarithmics or Village, told apart
   by their field names) unless it holds ``persons`` (a one-line Segmenter document).
3. Content starting with ``{`` whose first line is not a complete object is a pretty-printed
   Segmenter document when Segmenter field names show up in the head, else a JSON object
   spread over several lines (the seed's curl body) judged by its field names like rule 2.
4. Anything else whose first line names ``operation`` and ``expiration_duration`` columns is
   mediarithmics CSV; a ``.csv`` name settles a header the sniffing could not read.

When nothing matches, ``FormatDetectionError`` says what was seen and asks for ``--format``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import PurePath

from producer_tools.readers.lines import STREAM_ERRORS, InputSource, JsonRecords, open_input
from segflow.contract.errors import ContractError
from segflow.contract.jsontext import JSON_ERRORS, strict_loads
from segflow.errors import ExitCode

SNIFF_BYTES = 64 * 1024
MEDIARITHMICS_NDJSON = "mediarithmics-ndjson"
MEDIARITHMICS_CSV = "mediarithmics-csv"
VILLAGE = "village"
SEGMENTER = "segmenter"

_MEDIARITHMICS_KEYS = frozenset(
    {
        "operation",
        "expiration_duration",
        "expiration_ts",
        "compartment_id",
        "user_account_id",
        "email_hash",
        "user_agent_id",
        "segment_ids",
        "segment_technical_name",
        "segment_technical_names",
        "data_bag",
    }
)
_VILLAGE_KEYS = frozenset(
    {"user", "user_status", "status_change_timestamp", "reference_id", "metadata"}
)
_SEGMENTER_KEYS = frozenset({"persons", "broadcastMediumId", "segmentType"})
_SEGMENTER_HINT = re.compile(rb'"(persons|broadcastMediumId|segmentType|externalId)"\s*:')


class FormatDetectionError(ContractError):
    """The format could not be decided; the user must pass ``--format``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.USAGE)


@dataclass(frozen=True, slots=True)
class Detection:
    """The detected format and the evidence, for the upload summary."""

    format: str
    reason: str


def _stem_suffix(name: str) -> str:
    path = PurePath(name.lower())
    if path.suffix in (".gz", ".zst"):
        path = path.with_suffix("")
    return path.suffix


def detect_content(name: str, head: bytes) -> Detection:
    """Decide from a file name and the first decompressed, BOM-less bytes."""
    suffix = _stem_suffix(name)
    text = head.lstrip()
    if not text:
        raise FormatDetectionError(f"{name}: empty file, cannot detect its format")
    first_line = text.split(b"\n", 1)[0]
    complete_first_line = b"\n" in text or len(head) < SNIFF_BYTES
    if text.startswith(b"{"):
        parsed = None
        if complete_first_line:
            try:
                parsed = strict_loads(first_line)
            except JSON_ERRORS:
                parsed = None
        if isinstance(parsed, dict):
            return _by_keys(name, set(parsed), "one-line JSON document", "NDJSON")
        if _SEGMENTER_HINT.search(head):
            return Detection(SEGMENTER, "multi-line JSON document with Segmenter fields")
        spread = _first_multi_line_object(text)
        if spread is not None:
            return _by_keys(name, set(spread), "JSON document", "JSON object over several lines")
        raise FormatDetectionError(
            f"{name}: starts like JSON but is neither NDJSON nor a Segmenter document; "
            "pass --format"
        )
    try:
        header_text = first_line.decode("utf-8", "strict")
    except UnicodeDecodeError:
        header_text = ""
    columns: set[str] = set()
    for delimiter in (",", ";", "\t"):
        try:
            columns |= {c.strip() for c in next(csv.reader([header_text], delimiter=delimiter))}
        except (csv.Error, StopIteration):
            continue
    if {"operation", "expiration_duration"} <= columns:
        return Detection(MEDIARITHMICS_CSV, "CSV header with mediarithmics columns")
    if suffix == ".csv":
        return Detection(MEDIARITHMICS_CSV, "'.csv' file name (the header will be checked)")
    raise FormatDetectionError(
        f"{name}: not JSON, and no CSV header naming operation and expiration_duration; "
        "pass --format"
    )


def _by_keys(name: str, keys: set[str], document: str, shape: str) -> Detection:
    """The format a first JSON object's field names point to."""
    if keys & _SEGMENTER_KEYS:
        return Detection(SEGMENTER, f"{document} with Segmenter fields")
    village = len(keys & _VILLAGE_KEYS)
    mediarithmics = len(keys & _MEDIARITHMICS_KEYS)
    if village > mediarithmics:
        return Detection(VILLAGE, f"{shape} whose first object has Village fields")
    if mediarithmics > village:
        return Detection(
            MEDIARITHMICS_NDJSON, f"{shape} whose first object has mediarithmics fields"
        )
    raise FormatDetectionError(
        f"{name}: {shape}, but its first object's fields "
        f"({', '.join(sorted(keys))[:200]}) match no known format; pass --format"
    )


def _first_multi_line_object(text: bytes) -> dict[str, object] | None:
    """The first object of a head whose first object spans lines (pretty-printed), if whole."""
    lines = ((number, line) for number, line in enumerate(text.splitlines(keepends=True), 1))
    for _, record in JsonRecords(iter(lines), SNIFF_BYTES):
        if not isinstance(record, bytes):
            return None
        try:
            parsed = strict_loads(record)
        except JSON_ERRORS:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def detect_format(source: InputSource, name: str | None = None) -> Detection:
    """Sniff ``source`` (a path, or a *seekable* stream, rewound afterwards).

    Raises ``FormatDetectionError`` when undecidable and ``OSError`` when unreadable.
    """
    label = (
        name if name is not None else str(source if isinstance(source, str | PurePath) else "input")
    )
    start = None
    if not isinstance(source, str | PurePath):
        try:
            start = source.tell() if source.seekable() else None
        except OSError:
            start = None
        if start is None:
            raise FormatDetectionError(
                f"{label}: cannot detect the format of a stream that cannot be rewound; "
                "pass --format"
            )
    try:
        with open_input(
            source, max_decompressed_bytes=SNIFF_BYTES * 4, buffer_size=SNIFF_BYTES
        ) as opened:
            try:
                head = opened.stream.read(SNIFF_BYTES)
            except STREAM_ERRORS as exc:
                raise FormatDetectionError(f"{label}: cannot read: {exc}") from None
    finally:
        if start is not None and not isinstance(source, str | PurePath):
            source.seek(start)
    return detect_content(label, head)
