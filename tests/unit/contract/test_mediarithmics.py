"""mediarithmics USER_SEGMENT imports (seeds 000/001), NDJSON and CSV: every field, every rule."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from producer_tools.readers import ReaderLimits
from segflow.contract.codec import decode, encode
from segflow.contract.errors import RecordError
from segflow.contract.models import validate_record
from tests.unit.contract.helpers import (
    CREATED_AT_MS,
    CREATED_AT_US,
    FIXTURES,
    commands,
    errors,
    only_command,
    only_error,
    read_bytes,
    read_path,
)

NDJSON = "mediarithmics-ndjson"
CSV = "mediarithmics-csv"


def _line(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "operation": "UPDATE",
        "expiration_duration": 0,
        "email_hash": "h1",
        "segment_id": "s1",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not _DROP}).encode() + b"\n"


_DROP = object()


def _one(**fields: Any) -> Any:
    _, items = read_bytes(NDJSON, _line(**fields))
    return items


def test_seed_000_example_line() -> None:
    reader, items = read_path(NDJSON, FIXTURES / "seed000_mediarithmics.ndjson")
    command = only_command(items)
    assert command["operation"] == "FEED_ADD"
    assert command["user_key"] == "account:<COMPARTMENT_ID>:<USER_ACCOUNT_ID>"
    assert command["segment_ids"] == ["<SEGMENT_ID>"]
    assert command["expires_at_ms"] is None
    assert reader.warnings == []


def _expected_seed001() -> list[dict[str, Any]]:
    return [
        {
            "operation": "FEED_ADD",
            "user_key": "account:1000:ua-1",
            "segment_ids": ["101"],
            "segment_technical_names": [],
            "expires_at_ms": CREATED_AT_MS + 60 * 60_000,
            "data_bag": None,
        },
        {
            "operation": "FEED_ADD",
            "user_key": "email_hash:5f4dcc3b5aa765d61d8327deb882cf99",
            "segment_ids": ["segment_id_1", "segment_id_2"],
            "segment_technical_names": [],
            "expires_at_ms": 1893456000000,
            "data_bag": '{"score": 3}',
        },
        {
            "operation": "FEED_REMOVE",
            "user_key": "user_agent:vec:123456",
            "segment_ids": [],
            "segment_technical_names": ["technical_name_1"],
            "expires_at_ms": None,
            "data_bag": None,
        },
        {
            "operation": "FEED_ADD",
            "user_key": "account:1000:ua-2",
            "segment_ids": [],
            "segment_technical_names": ["technical_name_1", "technical_name_2"],
            "expires_at_ms": CREATED_AT_MS + 1440 * 60_000,
            "data_bag": None,
        },
        {
            "operation": "FEED_REMOVE",
            "user_key": "account:1000:ua-1",
            "segment_ids": ["101", "102"],
            "segment_technical_names": [],
            "expires_at_ms": None,
            "data_bag": None,
        },
    ]


@pytest.mark.parametrize(
    ("format_name", "fixture", "first_line"),
    [(NDJSON, "seed001_mediarithmics.ndjson", 1), (CSV, "seed001_mediarithmics.csv", 2)],
)
def test_seed_001_every_field_in_both_formats(
    format_name: str, fixture: str, first_line: int
) -> None:
    reader, items = read_path(format_name, FIXTURES / fixture)
    assert errors(items) == []
    found = commands(items)
    assert len(found) == 5
    for offset, (command, expected) in enumerate(zip(found, _expected_seed001(), strict=True)):
        line = first_line + offset
        assert {k: command[k] for k in expected} == expected  # type: ignore[literal-required]
        assert command["source"] == "MEDIARITHMICS"
        assert command["version"] == CREATED_AT_US + line
        assert command["origin"] == {"file": fixture, "line": line}
        assert validate_record(command)
        assert decode(encode(command)) == command
    assert [pos for pos, _ in items] == list(range(first_line, first_line + 5))
    assert reader.warnings == []


def test_reading_twice_gives_identical_commands() -> None:
    path = FIXTURES / "seed001_mediarithmics.ndjson"
    first = commands(read_path(NDJSON, path)[1])
    second = commands(read_path(NDJSON, path)[1])
    assert first == second
    assert len({c["command_id"] for c in first}) == len(first)


def test_gzip_variant_reads_the_same(tmp_path: Path) -> None:
    plain = FIXTURES / "seed001_mediarithmics.csv"
    packed = tmp_path / "seed001_mediarithmics.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    expected = commands(read_path(CSV, plain)[1])
    got = commands(read_path(CSV, packed)[1])
    assert [c["user_key"] for c in got] == [c["user_key"] for c in expected]
    assert got[0]["origin"] == {"file": "seed001_mediarithmics.csv.gz", "line": 2}


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"operation": _DROP}, "operation", "missing"),
        ({"operation": "UPSERT"}, "operation", "must be UPDATE or DELETE"),
        ({"operation": "update"}, "operation", "must be UPDATE or DELETE"),
        ({"operation": " "}, "operation", "must be UPDATE or DELETE"),
        ({"operation": 1}, "operation", "must be UPDATE or DELETE"),
        ({"expiration_duration": _DROP}, "expiration_duration", "missing"),
        ({"expiration_duration": -5}, "expiration_duration", "must be >= 0"),
        ({"expiration_duration": 1.5}, "expiration_duration", "must be an integer"),
        ({"expiration_duration": "ten"}, "expiration_duration", "must be an integer"),
        ({"expiration_duration": True}, "expiration_duration", "must be an integer"),
        ({"expiration_duration": 10**20}, "expiration_duration", "after year 9999"),
        ({"expiration_ts": -1}, "expiration_ts", "must be >= 0"),
        ({"expiration_ts": 10**16}, "expiration_ts", "after year 9999"),
        ({"expiration_ts": 1893456000}, "expiration_ts", "seconds since the epoch"),
        ({"expiration_ts": 5}, "expiration_ts", "send 5000"),
        ({"expiration_ts": 99_999_999_999}, "expiration_ts", "milliseconds since the epoch"),
        ({"expiration_ts": "1893456000.5"}, "expiration_ts", "below 1e11"),
        ({"expiration_ts": "soon"}, "expiration_ts", "must be a number"),
        ({"expiration_ts": [1]}, "expiration_ts", "must be a number"),
        ({"email_hash": _DROP}, "user_identifier", "none given"),
        ({"user_agent_id": "ua"}, "user_identifier", "(2 given)"),
        (
            {"email_hash": _DROP, "user_account_id": "a"},
            "compartment_id",
            "user_account_id needs compartment_id",
        ),
        (
            {"email_hash": _DROP, "compartment_id": "1"},
            "user_account_id",
            "compartment_id needs user_account_id",
        ),
        (
            {"email_hash": _DROP, "compartment_id": "1:2", "user_account_id": "a"},
            "compartment_id",
            "must not contain ':'",
        ),
        ({"email_hash": {"x": 1}}, "email_hash", "must be a string"),
        ({"email_hash": "a\u0001b"}, "email_hash", "control characters"),
        ({"email_hash": "h" * 513}, "email_hash", "longer than 512"),
        ({"segment_id": _DROP}, "segment_id", "at least one of"),
        ({"segment_id": ""}, "segment_id", "at least one of"),
        ({"segment_ids": "s2"}, "segment_ids", "must be an array"),
        ({"segment_ids": ["ok", ""]}, "segment_ids[1]", "empty segment reference"),
        ({"segment_ids": [None]}, "segment_ids[0]", "empty segment reference"),
        ({"segment_ids": [["x"]]}, "segment_ids[0]", "must be a string"),
        ({"segment_technical_names": [1.5]}, "segment_technical_names[0]", "must be a string"),
        ({"segment_id": "s" * 257}, "segment_id", "longer than 256"),
        ({"segment_ids": [str(n) for n in range(1001)]}, "segment_ids", "more than 1000"),
        ({"data_bag": {"a": 1}}, "data_bag", "must be a string holding escaped JSON"),
        ({"data_bag": "{oops"}, "data_bag", "not valid JSON"),
        ({"data_bag": "NaN"}, "data_bag", "not valid JSON"),
        ({"data_bag": "x" * 70000}, "data_bag", "larger than 65536 bytes"),
    ],
)
def test_rejection_rules(fields: dict[str, Any], field: str, reason: str) -> None:
    error = only_error(_one(**fields))
    assert error.field == field, error
    assert reason in error.reason, error
    assert error.line == 1
    assert error.file == "input"
    assert not error.fatal
    assert error.raw is not None
    assert error.raw.startswith("{")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"expiration_duration": 30}, {"expires_at_ms": CREATED_AT_MS + 30 * 60_000}),
        ({"operation": " DELETE "}, {"operation": "FEED_REMOVE"}),
        ({"expiration_duration": "30"}, {"expires_at_ms": CREATED_AT_MS + 30 * 60_000}),
        ({"expiration_duration": 30.0}, {"expires_at_ms": CREATED_AT_MS + 30 * 60_000}),
        (
            {"expiration_duration": 30, "expiration_ts": 1893456000000},
            {"expires_at_ms": 1893456000000},
        ),
        (
            {"expiration_duration": 30, "expiration_ts": 0},
            {"expires_at_ms": CREATED_AT_MS + 1800000},
        ),
        ({"expiration_ts": 1893456000000.9}, {"expires_at_ms": 1893456000000}),
        ({"expiration_ts": "1893456000000"}, {"expires_at_ms": 1893456000000}),
        ({"expiration_ts": None}, {"expires_at_ms": None}),
        ({"operation": "DELETE", "expiration_duration": 30}, {"expires_at_ms": None}),
        ({"operation": "DELETE", "data_bag": "{}"}, {"data_bag": None}),
        ({"data_bag": ""}, {"data_bag": None}),
        ({"data_bag": "[1, 2]"}, {"data_bag": "[1, 2]"}),
        ({"email_hash": "  h2 "}, {"user_key": "email_hash:h2"}),
        (
            {"email_hash": None, "compartment_id": 7, "user_account_id": 8},
            {"user_key": "account:7:8"},
        ),
        ({"email_hash": "", "user_agent_id": "vec:1"}, {"user_key": "user_agent:vec:1"}),
        ({"segment_id": 12}, {"segment_ids": ["12"]}),
        (
            {"segment_id": "a", "segment_ids": ["b", "a", "b"]},
            {"segment_ids": ["a", "b"]},
        ),
        (
            {"segment_technical_name": "t", "segment_technical_names": ["t", "u"]},
            {"segment_ids": ["s1"], "segment_technical_names": ["t", "u"]},
        ),
    ],
)
def test_accepted_spellings(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    command = only_command(_one(**fields))
    for key, value in expected.items():
        assert command[key] == value, key  # type: ignore[literal-required]
    validate_record(command)


def test_expiration_ts_from_1e11_is_milliseconds() -> None:
    # The smallest value that can only be milliseconds (1973-03-03) is accepted as such.
    command = only_command(_one(operation="DELETE", expiration_ts=100_000_000_000))
    assert command["operation"] == "FEED_REMOVE"


def test_past_expiry_is_produced_with_a_removal_notice() -> None:
    past = CREATED_AT_MS - 60_000
    _, items = read_bytes(NDJSON, _line(expiration_ts=past) + _line(email_hash="h2"))
    assert [pos for pos, _ in items] == [1, 1, 2]
    command, notice = items[0][1], items[1][1]
    assert not isinstance(command, RecordError)
    assert command["expires_at_ms"] == past
    assert isinstance(notice, RecordError)
    assert notice.notice
    assert not notice.fatal
    assert notice.field == "expiration_ts"
    assert "applied as a removal" in notice.reason
    assert notice.to_reject()["notice"] is True
    # The expiry equal to the creation time has passed too; a DELETE carries no expiry.
    _, items = read_bytes(NDJSON, _line(expiration_ts=CREATED_AT_MS))
    assert len(errors(items)) == 1
    _, items = read_bytes(NDJSON, _line(operation="DELETE", expiration_ts=past))
    assert errors(items) == []


def test_past_expiry_in_csv_gets_the_same_notice() -> None:
    past = CREATED_AT_MS - 60_000
    data = b"operation,email_hash,segment_id,expiration_duration,expiration_ts\n"
    data += b"UPDATE,h1,s1,0,%d\n" % past
    _, items = read_bytes(CSV, data)
    assert [pos for pos, _ in items] == [2, 2]
    assert len(commands(items)) == 1
    assert errors(items)[0].notice


def test_past_expiry_is_rejected_under_strict() -> None:
    _, items = read_bytes(NDJSON, _line(expiration_ts=CREATED_AT_MS - 1), strict=True)
    error = only_error(items)
    assert error.field == "expiration_ts"
    assert "--strict" in error.reason
    assert not error.notice


def test_unknown_fields_warn_once_per_field_and_are_ignored() -> None:
    data = _line(colour="red") + _line(colour="blue", size=3) + _line()
    reader, items = read_bytes(NDJSON, data, "u.ndjson")
    assert len(commands(items)) == 3
    warnings = {w.field: w for w in reader.warnings}
    assert set(warnings) == {"colour", "size"}
    assert warnings["colour"].count == 2
    assert warnings["colour"].first_line == 1
    assert warnings["size"].first_line == 2
    assert "unknown field 'colour'" in warnings["colour"].message


def test_strict_mode_makes_unknown_fields_errors() -> None:
    reader, items = read_bytes(NDJSON, _line(colour="red") + _line(), strict=True)
    error = errors(items)[0]
    assert error.field == "colour"
    assert "strict" in error.reason
    assert len(commands(items)) == 1
    assert reader.warnings == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json\n", "not valid JSON"),
        (b"[1, 2]\n", "line is a JSON array"),
        (b'"text"\n', "line is a JSON string"),
        (b'{"a": NaN}\n', "not valid JSON"),
        (b'{"a": "\xff"}\n', "not valid JSON"),
        (b'{"a": "\\ud800"}\n', "not valid JSON"),
        (b"[" * 5000 + b"\n", "not valid JSON"),
        (b'{"operation": "UPDATE"} {"x": 1}\n', "not valid JSON"),
    ],
)
def test_unparsable_lines_are_errors(data: bytes, reason: str) -> None:
    error = only_error(read_bytes(NDJSON, data)[1])
    assert reason in error.reason
    assert error.field is None


def test_blank_lines_crlf_and_bom() -> None:
    data = b"\xef\xbb\xbf" + _line().rstrip(b"\n") + b"\r\n\r\n   \n\t\n" + _line(email_hash="h2")
    _, items = read_bytes(NDJSON, data)
    assert [pos for pos, _ in items] == [1, 5]
    assert errors(items) == []


# The seed's own curl body (placeholders filled in), byte for byte: one object over 7 lines.
SEED_CURL_BODY = (
    b'{ \n        "operation": "UPDATE",\n        "expiration_duration": 60,\n'
    b'        "compartment_id": "1", \n        "user_account_id": "u-1",\n'
    b'        "segment_id": "42"\n      }'
)


def test_seed_curl_body_is_one_command() -> None:
    reader, items = read_bytes(NDJSON, SEED_CURL_BODY)
    command = only_command(items)
    assert items[0][0] == 1
    assert command["user_key"] == "account:1:u-1"
    assert command["segment_ids"] == ["42"]
    assert command["expires_at_ms"] == CREATED_AT_MS + 60 * 60_000
    assert reader.lines_read == 7


def test_pretty_printed_objects_between_ndjson_lines() -> None:
    pretty = json.dumps(json.loads(_line(email_hash="p1")), indent=2).encode() + b"\n"
    data = _line() + pretty + b"\r\n" + pretty.replace(b"\n", b"\r\n") + _line(email_hash="h3")
    _, items = read_bytes(NDJSON, data)
    assert errors(items) == []
    lines = [pos for pos, _ in items]
    assert lines == [1, 2, 2 + pretty.count(b"\n") + 1, 2 + 2 * pretty.count(b"\n") + 1]
    keys = [c["user_key"] for c in commands(items)]
    assert keys == ["email_hash:h1", "email_hash:p1", "email_hash:p1", "email_hash:h3"]


@pytest.mark.parametrize(
    ("data", "reason", "then"),
    [
        # Cut off, then NDJSON: the next unindented "{" starts afresh, nothing else is lost.
        (b'{"operation": "UPDATE",\n  "segment_id": "1"\n', "not closed before line 3", 1),
        (b'{\n  "operation": "UPDATE"\n', "not closed at the end of the input", 0),
        (b'{"a": "{[ brackets in a string",\n"b": 1}\n', "", 0),
    ],
)
def test_unclosed_multi_line_object_is_one_error(data: bytes, reason: str, then: int) -> None:
    tail = _line(email_hash="ok") if then else b""
    _, items = read_bytes(NDJSON, data + tail)
    assert len(commands(items)) == then
    error = errors(items)[0]
    assert error.line == 1
    assert reason in error.reason
    assert len(errors(items)) == 1


def test_multi_line_object_is_capped_by_max_line_bytes() -> None:
    data = b"{\n" + b'  "x": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",\n' * 200 + b"}\n"
    _, items = read_bytes(NDJSON, data + _line(), limits=ReaderLimits(max_line_bytes=1000))
    assert len(errors(items)) == 1
    assert "longer than 1000 bytes" in errors(items)[0].reason
    assert len(commands(items)) == 1


# --- CSV --------------------------------------------------------------------------------

HEADER = b"operation,email_hash,segment_id,segment_ids,expiration_duration,data_bag\r\n"


def _csv(*rows: bytes, header: bytes = HEADER, strict: bool = False) -> Any:
    return read_bytes(CSV, header + b"".join(rows), "in.csv", strict=strict)


def test_csv_quoted_fields_embedded_newlines_and_list_cells() -> None:
    _reader, items = _csv(
        b'UPDATE,"h,1",s1,"[""a"", ""b""]",5,"{""note"": ""two\r\nlines""}"\r\n'.replace(
            b"\r\nlines", b"\\nlines"
        ),
        b'DELETE,h2,,"[""c""]",0,\r\n',
    )
    first, second = commands(items)
    assert first["user_key"] == "email_hash:h,1"
    assert first["segment_ids"] == ["s1", "a", "b"]
    assert first["data_bag"] == '{"note": "two\\nlines"}'
    assert second["segment_ids"] == ["c"]
    assert [pos for pos, _ in items] == [2, 3]


def test_csv_record_spanning_lines_is_numbered_by_its_first_line() -> None:
    _, items = _csv(
        b'UPDATE,h1,s1,,0,"{""a"":\n 1}"\n',
        b"UPDATE,h3,s1,,0,\n",
        b'UPDATE,"h\n4",s1,,0,\n',
    )
    first, _second = commands(items)
    assert first["data_bag"] == '{"a":\n 1}'
    assert [pos for pos, _ in items] == [2, 4, 5]
    error = errors(items)[0]
    assert error.line == 5
    assert error.field == "email_hash"
    assert "control" in error.reason
    assert error.raw == 'UPDATE,"h\n4",s1,,0,'


def test_csv_row_rules() -> None:
    _, items = _csv(
        b"UPDATE,h1,s1,,0\r\n",  # 5 cells for 6 columns
        b'UPDATE,h1,s1,"a,b",0,\r\n',  # list cell not JSON
        b'UPDATE,h1,s1,"[""a""",0,\r\n',  # broken JSON array
        b"UPDATE,h1,s1,,0,,extra\r\n",
        b",,,,,\r\n",  # blank row
        b"\r\n",
        b"UPSERT,h1,s1,,0,\r\n",
    )
    found = errors(items)
    assert [e.line for e in found] == [2, 3, 4, 5, 8]
    assert "row has 5 cells, the header has 6" in found[0].reason
    assert found[1].field == "segment_ids"
    assert "JSON array" in found[1].reason
    assert found[2].field == "segment_ids"
    assert "not a valid JSON array" in found[2].reason
    assert "row has 7 cells" in found[3].reason
    assert found[4].field == "operation"


