"""The Avro schemas: fingerprints, docs, and that every kept version stays readable."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.utils import generate_many

from segflow.contract.codec import Codec
from segflow.contract.errors import SchemaEvolutionError
from segflow.contract.schema import (
    HISTORY_DIR,
    SCHEMA_FILE,
    crc64_avro,
    load_schema_set,
    readability_problems,
    schema_set,
)
from segflow.resources import schemas_dir

CURRENT = json.loads((schemas_dir() / SCHEMA_FILE).read_text())


def test_crc64_matches_the_avro_specification_vectors() -> None:
    # Fingerprints of "null" and "int" published with the Avro specification's test data.
    assert crc64_avro(b'"null"') == 7195948357588979594
    assert crc64_avro(b'"int"') == 8247732601305521295


def test_fingerprint_agrees_with_fastavro_and_readme() -> None:
    current = schema_set().current
    expected = fastavro_fingerprint(current.canonical_form, "CRC-64-AVRO")
    assert current.fingerprint_bytes.hex() == expected
    readme = (schemas_dir() / "README.md").read_text()
    assert f"0x{current.fingerprint:016X}" in readme, (
        "segment_command.avsc changed: a released schema is never edited (copy it to "
        "history/ first), then update the fingerprint line in schemas/README.md"
    )
    assert current.header == b"\xc3\x01" + current.fingerprint_bytes


def _all_fields(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, list):
        for branch in node:
            found += _all_fields(branch)
    elif isinstance(node, dict):
        for fld in node.get("fields", []):
            found.append(fld)
            found += _all_fields(fld["type"])
        for key in ("items", "values", "type"):
            if isinstance(node.get(key), dict | list):
                found += _all_fields(node[key])
    return found


def test_every_field_and_named_type_has_a_doc() -> None:
    fields = _all_fields(CURRENT)
    assert len(fields) > 20
    for fld in fields:
        assert fld.get("doc"), f"field {fld['name']} has no doc"
    assert CURRENT.get("doc")


def test_every_optional_field_has_a_default() -> None:
    for fld in _all_fields(CURRENT):
        kind = fld["type"]
        if isinstance(kind, list) and "null" in kind:
            assert "default" in fld, fld["name"]
            assert fld["default"] is None, fld["name"]
        if isinstance(kind, dict) and kind.get("type") == "array":
            assert fld.get("default") == [], fld["name"]


def _records_for(schema: dict[str, Any], count: int = 200) -> list[bytes]:
    """Random records written with ``schema`` as single-object bytes."""
    parsed = parse_schema(copy.deepcopy(schema))
    header = load_schema_set_for(schema).current.header
    out = []
    for record in generate_many(parsed, count):
        buffer = io.BytesIO()
        buffer.write(header)
        schemaless_writer(buffer, parsed, record)
        out.append(buffer.getvalue())
    return out


def load_schema_set_for(schema: dict[str, Any]) -> Any:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / SCHEMA_FILE).write_text(json.dumps(schema))
        return load_schema_set(Path(tmp))


@pytest.mark.parametrize(
    "path",
    [schemas_dir() / SCHEMA_FILE, *sorted((schemas_dir() / HISTORY_DIR).glob("*.avsc"))],
    ids=lambda p: p.name,
)
def test_every_kept_version_is_readable_by_the_current_schema(path: Path) -> None:
    writer = json.loads(path.read_text())
    assert readability_problems(writer, CURRENT) == []
    codec = Codec(schema_set())
    for data in _records_for(writer):
        decoded = codec.decode(data)
        assert set(decoded) == {f["name"] for f in CURRENT["fields"]}


def _older_version() -> dict[str, Any]:
    """What version 1 minus its last two optional fields would have looked like."""
    older: dict[str, Any] = copy.deepcopy(CURRENT)
    older["fields"] = [f for f in older["fields"] if f["name"] not in ("member_count", "origin")]
    older["fields"][2]["type"]["symbols"] = ["MEDIARITHMICS", "VILLAGE", "PRODUCER"]
    return older


def test_a_history_version_is_decoded_and_resolved_to_the_current_schema(tmp_path: Path) -> None:
    (tmp_path / SCHEMA_FILE).write_text(json.dumps(CURRENT))
    (tmp_path / HISTORY_DIR).mkdir()
    older = _older_version()
    (tmp_path / HISTORY_DIR / "segment_command.v0.avsc").write_text(json.dumps(older))
    schemas = load_schema_set(tmp_path)
    assert len(schemas.by_fingerprint) == 2
    codec = Codec(schemas)
    for data in _records_for(older, 100):
        record = codec.decode(data)
        assert record["member_count"] is None
        assert record["origin"] is None


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (
            lambda s: s["fields"].append({"name": "new", "type": "string", "doc": "d"}),
            "new field without a default",
        ),
        (
            lambda s: s["fields"][4].update(type="int"),
            "writer long cannot be read as int",
        ),
        (
            lambda s: s["fields"][3]["type"].update(symbols=["FEED_ADD"]),
            "removed and reader has no default",
        ),
        (
            lambda s: s["fields"][5].update(type="string") or s["fields"][5].pop("default"),
            "writer null cannot be read as string",
        ),
    ],
    ids=["field-without-default", "narrowed-type", "removed-symbol", "union-to-string"],
)
def test_incompatible_edits_are_refused(mutate: Any, problem: str, tmp_path: Path) -> None:
    reader = copy.deepcopy(CURRENT)
    mutate(reader)
    assert any(problem in p for p in readability_problems(CURRENT, reader))
    (tmp_path / SCHEMA_FILE).write_text(json.dumps(reader))
    (tmp_path / HISTORY_DIR).mkdir()
    (tmp_path / HISTORY_DIR / "segment_command.v1.avsc").write_text(json.dumps(CURRENT))
    with pytest.raises(SchemaEvolutionError, match="cannot be read"):
        load_schema_set(tmp_path)


def test_compatible_edits_pass_the_check() -> None:
    reader = copy.deepcopy(CURRENT)
    reader["fields"].append(
        {"name": "tenant", "type": ["null", "string"], "default": None, "doc": "d"}
    )
    reader["fields"][3]["type"]["symbols"].append("FEED_TOUCH")
    assert readability_problems(CURRENT, reader) == []


def test_schemas_are_parsed_once() -> None:
    assert schema_set() is schema_set()
