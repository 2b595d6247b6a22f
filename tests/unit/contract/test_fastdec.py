"""The generated decoder (fastdec) against fastavro: it returns a record only when fastavro
returns the same one, and the codec's outcome for any bytes is exactly fastavro's."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import given

from segflow.contract.codec import default_codec
from segflow.contract.errors import DecodeError
from segflow.contract.fastdec import NotFastDecodable, compile_decoder
from segflow.contract.fastenc import UnsupportedSchemaError
from segflow.contract.models import SegmentCommand
from segflow.contract.schema import HEADER_LEN
from tests.unit.contract.strategies import commands
from tests.unit.contract.wide_records import BATCH, BOUNDARY, damaged, seeds, wide_record

CODEC = default_codec()
_COMPILED = CODEC._fast_decode  # the unit under test
assert _COMPILED is not None, "the current schema must compile to a fast decoder"
FAST: Callable[[bytes, int], Any] = _COMPILED


def _outcome(decode: object, data: bytes) -> object:
    try:
        return decode(data)  # type: ignore[operator]
    except DecodeError as exc:
        return ("error", exc.reason, str(exc))


@given(commands)
def test_valid_commands_take_the_fast_path_and_equal_fastavro(command: SegmentCommand) -> None:
    data = CODEC.encode(command.to_record())
    assert FAST(data, HEADER_LEN) == CODEC.decode_reference(data) == command.to_record()


@BOUNDARY
@given(seeds)
def test_wide_records_take_the_fast_path_and_equal_fastavro(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(BATCH // 10):
        record = wide_record(rng)
        data = CODEC.encode(record)
        assert FAST(data, HEADER_LEN) == record
        assert CODEC.decode_reference(data) == record


@BOUNDARY
@given(seeds)
def test_damaged_bytes_decode_exactly_as_fastavro_decides(seed: int) -> None:
    rng = random.Random(seed)
    record = wide_record(rng)
    data = CODEC.encode(record) if rng.random() < 0.9 else CODEC.header + rng.randbytes(40)
    for _ in range(BATCH // 10):
        bad = damaged(rng, data)
        reference = _outcome(CODEC.decode_reference, bad)
        assert _outcome(CODEC.decode, bad) == reference
        try:
            fast = FAST(bad, HEADER_LEN)
        except NotFastDecodable:
            continue
        assert bad[:HEADER_LEN] != CODEC.header or fast == reference


@pytest.mark.parametrize(
    "field_type",
    [
        {"type": "map", "values": "long"},
        {"type": "array", "items": "null"},
        ["int", "string"],
    ],
)
def test_unsupported_schemas_are_refused_at_compile_time(field_type: object) -> None:
    with pytest.raises(UnsupportedSchemaError):
        compile_decoder(
            {"type": "record", "name": "R", "fields": [{"name": "f", "type": field_type}]}
        )


def test_the_decoder_handles_every_primitive() -> None:
    schema = {
        "type": "record",
        "name": "P",
        "fields": [
            {"name": name, "type": ["null", name]}
            for name in ("boolean", "int", "long", "float", "double", "bytes", "string")
        ],
    }

    values = {"boolean": True, "int": -(2**31), "long": 2**63 - 1, "float": 1.5,
              "double": -2.25, "bytes": b"\x00\xff", "string": "é😀"}  # fmt: skip
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(schema), values)
    assert compile_decoder(schema)(out.getvalue(), 0) == values
    with pytest.raises(NotFastDecodable):
        compile_decoder(schema)(out.getvalue() + b"\x00", 0)
