"""Village add/block/reset (seed 002) as NDJSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from segflow.contract.codec import decode, encode
from segflow.contract.ids import MAX_TIMESTAMP_S as MAX_S
from segflow.contract.ids import MAX_VERSION
from segflow.contract.models import validate_record
from tests.unit.contract.helpers import (
    CREATED_AT_US,
    FIXTURES,
    commands,
    errors,
    only_command,
    only_error,
    read_bytes,
    read_path,
)

VILLAGE = "village"
_DROP = object()


def _one(**fields: Any) -> Any:
    base: dict[str, Any] = {"user": "u1", "segment_id": 7, "user_status": "add"}
    base.update(fields)
    line = json.dumps({k: v for k, v in base.items() if v is not _DROP}).encode()
    return read_bytes(VILLAGE, line + b"\n")[1]


def test_seed_002_examples() -> None:
    reader, items = read_path(VILLAGE, FIXTURES / "seed002_village.ndjson")
    assert errors(items) == []
    add, block, reset = commands(items)
    assert add["operation"] == "OVERRIDE_ADD"
    assert add["user_key"] == "email:jane.doe@example.com"
    assert add["segment_ids"] == ["1234"]
    assert add["metadata"] == '{"source":"signup","gps":{"city":"Miami"}}'
    assert add["reference_id"] == "ref-1"
    assert add["description"] == "User from Miami"
    assert add["version"] == 1_700_000_000 * 1_000_000 + 1
    assert block["operation"] == "OVERRIDE_BLOCK"
    assert block["user_key"] == "user_id:user_42"
    assert block["version"] == CREATED_AT_US + 2
    assert reset["operation"] == "OVERRIDE_RESET"
    assert reset["metadata"] is None
    assert reset["reference_id"] is None
    for command in (add, block, reset):
        assert command["source"] == "VILLAGE"
        assert command["expires_at_ms"] is None
        assert command["data_bag"] is None
        validate_record(command)
        assert decode(encode(command)) == command
    assert reader.warnings == []


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"user": _DROP}, "user", "missing"),
        ({"user": "  "}, "user", "missing"),
        ({"user": ["a"]}, "user", "must be a string"),
        ({"user": "@nobody"}, "user", "before and after"),
        ({"segment_id": _DROP}, "segment_id", "missing"),
        ({"segment_id": "abc"}, "segment_id", "must be an integer"),
        ({"segment_id": 1.5}, "segment_id", "must be an integer"),
        ({"segment_id": -3}, "segment_id", "non-negative"),
        ({"segment_id": True}, "segment_id", "must be an integer"),
        ({"user_status": _DROP}, "user_status", "missing"),
        ({"user_status": "remove"}, "user_status", "must be add, block or reset"),
        ({"user_status": "ADD"}, "user_status", "must be add, block or reset"),
        ({"metadata": "text"}, "metadata", "must be an object"),
        ({"metadata": [1]}, "metadata", "must be an object"),
        ({"metadata": {"k": "x" * 70000}}, "metadata", "larger than 65536"),
        ({"reference_id": {"a": 1}}, "reference_id", "must be a string"),
        ({"description": "d" * 5000}, "description", "longer than 4096"),
        ({"status_change_timestamp": 1_700_000_000_000}, "status_change_timestamp", "milliseconds"),
        ({"status_change_timestamp": -1}, "status_change_timestamp", "between 0 and"),
        ({"status_change_timestamp": "yesterday"}, "status_change_timestamp", "integer"),
    ],
)
def test_rejection_rules(fields: dict[str, Any], field: str, reason: str) -> None:
    error = only_error(_one(**fields))
    assert error.field == field, error
    assert reason in error.reason, error


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"segment_id": "0042"}, {"segment_ids": ["42"]}),
        ({"segment_id": 7.0}, {"segment_ids": ["7"]}),
        ({"user": 12345}, {"user_key": "user_id:12345"}),
        ({"user": " Mixed@Case.IO "}, {"user_key": "email:mixed@case.io"}),
        ({"status_change_timestamp": "1700000000"}, {"version": 1_700_000_000_000_001}),
        ({"status_change_timestamp": None}, {"version": CREATED_AT_US + 1}),
        ({"metadata": None}, {"metadata": None}),
        ({"metadata": {}}, {"metadata": "{}"}),
        ({"reference_id": 99}, {"reference_id": "99"}),
        ({"user_status": "block"}, {"operation": "OVERRIDE_BLOCK"}),
    ],
)
def test_accepted_spellings(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    command = only_command(_one(**fields))
    for key, value in expected.items():
        assert command[key] == value, key  # type: ignore[literal-required]
    validate_record(command)


def test_unknown_fields_and_strict() -> None:
    reader, items = read_bytes(
        VILLAGE, b'{"user":"u","segment_id":1,"user_status":"add","points":5}\n'
    )
    assert len(commands(items)) == 1
    assert [w.field for w in reader.warnings] == ["points"]
    _, items = read_bytes(
        VILLAGE, b'{"user":"u","segment_id":1,"user_status":"add","points":5}\n', strict=True
    )
    assert only_error(items).field == "points"


def test_versions_order_lines_within_a_second() -> None:
    data = b"".join(
        json.dumps(
            {"user": "u", "segment_id": 1, "user_status": s, "status_change_timestamp": 1}
        ).encode()
        + b"\n"
        for s in ("add", "block", "reset")
    )
    versions = [c["version"] for c in commands(read_bytes(VILLAGE, data)[1])]
    assert versions == [1_000_001, 1_000_002, 1_000_003]


def test_pretty_printed_call_is_one_command() -> None:
    call = {"user": "Ann@Example.com", "segment_id": 7, "user_status": "block", "metadata": {}}
    data = json.dumps(call, indent=4).encode() + b"\n" + json.dumps(call).encode() + b"\n"
    _, items = read_bytes(VILLAGE, data)
    assert [pos for pos, _ in items] == [1, 7]
    assert errors(items) == []
    assert len(commands(items)) == 2


def test_a_version_beyond_year_9999_is_rejected_with_its_line() -> None:
    """Line 1 000 000 at the last second of year 9999 would be a version no time exists for:
    the reader rejects it (file, line, field), while line 999 999 is the maximum version."""
    last = json.dumps(
        {"user": "u", "segment_id": 1, "user_status": "add", "status_change_timestamp": MAX_S}
    ).encode()
    data = b"\n" * 999_998 + last + b"\n" + last + b"\n"
    items = read_bytes(VILLAGE, data)[1]
    (command,) = commands(items)
    assert command["version"] == MAX_VERSION
    validate_record(command)
    (error,) = errors(items)
    assert (error.line, error.field) == (1_000_000, "status_change_timestamp"), error
    assert "year 9999" in error.reason
