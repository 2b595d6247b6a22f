"""Load the segment-command Avro schemas once, fingerprint them, and check they can evolve.

``schemas/segment_command.avsc`` is the current reader schema; every earlier released
version goes to ``schemas/history/`` (the directory appears with the second version: today
there is only one) so a consumer can still decode records written by an older producer. A
record names its writer schema by the CRC-64-AVRO fingerprint of that schema's Parsing
Canonical Form (Avro single-object encoding), so this module maps fingerprints to parsed
schemas. Parsing is done once per process (``schema_set()`` is cached): fastavro's
parse is far too slow to repeat per record.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import to_parsing_canonical_form
from fastavro.utils import generate_many

from segflow.contract.errors import SchemaEvolutionError
from segflow.resources import schemas_dir

SCHEMA_FILE = "segment_command.avsc"
HISTORY_DIR = "history"
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
HEADER_LEN = len(SINGLE_OBJECT_MAGIC) + 8

_CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The Rabin CRC-64 fingerprint the Avro specification defines (``CRC-64-AVRO``).

    Written out (it is ten lines) rather than taken from fastavro so that its byte order is
    unambiguous: the single-object header stores this integer little-endian.
    """
    fp = _CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One kept schema version: its JSON, fastavro's parsed form, and its fingerprint."""

    path: Path
    raw: dict[str, Any]
    parsed: Any
    canonical_form: str
    fingerprint: int

    @property
    def fingerprint_bytes(self) -> bytes:
        """The 8 fingerprint bytes of the single-object header (little-endian)."""
        return self.fingerprint.to_bytes(8, "little")

    @property
    def header(self) -> bytes:
        """The 10-byte single-object header of records written with this schema."""
        return SINGLE_OBJECT_MAGIC + self.fingerprint_bytes


@dataclass(frozen=True, slots=True)
class SchemaSet:
    """The current reader schema plus every kept writer version, by fingerprint."""

    current: SchemaVersion
    by_fingerprint: dict[bytes, SchemaVersion] = field(default_factory=dict)