@pytest.mark.parametrize(
    ("header", "field", "reason"),
    [
        (b"email_hash,segment_id,expiration_duration\r\n", "operation", "header row"),
        (b"UPDATE,h1,s1,0\r\n", "operation", "missing column(s): operation, expiration_duration"),
        (
            b"operation,operation,expiration_duration,email_hash,segment_id\r\n",
            "operation",
            "more than once",
        ),
    ],
)
def test_csv_header_rules(header: bytes, field: str, reason: str) -> None:
    _, items = _csv(b"UPDATE,h1,s1,,0,\r\n", header=header)
    error = errors(items)[0]
    assert error.fatal
    assert error.line == 1
    assert error.field == field
    assert reason in error.reason
    assert commands(items) == []


def test_csv_empty_file_needs_a_header() -> None:
    for data in (b"", b"\r\n\r\n"):
        error = only_error(read_bytes(CSV, data)[1])
        assert error.fatal
        assert "header row is required" in error.reason


def test_csv_unknown_column_warns_or_fails_in_strict_mode() -> None:
    header = b"operation,email_hash,segment_id,expiration_duration,colour\r\n"
    reader, items = _csv(b"UPDATE,h1,s1,0,red\r\n", header=header)
    assert len(commands(items)) == 1
    assert [w.field for w in reader.warnings] == ["colour"]
    _, items = _csv(b"UPDATE,h1,s1,0,red\r\n", header=header, strict=True)
    error = only_error(items)
    assert error.fatal
    assert error.field == "colour"


