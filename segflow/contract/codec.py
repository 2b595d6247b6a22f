"""The wire format: Avro single-object encoding of segment commands.

A record value is ``0xC3 0x01``, the 8-byte little-endian CRC-64-AVRO fingerprint of the
writer schema's Parsing Canonical Form, then the Avro binary body. The fingerprint lets a
consumer decode records written by any schema version kept in ``schemas/``, or put in the
consumer's writer-schema directory (resolved to the current reader schema), and refuse
anything else with a precise reason, without a schema registry service.

Encoding always uses the current schema, through the generated encoder of
``segflow.contract.fastenc`` (byte-identical to fastavro's writer, 4-5x faster). Decoding of
records written with the current schema goes through the generated decoder of
``segflow.contract.fastdec``; whatever it cannot vouch for (bad bytes, older writer schemas)
is decoded by fastavro, which stays the judge of what is decodable and why not.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, cast

from fastavro import schemaless_reader, schemaless_writer

from segflow.contract.errors import DecodeError, DecodeReason, EncodeError
from segflow.contract.fastdec import NotFastDecodable, compile_decoder
from segflow.contract.fastenc import UnsupportedSchemaError, compile_encoder
from segflow.contract.records import CommandRecord
from segflow.contract.schema import (
    HEADER_LEN,
    SINGLE_OBJECT_MAGIC,
    SchemaSet,
    fingerprint_text,
    schema_set,
    with_writer_schemas,
)

# Fields with a handful of distinct values per process: their encoding is cached.
CACHED_STRINGS = ("execution_id", "origin.file")
# Fields null in nearly every feed command: tested together, written with one append.
LIKELY_NULL = (
    "data_bag",
    "metadata",
    "reference_id",
    "description",
    "segment",
    "person",
    "member_count",
)

_ENCODE_ERRORS = (
    AttributeError,
    KeyError,
    TypeError,
    ValueError,
    OverflowError,
    UnicodeEncodeError,
)


class Codec:
    """Encoder and decoder bound to one ``SchemaSet`` (parsed once, reused per record)."""

    def __init__(self, schemas: SchemaSet) -> None:
        self.schemas = schemas
        current = schemas.current
        self.header = current.header
        self._encode: Callable[[Mapping[str, Any]], bytes]
        try:
            self._encode = compile_encoder(current.raw, self.header, CACHED_STRINGS, LIKELY_NULL)
        except UnsupportedSchemaError:
            self._encode = self.encode_reference
        self._fast_decode: Callable[[bytes, int], Any] | None
        try:
            self._fast_decode = compile_decoder(current.raw)
        except UnsupportedSchemaError:
            self._fast_decode = None

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Single-object encoding of ``record`` with the current schema.

        Raises ``EncodeError`` when the record does not fit the schema (missing required
        field, wrong type, unknown enum symbol, number out of range, unencodable text).
        """
        try:
            return self._encode(record)
        except _ENCODE_ERRORS as exc:
            raise EncodeError(
                f"record does not fit the schema: {type(exc).__name__}: {exc}"
            ) from exc

    def encode_reference(self, record: Mapping[str, Any]) -> bytes:
        """The same encoding through fastavro (slow; the reference the fast path is tested on)."""
        out = io.BytesIO()
        out.write(self.header)
        try:
            schemaless_writer(
                out, self.schemas.current.parsed, dict(record), strict_allow_default=True
            )
        except _ENCODE_ERRORS as exc:
            raise EncodeError(
                f"record does not fit the schema: {type(exc).__name__}: {exc}"
            ) from exc
        return out.getvalue()

    def decode(self, data: bytes | bytearray | memoryview) -> CommandRecord:
        """Decode one record value into the current schema's dict form.

        Raises ``DecodeError`` whose ``reason`` is ``bad_magic``, ``unknown_fingerprint``,
        ``truncated``, ``invalid_body`` or ``trailing_bytes``.
        """
        view = bytes(data)
        fast = self._fast_decode
        if fast is not None and view[:HEADER_LEN] == self.header:
            try:
                return cast(CommandRecord, fast(view, HEADER_LEN))
            except NotFastDecodable:
                pass  # fastavro decides, and names the reason
        return self.decode_reference(view)

    def decode_reference(self, data: bytes | bytearray | memoryview) -> CommandRecord:
        """The same decoding through fastavro alone (the reference the fast path is tested on,
        and the judge of every record the fast path does not vouch for)."""
        view = bytes(data)
        if view[:2] != SINGLE_OBJECT_MAGIC[: len(view[:2])]:
            raise DecodeError(
                DecodeReason.BAD_MAGIC,
                f"expected single-object marker c301, got {view[:2].hex() or 'nothing'}",
            )
        if len(view) < HEADER_LEN:
            raise DecodeError(
                DecodeReason.TRUNCATED, f"{len(view)} bytes, the header alone needs {HEADER_LEN}"
            )
        fingerprint = view[2:HEADER_LEN]
        writer = self.schemas.by_fingerprint.get(fingerprint)
        if writer is None:
            raise DecodeError(
                DecodeReason.UNKNOWN_FINGERPRINT,
                f"writer schema fingerprint {fingerprint_text(fingerprint)} is not one of the "
                f"{len(self.schemas.by_fingerprint)} known versions (schemas/ and "
                "consumer.writer_schema_dir)",
            )
        current = self.schemas.current
        body = io.BytesIO(view)
        body.seek(HEADER_LEN)
        reader_schema = None if writer is current else current.parsed
        try:
            record = schemaless_reader(body, writer.parsed, reader_schema)
        except (EOFError, StopIteration) as exc:
            raise DecodeError(DecodeReason.TRUNCATED, f"body ends early: {exc!r}") from None
        except Exception as exc:  # fastavro raises many types on garbage; all mean the same
            raise DecodeError(
                DecodeReason.INVALID_BODY, f"{type(exc).__name__}: {exc}"[:300]
            ) from None
        if body.tell() != len(view):
            raise DecodeError(
                DecodeReason.TRAILING_BYTES,
                f"{len(view) - body.tell()} bytes after the record body",
            )
        if not isinstance(record, dict):
            raise DecodeError(DecodeReason.INVALID_BODY, "body is not a record")
        return cast(CommandRecord, record)


@cache
def default_codec() -> Codec:
    """The codec over the schemas shipped with segflow (built once per process)."""
    return Codec(schema_set())


def codec_with_writer_schemas(directory: Path | None) -> Codec:
    """The shipped schemas plus the writer schemas of ``directory`` (``with_writer_schemas``).

    The current schema's generated fast path is the same either way; the extra writer
    schemas are only ever decoded by fastavro, resolved to the current reader schema.
    """
    if directory is None:
        return default_codec()
    return Codec(with_writer_schemas(schema_set(), directory))


def encode(record: Mapping[str, Any]) -> bytes:
    """Encode one command dict (``CommandRecord``) for the topic. See ``Codec.encode``."""
    return default_codec().encode(record)


def decode(data: bytes | bytearray | memoryview) -> CommandRecord:
    """Decode one record value from the topic. See ``Codec.decode``."""
    return default_codec().decode(data)


def writer_fingerprint(data: bytes | bytearray | memoryview) -> int | None:
    """The writer-schema fingerprint named by a record value, or None when it has no header."""
    view = bytes(data[:HEADER_LEN])
    if len(view) < HEADER_LEN or view[:2] != SINGLE_OBJECT_MAGIC:
        return None
    return int.from_bytes(view[2:], "little")
