"""Format names (the uploader's ``--format`` values) mapped to their readers."""

from __future__ import annotations

from producer_tools.readers.base import ReadContext, Reader
from producer_tools.readers.detect import (
    MEDIARITHMICS_CSV,
    MEDIARITHMICS_NDJSON,
    SEGMENTER,
    VILLAGE,
)
from producer_tools.readers.mediarithmics import MediarithmicsCsvReader, MediarithmicsNdjsonReader
from producer_tools.readers.segmenter import SegmenterReader
from producer_tools.readers.village import VillageReader

READERS: dict[str, type[Reader]] = {
    MEDIARITHMICS_NDJSON: MediarithmicsNdjsonReader,
    MEDIARITHMICS_CSV: MediarithmicsCsvReader,
    VILLAGE: VillageReader,
    SEGMENTER: SegmenterReader,
}
FORMATS: tuple[str, ...] = tuple(READERS)


def make_reader(format_name: str, ctx: ReadContext) -> Reader:
    """A new reader of ``format_name`` for one file (readers keep per-file state)."""
    try:
        reader_class = READERS[format_name]
    except KeyError:
        raise ValueError(
            f"unknown format {format_name!r}; expected one of {', '.join(FORMATS)}"
        ) from None
    return reader_class(ctx)