def test_csv_semicolon_and_tab_delimiters_bom_and_column_order() -> None:
    for delimiter in (b";", b"\t"):
        header = delimiter.join(
            [b"segment_id", b"expiration_duration", b"operation", b"email_hash"]
        )
        row = delimiter.join([b"s9", b"0", b"DELETE", b"h9"])
        _, items = read_bytes(CSV, b"\xef\xbb\xbf" + header + b"\n" + row + b"\n")
        command = only_command(items)
        assert command["operation"] == "FEED_REMOVE"
        assert command["segment_ids"] == ["s9"]


def test_csv_bad_utf8_and_nul_are_line_errors() -> None:
    _, items = _csv(
        b"UPDATE,\xff\xfe,s1,,0,\r\n", b"UPDATE,h\x00,s1,,0,\r\n", b"UPDATE,h,s1,,0,\r\n"
    )
    found = errors(items)
    assert "UTF-8" in found[0].reason
    assert len(found) == 2
    assert len(commands(items)) == 1


def test_csv_unterminated_quote_is_bounded() -> None:
    from producer_tools.readers import ReaderLimits

    body = HEADER + b'UPDATE,"never closed,s1,,0,\r\n' + b"UPDATE,h,s1,,0,\r\n" * 50
    _, items = read_bytes(CSV, body, limits=ReaderLimits(max_line_bytes=200))
    assert errors(items)
    assert any("longer than 200 bytes" in e.reason for e in errors(items))


