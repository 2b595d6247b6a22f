"""Readers of every import format: streaming, validating, yielding segment commands.

Usage (what ``segflow upload`` does per file)::

    ctx = ReadContext(execution_id, content_sha256, created_at_us, file_name, strict=False)
    reader = make_reader(detect_format(path).format, ctx)
    for position, item in reader.read(path):
        if isinstance(item, RecordError):
            ...  # rejects file: item.to_reject(); item.fatal = the rest was not read
        else:
            ...  # produce encode(item) with key segflow.contract.routing.message_key(item)
    reader.warnings  # unknown fields, one per field
"""

from __future__ import annotations

from producer_tools.readers.base import ReadContext, Reader, ReaderLimits, ReaderWarning, ReadItem
from producer_tools.readers.detect import Detection, FormatDetectionError, detect_format
from producer_tools.readers.lines import InputSource
from producer_tools.readers.registry import FORMATS, READERS, make_reader

__all__ = [
    "FORMATS",
    "READERS",
    "Detection",
    "FormatDetectionError",
    "InputSource",
    "ReadContext",
    "ReadItem",
    "Reader",
    "ReaderLimits",
    "ReaderWarning",
    "detect_format",
    "make_reader",
]
