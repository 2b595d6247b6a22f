"""``segflow schemas check`` and ``segflow consume`` refusing an incompatible writer schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from segflow.contract.schema import SCHEMA_FILE, fingerprint_text, load_version
from segflow.resources import schemas_dir
from tests.unit.cli.conftest import Run
from tests.unit.contract.test_writer_schemas import newer, write


def test_schemas_check_exit_codes_and_verdicts(tmp_path: Path, segflow: Callable[..., Run]) -> None:
    good = write(tmp_path / "in", "v2.avsc", newer())
    bad_raw = newer()
    next(f for f in bad_raw["fields"] if f["name"] == "version")["type"] = "string"
    bad = write(tmp_path, "bad.avsc", bad_raw)
    junk = write(tmp_path, "junk.avsc", "{nope")

    current = segflow("schemas", "check", str(schemas_dir() / SCHEMA_FILE), "-o", "json")
    assert current.code == 0
    assert json.loads(current.out)["known_as"] == "current"
    unknown = segflow("schemas", "check", str(good), "-o", "json")
    assert unknown.code == 0
    verdict = json.loads(unknown.out)
    assert verdict["readable"] is True
    assert verdict["known_as"] is None
    assert verdict["fingerprint"] == fingerprint_text(load_version(good).fingerprint)
    known = segflow("schemas", "check", str(good), "--writer-schema-dir", str(good.parent))
    assert known.code == 0
    assert "already read it" in known.out
    refused = segflow("schemas", "check", str(bad))
    assert refused.code == 1
    assert "version: writer string cannot be read as long" in refused.out
    broken = segflow("schemas", "check", str(junk))
    assert broken.code == 2
    assert "junk.avsc: not JSON" in broken.err


def test_consume_refuses_to_start_on_an_incompatible_writer_schema(
    tmp_path: Path, segflow: Callable[..., Run]
) -> None:
    write(tmp_path, "old-producer.avsc", newer(name="Elsewhere"))
    started = segflow("consume", "--writer-schema-dir", str(tmp_path))
    assert started.code == 2
    assert "old-producer.avsc" in started.err
    assert "consumer not started" in started.err