def test_ndjson_and_csv_of_the_same_content_agree() -> None:
    ndjson = commands(read_path(NDJSON, FIXTURES / "seed001_mediarithmics.ndjson")[1])
    csv_ = commands(read_path(CSV, FIXTURES / "seed001_mediarithmics.csv")[1])
    keys = ("operation", "user_key", "segment_ids", "segment_technical_names", "data_bag")
    for a, b in zip(ndjson, csv_, strict=True):
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}  # type: ignore[literal-required]


@pytest.mark.parametrize(
    ("format_name", "fixture"),
    [(NDJSON, "seed001_mediarithmics.ndjson"), ("village", "seed002_village.ndjson")],
)
def test_read_line_matches_read(format_name: str, fixture: str) -> None:
    from producer_tools.readers import make_reader
    from producer_tools.readers.lines import iter_lines, open_input
    from tests.unit.contract.helpers import context

    path = FIXTURES / fixture
    expected = read_path(format_name, path)[1]
    reader = make_reader(format_name, context(fixture))
    got = []
    with open_input(path, 10**9) as opened:
        for line, raw in iter_lines(opened.stream, 10**6):
            assert isinstance(raw, bytes)
            item = reader.read_line(line, raw)  # type: ignore[attr-defined]
            if item is not None:
                got.append((line, item))
    assert got == expected
    assert reader.read_line(9, b"  \r\n") is None  # type: ignore[attr-defined]
