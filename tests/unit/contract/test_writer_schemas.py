"""Writer schemas without a release (issue 14, item 8): loaded from a directory, checked
against the current reader schema when loaded, and decoded resolved to it."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from segflow.contract.codec import Codec, codec_with_writer_schemas, default_codec
from segflow.contract.errors import DecodeError, DecodeReason, SchemaEvolutionError
from segflow.contract.records import command_record
from segflow.contract.schema import (
    SCHEMA_FILE,
    fingerprint_text,
    load_version,
    readability_problems,
    schema_set,
    with_writer_schemas,
)
from segflow.resources import schemas_dir

CURRENT: dict[str, Any] = json.loads((schemas_dir() / SCHEMA_FILE).read_text())


def newer(**changes: Any) -> dict[str, Any]:
    """The current schema plus an optional ``campaign`` field (what a producer evolves to)."""
    raw = copy.deepcopy(CURRENT)
    raw["fields"].append(
        {"name": "campaign", "type": ["null", "string"], "default": None, "doc": "added"}
    )
    raw.update(changes)
    return raw


def write(directory: Path, name: str, raw: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(raw if isinstance(raw, str) else json.dumps(raw))
    return path


def record() -> Any:
    return command_record(
        command_id="c" * 32,
        execution_id="e-1",
        operation="FEED_ADD",
        version=7,
        user_key="user_id:u-1",
        segment_ids=["s-1"],
    )


def encode_with(path: Path, value: dict[str, Any]) -> bytes:
    version = load_version(path)
    out = io.BytesIO()
    out.write(version.header)
    schemaless_writer(out, parse_schema(version.raw), value)
    return out.getvalue()


def test_a_newer_schema_in_the_directory_is_decoded_into_the_current_form(tmp_path: Path) -> None:
    path = write(tmp_path, "v2.avsc", newer())
    codec = codec_with_writer_schemas(tmp_path)
    data = encode_with(path, {**record(), "campaign": "spring"})
    assert codec.decode(data) == record()  # the new field is dropped, nothing else changes
    with pytest.raises(DecodeError) as caught:
        default_codec().decode(data)  # without the directory: unknown
    assert caught.value.reason is DecodeReason.UNKNOWN_FINGERPRINT
    assert fingerprint_text(load_version(path).fingerprint) in caught.value.detail


def test_the_current_schema_keeps_its_generated_fast_path(tmp_path: Path) -> None:
    write(tmp_path, "v2.avsc", newer())
    codec = codec_with_writer_schemas(tmp_path)
    assert codec._fast_decode is not None
    assert codec.header == schema_set().current.header
    assert codec_with_writer_schemas(None) is default_codec()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            lambda: {**newer(), "fields": [*CURRENT["fields"][:4], *CURRENT["fields"][5:]]},
            "version: new field without a default",
        ),
        (lambda: newer(name="io.segflow.contract.Other"), "names differ"),
    ],
)
def test_an_incompatible_schema_is_refused_when_loaded_and_named(
    tmp_path: Path, raw: Callable[[], Any], expected: str
) -> None:
    write(tmp_path, "a-good.avsc", newer())
    write(tmp_path, "producer-broken.avsc", raw())
    with pytest.raises(SchemaEvolutionError) as caught:
        with_writer_schemas(schema_set(), tmp_path)
    assert "producer-broken.avsc" in str(caught.value)
    assert expected in str(caught.value)


def test_a_renamed_record_with_a_reader_alias_is_readable() -> None:
    reader = {**copy.deepcopy(CURRENT), "aliases": ["OldCommand"]}
    writer = newer(name="OldCommand")
    assert readability_problems(writer, reader) == []
    assert readability_problems(writer, CURRENT) != []


@pytest.mark.parametrize(
    ("text", "expected"),
    [("{nope", "not JSON"), ('{"type": "record"}', "not an Avro schema")],
)
def test_a_file_that_is_not_a_schema_is_named(tmp_path: Path, text: str, expected: str) -> None:
    write(tmp_path, "junk.avsc", text)
    with pytest.raises(SchemaEvolutionError, match=expected) as caught:
        with_writer_schemas(schema_set(), tmp_path)
    assert "junk.avsc" in str(caught.value)


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaEvolutionError, match="does not exist"):
        with_writer_schemas(schema_set(), tmp_path / "absent")


def test_the_same_schema_twice_or_the_current_one_is_harmless(tmp_path: Path) -> None:
    write(tmp_path, "v2.avsc", newer())
    write(tmp_path, "v2-copy.avsc", newer())
    write(tmp_path, "current.avsc", CURRENT)
    schemas = with_writer_schemas(schema_set(), tmp_path)
    assert len(schemas.by_fingerprint) == len(schema_set().by_fingerprint) + 1
    assert Codec(schemas).decode(default_codec().encode(record())) == record()
