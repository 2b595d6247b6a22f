"""Segmenter replace-all documents (seed 003): streamed persons, BEGIN/MEMBER/END."""

from __future__ import annotations

import gzip
import io
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from producer_tools.readers import ReaderLimits, make_reader
from segflow.contract.codec import decode, encode
from segflow.contract.models import validate_record
from tests.unit.contract.helpers import (
    CREATED_AT_US,
    FIXTURES,
    commands,
    context,
    errors,
    read_bytes,
    read_path,
)

SEGMENTER = "segmenter"
SEGMENT_ID = "Replace with the id of the segment"


def _doc(persons: list[Any] | None = None, **fields: Any) -> bytes:
    document: dict[str, Any] = {"id": "seg-1", "name": "Seg"}
    document.update(fields)
    if persons is not None:
        document["persons"] = persons
    return json.dumps(document).encode()


def test_seed_003_update_document() -> None:
    reader, items = read_path(SEGMENTER, FIXTURES / "seed003_segmenter_update.json")
    assert errors(items) == []
    begin, member, end = commands(items)
    assert [pos for pos, _ in items] == [0, 1, 2]
    definition = {
        "id": SEGMENT_ID,
        "name": "replace with the name of the segment",
        "description": "replace with description",
        "broadcast_medium_id": "replace with broadcast medium Id",
        "segment_type": "replace with segment type",
    }
    assert begin["operation"] == "REPLACE_BEGIN"
    assert begin["segment"] == definition
    assert begin["user_key"] is None
    assert member["operation"] == "REPLACE_MEMBER"
    assert member["user_key"] == "user_id:replace with uuid"
    assert member["person"] == {
        "external_id": "replace with uuid",
        "first_name": "replace with first name",
        "last_name": "replace with last name",
        "email": "replace with email",
        "phone": "replace with phone number",
        "substitution_tags": [
            {"tag": "replace with name of the tag", "value": "replace with value of the tag"}
        ],
    }
    assert end["operation"] == "REPLACE_END"
    assert end["member_count"] == 1
    assert end["segment"] == definition
    for command in (begin, member, end):
        assert command["segment_ids"] == [SEGMENT_ID]
        assert command["version"] == CREATED_AT_US + 1
        assert command["source"] == "SEGMENTER"
        validate_record(command)
        assert decode(encode(command)) == command
    assert len({c["command_id"] for c in (begin, member, end)}) == 3
    assert reader.warnings == []


def test_seed_003_empty_persons_clears_the_segment() -> None:
    _, items = read_path(SEGMENTER, FIXTURES / "seed003_segmenter_empty.json")
    begin, end = commands(items)
    assert begin["operation"] == "REPLACE_BEGIN"
    assert end["operation"] == "REPLACE_END"
    assert end["member_count"] == 0
    assert [pos for pos, _ in items] == [0, 1]


def test_bad_persons_are_reported_and_left_out() -> None:
    persons = [
        {"externalId": "a"},
        {"firstName": "no id"},
        "not an object",
        {"externalId": 42, "substitutionTags": [{"tag": "t", "value": 3}]},
        {"externalId": "b", "substitutionTags": [{"tag": "t"}]},
        {"externalId": "c", "substitutionTags": {"tag": "t"}},
        {"externalId": "d", "firstName": {"x": 1}},
        {"externalId": "  "},
        {"externalId": "e", "substitutionTags": [{"tag": "", "value": "v"}]},
    ]
    _, items = read_bytes(SEGMENTER, _doc(persons))
    members = [c for c in commands(items) if c["operation"] == "REPLACE_MEMBER"]
    assert [m["user_key"] for m in members] == ["user_id:a", "user_id:42"]
    assert members[1]["person"]["substitution_tags"] == [{"tag": "t", "value": "3"}]  # type: ignore[index]
    found = {e.line: e for e in errors(items)}
    assert set(found) == {2, 3, 5, 6, 7, 8, 9}
    assert found[2].field == "persons[1].externalId"
    assert "missing" in found[2].reason
    assert "must be an object" in found[3].reason
    assert found[5].field == "persons[4].substitutionTags[0].value"
    assert found[6].field == "persons[5].substitutionTags"
    assert found[7].field == "persons[6].firstName"
    assert found[8].field == "persons[7].externalId"
    assert found[9].field == "persons[8].substitutionTags[0].tag"
    end = commands(items)[-1]
    assert end["member_count"] == 2
    assert items[-1][0] == len(persons) + 1
    assert not any(e.fatal for e in errors(items))