def load_version(path: Path) -> SchemaVersion:
    """Parse one ``.avsc`` file and fingerprint its Parsing Canonical Form."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    parsed = parse_schema(raw)
    canonical = to_parsing_canonical_form(parsed)
    return SchemaVersion(
        path=path,
        raw=raw,
        parsed=parsed,
        canonical_form=canonical,
        fingerprint=crc64_avro(canonical.encode("utf-8")),
    )


def load_schema_set(directory: Path) -> SchemaSet:
    """Load ``directory/segment_command.avsc`` and ``directory/history/*.avsc``.

    Raises ``SchemaEvolutionError`` when a kept version cannot be read by the current schema:
    shipping such a set would dead-letter every record of that version.
    """
    current = load_version(directory / SCHEMA_FILE)
    versions = {current.fingerprint_bytes: current}
    history = directory / HISTORY_DIR
    if history.is_dir():
        for path in sorted(history.glob("*.avsc")):
            version = load_version(path)
            problems = readability_problems(version.raw, current.raw)
            if problems:
                raise SchemaEvolutionError(
                    f"{path.name} cannot be read by {SCHEMA_FILE}: " + "; ".join(problems)
                )
            versions.setdefault(version.fingerprint_bytes, version)
    return SchemaSet(current=current, by_fingerprint=versions)


@cache
def schema_set() -> SchemaSet:
    """The schemas shipped with segflow, parsed once per process."""
    return load_schema_set(schemas_dir())


def read_writer_schema(path: Path) -> SchemaVersion:
    """Parse a producer's ``.avsc`` file; ``SchemaEvolutionError`` names the file when it is
    not JSON or not an Avro schema (fastavro's parser is the judge)."""
    try:
        return load_version(path)
    except OSError as exc:
        raise SchemaEvolutionError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise SchemaEvolutionError(f"{path}: not JSON: {exc}") from None
    except Exception as exc:  # fastavro raises SchemaParseError, KeyError, TypeError, ...
        raise SchemaEvolutionError(
            f"{path}: not an Avro schema: {type(exc).__name__}: {exc}"[:500]
        ) from None


def with_writer_schemas(base: SchemaSet, directory: Path | None) -> SchemaSet:
    """``base`` plus every ``*.avsc`` of ``directory`` as an extra writer schema.

    This is how a producer's newer schema is accepted without a segflow release: the
    consumer reads records written with it, resolved to the current reader schema (a
    producer that adds an optional field has its records applied, the new field dropped).
    Every file is checked when loaded, so a schema the current one cannot read stops the
    consumer at start-up, named, instead of dead-lettering every record written with it.
    Raises ``SchemaEvolutionError`` (a missing directory, an unparsable file, an
    incompatible schema).
    """
    if directory is None:
        return base
    if not directory.is_dir():
        raise SchemaEvolutionError(f"writer schema directory {directory} does not exist")
    versions = dict(base.by_fingerprint)
    for path in sorted(directory.glob("*.avsc")):
        version = read_writer_schema(path)
        problems = resolution_problems(version, base.current)
        if problems:
            raise SchemaEvolutionError(
                f"writer schema {path} (fingerprint {fingerprint_text(version.fingerprint)}) "
                f"cannot be read by the current schema {SCHEMA_FILE}: " + "; ".join(problems)
            )
        versions.setdefault(version.fingerprint_bytes, version)
    return SchemaSet(current=base.current, by_fingerprint=versions)


def resolution_problems(
    writer: SchemaVersion, reader: SchemaVersion, samples: int = 20
) -> list[str]:
    """Why records written with ``writer`` cannot be read as ``reader`` (empty: they can).

    First the static Avro resolution rules (``readability_problems``, which name the field),
    then fastavro itself: ``samples`` generated records are written with ``writer`` and read
    back resolved to ``reader``, so a rule the static check misses still fails here, at
    start-up, rather than per record.
    """
    problems = readability_problems(writer.raw, reader.raw)
    if problems or writer.fingerprint == reader.fingerprint:
        return problems
    try:
        for record in generate_many(writer.parsed, samples):
            out = io.BytesIO()
            schemaless_writer(out, writer.parsed, record)
            out.seek(0)
            schemaless_reader(out, writer.parsed, reader.parsed)
    except Exception as exc:  # fastavro's SchemaResolutionError and friends
        return [f"fastavro cannot resolve it: {type(exc).__name__}: {exc}"[:300]]
    return []


def fingerprint_text(fingerprint: int | bytes) -> str:
    """A fingerprint as it is written in docs and dead letters: ``0x`` + 16 hex digits."""
    value = int.from_bytes(fingerprint, "little") if isinstance(fingerprint, bytes) else fingerprint
    return f"0x{value:016X}"


# --- schema resolution check (Avro specification, "Schema Resolution") ---------------------

_PROMOTIONS = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
}
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def readability_problems(writer: Any, reader: Any) -> list[str]:
    """Why data written with ``writer`` cannot be read with ``reader`` (empty list: it can).

    A static version of Avro's resolution rules, so an incompatible edit fails in CI rather
    than as dead letters in production: reader fields missing from the writer need a default,
    enum symbols may only be added (or the reader enum needs a default), types may only be
    promoted.
    """
    problems: list[str] = []
    _check(writer, reader, "", _names(writer), _names(reader), problems, set())
    return problems


def _names(schema: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def walk(node: Any, namespace: str) -> None:
        if isinstance(node, list):
            for branch in node:
                walk(branch, namespace)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind in ("record", "enum", "fixed", "error"):
                ns = node.get("namespace", namespace)
                name = node["name"]
                full = name if "." in name else (f"{ns}.{name}" if ns else name)
                found[full] = node
                found[name.rsplit(".", 1)[-1]] = node
                namespace = full.rsplit(".", 1)[0] if "." in full else ns
                for fld in node.get("fields", []):
                    walk(fld["type"], namespace)
            elif kind == "array":
                walk(node["items"], namespace)
            elif kind == "map":
                walk(node["values"], namespace)
            elif isinstance(kind, dict | list):
                walk(kind, namespace)

    walk(schema, "")
    return found


def _resolve(node: Any, names: dict[str, Any]) -> Any:
    if isinstance(node, str) and node not in _PRIMITIVES:
        return names.get(node, names.get(node.rsplit(".", 1)[-1], node))
    if isinstance(node, dict) and node.get("type") in _PRIMITIVES and len(node) == 1:
        return node["type"]
    if isinstance(node, dict) and isinstance(node.get("type"), dict | list):
        return _resolve(node["type"], names)
    return node


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _same_name(writer: dict[str, Any], reader: dict[str, Any]) -> bool:
    """Avro resolution matches named types by unqualified name, or a reader alias."""
    wanted = _short(writer["name"])
    return wanted == _short(reader["name"]) or wanted in map(_short, reader.get("aliases", []))


def _kind(node: Any) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "union"
    kind = node.get("type")
    return "record" if kind == "error" else str(kind)


def _check(
    writer: Any,
    reader: Any,
    where: str,
    wnames: dict[str, Any],
    rnames: dict[str, Any],
    problems: list[str],
    seen: set[tuple[int, int]],
) -> None:
    writer = _resolve(writer, wnames)
    reader = _resolve(reader, rnames)
    wk, rk = _kind(writer), _kind(reader)
    if wk == "union":
        for branch in writer:
            _check(branch, reader, where, wnames, rnames, problems, seen)
        return
    if rk == "union":
        for branch in reader:
            sub: list[str] = []
            _check(writer, branch, where, wnames, rnames, sub, set(seen))
            if not sub:
                return
        problems.append(f"{where or '<root>'}: no reader union branch matches writer {wk}")
        return
    if wk in _PRIMITIVES or rk in _PRIMITIVES:
        if rk not in _PROMOTIONS.get(wk, {wk}):
            problems.append(f"{where or '<root>'}: writer {wk} cannot be read as {rk}")
        return
    if wk != rk:
        problems.append(f"{where or '<root>'}: writer {wk} cannot be read as {rk}")
        return
    if wk in ("record", "enum", "fixed") and not _same_name(writer, reader):
        problems.append(
            f"{where or '<root>'}: writer {wk} {_short(writer['name'])} cannot be read as "
            f"{_short(reader['name'])} (names differ and no reader alias matches)"
        )
        return
    if wk == "array":
        _check(writer["items"], reader["items"], f"{where}[]", wnames, rnames, problems, seen)
    elif wk == "map":
        _check(writer["values"], reader["values"], f"{where}{{}}", wnames, rnames, problems, seen)
    elif wk == "enum":
        missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if missing and "default" not in reader:
            problems.append(f"{where}: enum symbols {missing} removed and reader has no default")
    elif wk == "fixed":
        if writer.get("size") != reader.get("size"):
            problems.append(f"{where}: fixed size changed")
    elif wk == "record":
        key = (id(writer), id(reader))
        if key in seen:
            return
        seen.add(key)
        wfields = {f["name"]: f for f in writer["fields"]}
        for fld in writer["fields"]:
            for alias in fld.get("aliases", []):
                wfields.setdefault(alias, fld)
        for fld in reader["fields"]:
            name = fld["name"]
            path = f"{where}.{name}" if where else name
            match = wfields.get(name)
            if match is None:
                for alias in fld.get("aliases", []):
                    match = wfields.get(alias)
                    if match is not None:
                        break
            if match is None:
                if "default" not in fld:
                    problems.append(f"{path}: new field without a default")
                continue
            _check(match["type"], fld["type"], path, wnames, rnames, problems, seen)
