"""Typed views of the wire dicts: exactly what the Avro codec writes and reads.

The hot path (readers -> encoder, decoder -> consumer) moves plain dicts, because building a
pydantic model per record costs more than the whole 5 µs budget. These ``TypedDict``s give
those dicts static types; ``segflow.contract.models`` converts to and from validated models at
the boundaries (API, tests, upstream producers).
"""

from __future__ import annotations

from typing import TypedDict


class SubstitutionTagRecord(TypedDict):
    """One Segmenter substitution tag."""

    tag: str
    value: str


class PersonRecord(TypedDict):
    """A Segmenter person (REPLACE_MEMBER)."""

    external_id: str
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    substitution_tags: list[SubstitutionTagRecord]


class SegmentDefinitionRecord(TypedDict):
    """A Segmenter segment definition (REPLACE_BEGIN, REPLACE_END)."""

    id: str
    name: str | None
    description: str | None
    broadcast_medium_id: str | None
    segment_type: str | None


class OriginRecord(TypedDict):
    """Where a command was read."""

    file: str
    line: int


class CommandRecord(TypedDict):
    """One segment command as it travels on the topic (field order = schema order)."""

    command_id: str
    execution_id: str
    source: str
    operation: str
    version: int
    user_key: str | None
    segment_ids: list[str]
    segment_technical_names: list[str]
    expires_at_ms: int | None
    data_bag: str | None
    metadata: str | None
    reference_id: str | None
    description: str | None
    segment: SegmentDefinitionRecord | None
    person: PersonRecord | None
    member_count: int | None
    origin: OriginRecord | None


def blank_command(
    execution_id: str, source: str, operation: str = "", version: int = 0
) -> CommandRecord:
    """A ``CommandRecord`` with every field past the identity null or empty.

    The one place the 17 wire fields are written out: readers copy it once per execution as
    their per-line template (``dict.copy`` beats a keyword call in the 5 µs budget),
    ``command_record`` fills it for upstream producers, tests and benchmarks.
    """
    return {
        "command_id": "",
        "execution_id": execution_id,
        "source": source,
        "operation": operation,
        "version": version,
        "user_key": None,
        "segment_ids": [],
        "segment_technical_names": [],
        "expires_at_ms": None,
        "data_bag": None,
        "metadata": None,
        "reference_id": None,
        "description": None,
        "segment": None,
        "person": None,
        "member_count": None,
        "origin": None,
    }


def command_record(
    *,
    command_id: str,
    execution_id: str,
    operation: str,
    version: int,
    user_key: str | None,
    segment_ids: list[str],
    source: str = "PRODUCER",
    **optional: object,
) -> CommandRecord:
    """A ``CommandRecord`` with every optional field defaulted (null / empty).

    For upstream producers, tests and benchmarks: unknown field names are refused here, which
    a plain dict literal would let through to the encoder.
    """
    record = blank_command(execution_id, source, operation, version)
    unknown = set(optional) - set(record)
    if unknown:
        raise TypeError(f"unknown command fields: {', '.join(sorted(unknown))}")
    record["command_id"] = command_id
    record["user_key"] = user_key
    record["segment_ids"] = segment_ids
    record.update(optional)  # type: ignore[typeddict-item]
    return record
