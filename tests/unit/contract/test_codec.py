"""The wire format: round trips, the generated encoder against fastavro, decode failures."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest
from fastavro import schemaless_writer
from hypothesis import given
from hypothesis import strategies as st

from segflow.contract.codec import decode, default_codec, encode, writer_fingerprint
from segflow.contract.errors import DecodeError, DecodeReason, EncodeError
from segflow.contract.fastenc import compile_encoder, zigzag_int, zigzag_long
from segflow.contract.models import SegmentCommand
from segflow.contract.records import CommandRecord, command_record
from segflow.contract.routing import message_key
from segflow.contract.schema import schema_set
from tests.unit.contract.strategies import commands

CODEC = default_codec()


def _sample() -> CommandRecord:
    return command_record(
        command_id="0" * 32,
        execution_id="exec-1",
        source="MEDIARITHMICS",
        operation="FEED_ADD",
        version=1_700_000_000_000_001,
        user_key="account:1:ua",
        segment_ids=["s1"],
        expires_at_ms=1_700_000_360_000,
        data_bag='{"a":1}',
        origin={"file": "f.ndjson", "line": 1},
    )


@given(commands)
def test_any_valid_command_round_trips_model_avro_model(command: SegmentCommand) -> None:
    record = command.to_record()
    data = encode(record)
    assert data[:2] == b"\xc3\x01"
    decoded = decode(data)
    assert decoded == record
    assert SegmentCommand.from_record(decoded) == command


@given(commands)
def test_generated_encoder_is_byte_identical_to_fastavro(command: SegmentCommand) -> None:
    record = command.to_record()
    assert CODEC.encode(record) == CODEC.encode_reference(record)


@given(
    st.integers(-(2**63), 2**63 - 1)
    | st.sampled_from([0, 1, -1, 8191, 8192, -8192, -8193, 2**63 - 1, -(2**63), 2**31])
)
def test_zigzag_long_matches_fastavro(value: int) -> None:
    schema = {"type": "long"}
    buffer = io.BytesIO()
    schemaless_writer(buffer, schema, value)
    assert zigzag_long(value) == buffer.getvalue()
    encoder = compile_encoder(
        {"type": "record", "name": "R", "fields": [{"name": "v", "type": "long"}]}
    )
    assert encoder({"v": value}) == buffer.getvalue()


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1])
def test_longs_outside_int64_are_refused(value: int) -> None:
    with pytest.raises(OverflowError):
        zigzag_long(value)
    record = _sample()
    record["version"] = value
    with pytest.raises(EncodeError):
        encode(record)


def test_ints_outside_int32_are_refused() -> None:
    assert zigzag_int(-(2**31)) == zigzag_long(-(2**31))
    with pytest.raises(OverflowError):
        zigzag_int(2**31)


def test_missing_optional_fields_are_written_as_their_defaults() -> None:
    full = _sample()
    minimal: dict[str, Any] = {
        key: full[key] for key in ("command_id", "execution_id", "source", "operation", "version")
    }
    expected = {**minimal, **{k: v for k, v in full.items() if k not in minimal}}
    for key in expected:
        if key not in minimal:
            expected[key] = [] if key.startswith("segment_") and key != "segment" else None
    assert decode(encode(minimal)) == expected
    assert encode(minimal) == CODEC.encode_reference(minimal)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("command_id", 5),
        ("operation", "FEED_MOVE"),
        ("source", None),
        ("version", "12"),
        ("version", 1.5),
        ("segment_ids", "s1"),
        ("segment_ids", [1]),
        ("user_key", b"bytes"),
        ("origin", {"file": "f"}),
        ("data_bag", "\ud800"),
    ],
)
def test_records_that_do_not_fit_the_schema_raise_encode_error(field: str, value: Any) -> None:
    record: dict[str, Any] = dict(_sample())
    record[field] = value
    with pytest.raises(EncodeError):
        encode(record)


def test_a_missing_required_field_raises_encode_error() -> None:
    record: dict[str, Any] = dict(_sample())
    del record["version"]
    with pytest.raises(EncodeError):
        encode(record)


def test_decode_errors_name_their_reason() -> None:
    data = encode(_sample())
    cases = {
        DecodeReason.BAD_MAGIC: b"\x00\x01" + data[2:],
        DecodeReason.UNKNOWN_FINGERPRINT: data[:2] + b"\xff" * 8 + data[10:],
        DecodeReason.TRUNCATED: data[:-3],
        DecodeReason.TRAILING_BYTES: data + b"\x00",
    }
    for reason, payload in cases.items():
        with pytest.raises(DecodeError) as caught:
            decode(payload)
        assert caught.value.reason is reason, (reason, caught.value)
    with pytest.raises(DecodeError) as caught:
        decode(b"\xc3\x01\x14")
    assert caught.value.reason is DecodeReason.TRUNCATED
    with pytest.raises(DecodeError) as caught:
        decode(b"")
    assert caught.value.reason is DecodeReason.TRUNCATED
    with pytest.raises(DecodeError) as caught:
        decode(b"{")
    assert caught.value.reason is DecodeReason.BAD_MAGIC


def test_every_prefix_of_a_record_is_a_decode_error() -> None:
    data = encode(_sample())
    for end in range(len(data)):
        with pytest.raises(DecodeError):
            decode(data[:end])


@given(st.binary(max_size=300))
def test_any_bytes_after_a_valid_header_decode_or_fail_cleanly(body: bytes) -> None:
    reason = None
    try:
        decode(schema_set().current.header + body)
    except DecodeError as exc:
        reason = exc.reason
    assert reason in (
        None,
        DecodeReason.TRUNCATED,
        DecodeReason.INVALID_BODY,
        DecodeReason.TRAILING_BYTES,
    )


@given(st.binary(max_size=40))
def test_any_bytes_decode_or_fail_cleanly(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode(data)


def test_writer_fingerprint() -> None:
    assert writer_fingerprint(encode(_sample())) == schema_set().current.fingerprint
    assert writer_fingerprint(b"nope") is None


def test_message_keys() -> None:
    record = _sample()
    assert message_key(record) == b"account:1:ua"
    replace: dict[str, Any] = dict(record, operation="REPLACE_END", user_key=None)
    replace["segment_ids"] = ["seg-9"]
    assert message_key(replace) == b"seg-9"
    with pytest.raises(ValueError, match="without user_key"):
        message_key(dict(record, user_key=None))


def test_the_string_cache_stays_bounded_and_correct() -> None:
    from segflow.contract import fastenc

    record = dict(_sample())
    for n in range(3000):
        record["execution_id"] = f"exec-{n}"
        assert CODEC.encode(record) == CODEC.encode_reference(record)
    assert len(fastenc._STRINGS) <= 1024