def test_fields_after_persons_go_to_end() -> None:
    data = b'{"id": "s", "persons": [{"externalId": "x"}], "name": "late", "segmentType": "t"}'
    _, items = read_bytes(SEGMENTER, data)
    begin, _member, end = commands(items)
    assert begin["segment"] == {  # only what was read before persons
        "id": "s",
        "name": None,
        "description": None,
        "broadcast_medium_id": None,
        "segment_type": None,
    }
    assert end["segment"]["name"] == "late"  # type: ignore[index]
    assert end["segment"]["segment_type"] == "t"  # type: ignore[index]


def test_id_after_persons_is_prescanned_when_the_input_can_be_reread(tmp_path: Path) -> None:
    data = b'{"persons": [{"externalId": "x"}, {"externalId": "y"}], "id": "late", "name": "n"}'
    for source in (io.BytesIO(data), _write(tmp_path / "d.json.gz", gzip.compress(data))):
        reader = make_reader(SEGMENTER, context("d.json"))
        items = list(reader.read(source))
        assert errors(items) == []
        begin, x, _y, end = commands(items)
        assert begin["segment"] is not None
        assert begin["segment"]["id"] == "late"
        assert begin["segment"]["name"] == "n"
        assert x["segment_ids"] == ["late"]
        assert end["member_count"] == 2


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


