"""``segflow schemas check FILE``: can consumers read what a producer writes with this schema?

A direct producer that evolves its schema (one added optional field, say) needs no segflow
release: its ``.avsc`` goes into the consumers' writer-schema directory
(``consumer.writer_schema_dir``; in Helm the ``consumer.writerSchemas`` ConfigMap). This
command is the check to run before that, in the producer's CI or by hand: it applies the same
test the consumer applies at start-up (``resolution_problems``) and says whether the consumers
already know the schema.

Exit codes: 0 readable by the current schema; 1 not readable (the reasons are listed);
2 the file is not an Avro schema (or a usage error).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from segflow.cli_flags import (
    COMPLETE_FILE,
    SettingFlags,
    add_output_flag,
    print_json,
    settings_from,
)
from segflow.contract.errors import SchemaEvolutionError
from segflow.contract.schema import (
    SchemaVersion,
    fingerprint_text,
    read_writer_schema,
    resolution_problems,
    schema_set,
)
from segflow.errors import ExitCode, SegflowError
from segflow.settings import ConsumeSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``segflow schemas check``."""
    schemas = subparsers.add_parser("schemas", help="the Avro contract: check producer schemas")
    actions = schemas.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="say whether records written with a producer's schema can be read, and why not",
        description="Checks FILE (an .avsc) against the current reader schema with Avro's "
        "resolution rules and fastavro, and says whether consumers already know it (shipped "
        "with segflow, or in consumer.writer_schema_dir). Exit codes: 0 readable, "
        "1 not readable (reasons listed), 2 not an Avro schema or a usage error.",
    )
    check.add_argument("file", type=Path, help="the producer's writer schema (.avsc)").complete = (  # type: ignore[attr-defined]
        COMPLETE_FILE
    )
    SettingFlags(check, ConsumeSettings).field("consumer.writer_schema_dir")
    add_output_flag(check)
    check.set_defaults(handler=_check)


def check_schema(path: Path, writer_schema_dir: Path | None) -> dict[str, Any]:
    """The verdict on one producer schema as a document (``readable``, ``problems``, ...)."""
    try:
        writer = read_writer_schema(path)
    except SchemaEvolutionError as exc:
        raise SegflowError(str(exc), ExitCode.USAGE) from None
    shipped = schema_set()
    problems = resolution_problems(writer, shipped.current)
    known_as = _known_as(writer, shipped.by_fingerprint, writer_schema_dir)
    return {
        "file": str(path),
        "fingerprint": fingerprint_text(writer.fingerprint),
        "header": writer.header.hex(" "),
        "reader_fingerprint": fingerprint_text(shipped.current.fingerprint),
        "readable": not problems,
        "problems": problems,
        "known_as": known_as,
    }


def _known_as(
    writer: SchemaVersion, shipped: dict[bytes, SchemaVersion], directory: Path | None
) -> str | None:
    """``current``, ``shipped`` (schemas/history), ``writer_schema_dir`` or None (unknown)."""
    found = shipped.get(writer.fingerprint_bytes)
    if found is not None:
        return "current" if found is schema_set().current else "shipped"
    if directory is not None and directory.is_dir():
        for other in sorted(directory.glob("*.avsc")):
            try:
                if read_writer_schema(other).fingerprint == writer.fingerprint:
                    return "writer_schema_dir"
            except SchemaEvolutionError:
                continue  # the consumer names that file at start-up; not this check's job
    return None


def _check(args: argparse.Namespace) -> int:
    settings = settings_from(args, ConsumeSettings)
    verdict = check_schema(args.file, settings.consumer.writer_schema_dir)
    if args.output == "json":
        print_json(verdict)
    else:
        _print_verdict(verdict)
    return ExitCode.OK if verdict["readable"] else ExitCode.FAILED


def _print_verdict(verdict: dict[str, Any]) -> None:
    name, fingerprint = verdict["file"], verdict["fingerprint"]
    if not verdict["readable"]:
        print(f"{name}: NOT readable by the current schema ({fingerprint}):")
        for problem in verdict["problems"]:
            print(f"  - {problem}")
        print("records written with it would be dead-lettered; fix the schema (schemas/README.md)")
        return
    print(f"{name}: readable by the current schema ({fingerprint})")
    known = verdict["known_as"]
    if known == "current":
        print("it is the current schema")
    elif known == "shipped":
        print("it is a version shipped with segflow (schemas/history)")
    elif known == "writer_schema_dir":
        print("consumers configured with this writer_schema_dir already read it")
    else:
        print(
            "consumers do not know it yet: add the file to consumer.writer_schema_dir (Helm: "
            "consumer.writerSchemas) and restart them before producing with it; until then its "
            "records are dead-lettered unknown_schema (replay them afterwards: segflow dlq replay)"
        )