class _OneWay(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_id_after_persons_on_a_one_way_stream_is_refused() -> None:
    data = b'{"persons": [{"externalId": "x"}], "id": "late"}'
    reader = make_reader(SEGMENTER, context("d.json"))
    (item,) = reader.read(io.BufferedReader(_OneWay(data)))
    error = item[1]
    assert not isinstance(error, dict)
    assert error.fatal
    assert error.field == "id"
    assert "before persons" in error.reason


@pytest.mark.parametrize(
    ("data", "field", "reason", "emitted"),
    [
        (b"", None, "premature EOF", 0),
        (b"   ", None, "premature EOF", 0),
        (b"[1, 2]", None, "must be a JSON object", 0),
        (b'{"name": "n"}', "id", "missing", 0),
        (b'{"id": "s", "name": "n"', None, "not valid JSON", 0),
        (b'{"name": "n", "persons": []}', "id", "missing", 0),
        (b'{"id": {"a": 1}, "persons": []}', "id", "must be a string", 0),
        (b'{"id": "s", "persons": {}}', "persons", "must be an array", 0),
        (b'{"id": "s", "persons": [], "persons": []}', "persons", "more than once", 1),
        (b'{"persons": [], "name": "n"}', "id", "missing", 0),
        (b'{"id": "s", "persons": [{"externalId": "a"}', None, "not valid JSON", 2),
        (b'{"id": "s", "persons": [{"externalId": "a"}]} trailing', None, "not valid JSON", 2),
        (
            b'{"id": "s", "persons": [{"externalId": "a"}], "name": [1]}',
            "name",
            "must be a string",
            2,
        ),
        (b'{"id": "s", "persons": [], "x": 1' + b"0" * 5000 + b"}", None, "not valid JSON", 1),
        (b'\xff{"id": "s"}', None, "not valid JSON", 0),
    ],
)
def test_document_level_problems_are_fatal(
    data: bytes, field: str | None, reason: str, emitted: int
) -> None:
    _, items = read_bytes(SEGMENTER, data)
    error = items[-1][1]
    assert not isinstance(error, dict), items
    assert error.fatal, error
    assert error.field == field, error
    assert reason in error.reason, error
    assert len(commands(items)) == emitted
    assert all(c["operation"] != "REPLACE_END" for c in commands(items))


def test_unknown_fields_warn_and_strict_fails() -> None:
    data = _doc(
        [{"externalId": "a", "age": 3, "substitutionTags": [{"tag": "t", "value": "v", "x": 1}]}],
        colour="red",
    )
    reader, items = read_bytes(SEGMENTER, data)
    assert errors(items) == []
    assert sorted(w.field for w in reader.warnings) == [
        "colour",
        "persons[].age",
        "persons[].substitutionTags[].x",
    ]
    _, items = read_bytes(SEGMENTER, data, strict=True)
    assert errors(items)[-1].fatal
    assert errors(items)[-1].field == "colour"
    data = _doc([{"externalId": "a", "age": 3}])
    _, items = read_bytes(SEGMENTER, data, strict=True)
    assert errors(items)[0].field == "persons[].age"
    assert not errors(items)[0].fatal


def test_oversized_person_is_skipped() -> None:
    big = {
        "externalId": "big",
        "substitutionTags": [{"tag": str(i), "value": "v"} for i in range(100)],
    }
    limits = ReaderLimits(max_person_events=50)
    _, items = read_bytes(SEGMENTER, _doc([big, {"externalId": "ok"}]), limits=limits)
    (error,) = errors(items)
    assert error.line == 1
    assert "max_person_events" in error.reason
    assert [c["user_key"] for c in commands(items) if c["user_key"]] == ["user_id:ok"]


PERSON = (
    b'{"externalId": "p%d", "firstName": "F", "substitutionTags": [{"tag": "t", "value": "v"}]}'
)


class _Persons(io.RawIOBase):
    """A Segmenter document with ``count`` persons, generated as it is read."""

    def __init__(self, count: int) -> None:
        self._parts = self._generate(count)
        self._pending = b""

    @staticmethod
    def _generate(count: int) -> Any:
        yield b'{"id": "big", "persons": ['
        for i in range(count):
            comma = b"," if i else b""
            yield comma + PERSON % i
        yield b"]}"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        size = min(len(buffer), 16 * 1024)  # a raw read may return less than asked
        while len(self._pending) < size:
            part = next(self._parts, None)
            if part is None:
                break
            self._pending += part
        chunk, self._pending = self._pending[:size], self._pending[size:]
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _peak_reading(count: int) -> tuple[int, int]:
    reader = make_reader(SEGMENTER, context("big.json"))
    tracemalloc.start()
    try:
        records = sum(1 for _, item in reader.read(io.BufferedReader(_Persons(count))))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return records, peak


def test_many_persons_are_streamed_in_constant_memory() -> None:
    small_records, small_peak = _peak_reading(5_000)
    large_records, large_peak = _peak_reading(30_000)  # ~2.7 MB of persons
    assert (small_records, large_records) == (5_002, 30_002)
    assert large_peak - small_peak < 256 * 1024, (small_peak, large_peak)


def test_reading_twice_is_identical() -> None:
    path = FIXTURES / "seed003_segmenter_update.json"
    assert read_path(SEGMENTER, path)[1] == read_path(SEGMENTER, path)[1]


def test_definition_only_document_is_a_lone_begin() -> None:
    # Seed 003 with "persons" left out: the definition is updated, the members left alone.
    document = {
        "id": "seg-9",
        "name": "Renamed",
        "description": "new text",
        "broadcastMediumId": "bm-2",
        "segmentType": "static",
    }
    reader, items = read_bytes(SEGMENTER, json.dumps(document, indent=2).encode())
    assert errors(items) == []
    [begin] = commands(items)
    assert items[0][0] == 0
    assert begin["operation"] == "REPLACE_BEGIN"
    assert begin["segment_ids"] == ["seg-9"]
    assert begin["segment"] == {
        "id": "seg-9",
        "name": "Renamed",
        "description": "new text",
        "broadcast_medium_id": "bm-2",
        "segment_type": "static",
    }
    assert reader.lines_read == 0
    validate_record(begin)
