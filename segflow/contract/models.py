"""Pydantic v2 models of the segment command: the validated form used at the boundaries.

Field for field the same as ``schemas/segment_command.avsc`` (a test proves it). Readers and
the codec move plain dicts for speed; these models are what an upstream producer builds, what
tests generate, and what the consumer validates a decoded record against
(``validate_record``): beyond the Avro types they enforce the cross-field rules of the
contract (which operation carries which fields, canonical user keys, at least one segment).
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from segflow.contract.enums import (
    OVERRIDE_OPERATIONS,
    REPLACE_OPERATIONS,
    SEGMENT_LEVEL_OPERATIONS,
    Operation,
    Source,
)
from segflow.contract.errors import ContractError
from segflow.contract.ids import MAX_LONG, MAX_TIMESTAMP_MS, MAX_VERSION
from segflow.contract.jsontext import parse_json_text
from segflow.contract.records import CommandRecord
from segflow.contract.user_keys import UserKeyError, parse_user_key, user_id_key

MAX_SEGMENT_REF_CHARS = 256
MAX_SEGMENTS_PER_COMMAND = 1000

Long = Annotated[StrictInt, Field(ge=-(1 << 63), le=MAX_LONG)]
SegmentRef = Annotated[StrictStr, Field(min_length=1, max_length=MAX_SEGMENT_REF_CHARS)]
NonEmpty = Annotated[StrictStr, Field(min_length=1)]

_CONFIG = ConfigDict(frozen=True, extra="forbid")


class InvalidCommandError(ContractError):
    """A decoded record that breaks a rule of the contract (the dead-letter ``invalid``)."""


class SubstitutionTag(BaseModel):
    """One Segmenter substitution tag (sent tags are added or updated on the profile)."""

    model_config = _CONFIG

    tag: NonEmpty
    value: StrictStr


class Person(BaseModel):
    """A Segmenter person: ``user_id:{external_id}`` plus profile fields."""

    model_config = _CONFIG

    external_id: NonEmpty
    first_name: StrictStr | None = None
    last_name: StrictStr | None = None
    email: StrictStr | None = None
    phone: StrictStr | None = None
    substitution_tags: list[SubstitutionTag] = Field(default_factory=list)


class SegmentDefinition(BaseModel):
    """A Segmenter segment's descriptive fields."""

    model_config = _CONFIG

    id: SegmentRef
    name: StrictStr | None = None
    description: StrictStr | None = None
    broadcast_medium_id: StrictStr | None = None
    segment_type: StrictStr | None = None


class Origin(BaseModel):
    """Where a command was read (file base name and line / Segmenter position)."""

    model_config = _CONFIG

    file: StrictStr
    line: Long


class SegmentCommand(BaseModel):
    """One segment-membership command (see schemas/README.md for every rule)."""

    model_config = _CONFIG

    command_id: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    execution_id: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    source: Source
    operation: Operation
    version: Annotated[StrictInt, Field(ge=1, le=MAX_VERSION)]
    user_key: StrictStr | None = None
    segment_ids: Annotated[list[SegmentRef], Field(max_length=MAX_SEGMENTS_PER_COMMAND)] = Field(
        default_factory=list
    )
    segment_technical_names: Annotated[
        list[SegmentRef], Field(max_length=MAX_SEGMENTS_PER_COMMAND)
    ] = Field(default_factory=list)
    expires_at_ms: Annotated[StrictInt, Field(ge=0, le=MAX_TIMESTAMP_MS)] | None = None
    data_bag: StrictStr | None = None
    metadata: StrictStr | None = None
    reference_id: StrictStr | None = None
    description: StrictStr | None = None
    segment: SegmentDefinition | None = None
    person: Person | None = None
    member_count: Annotated[StrictInt, Field(ge=0, le=MAX_LONG)] | None = None
    origin: Origin | None = None

    @model_validator(mode="after")
    def _contract_rules(self) -> Self:
        """Cross-field rules: which operation carries which fields."""
        op = self.operation
        if op in SEGMENT_LEVEL_OPERATIONS:
            if self.user_key is not None:
                raise ValueError(f"{op} is about a segment: user_key must be null")
        elif self.user_key is None:
            raise ValueError(f"{op} needs a user_key")
        else:
            try:
                parse_user_key(self.user_key)
            except UserKeyError as exc:
                raise ValueError(f"user_key: {exc}") from None
        for name in ("segment_ids", "segment_technical_names"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name} holds duplicates")
        if not self.segment_ids and not self.segment_technical_names:
            raise ValueError("a command names at least one segment")
        if op in REPLACE_OPERATIONS and (
            len(self.segment_ids) != 1 or self.segment_technical_names
        ):
            raise ValueError(f"{op} names exactly one segment, by id")
        _only_on(self, "expires_at_ms", {Operation.FEED_ADD})
        _only_on(self, "data_bag", {Operation.FEED_ADD})
        if self.data_bag is not None:
            _check_json(self.data_bag, "data_bag")
        for name in ("metadata", "reference_id", "description"):
            _only_on(self, name, OVERRIDE_OPERATIONS)
        if self.metadata is not None and not isinstance(
            _check_json(self.metadata, "metadata"), dict
        ):
            raise ValueError("metadata must be a JSON object")
        _only_on(self, "segment", SEGMENT_LEVEL_OPERATIONS)
        _only_on(self, "person", {Operation.REPLACE_MEMBER})
        _only_on(self, "member_count", {Operation.REPLACE_END})
        if op is Operation.REPLACE_BEGIN and self.segment is None:
            raise ValueError("REPLACE_BEGIN carries the segment definition")
        if self.segment is not None and self.segment.id != self.segment_ids[0]:
            raise ValueError("segment.id differs from segment_ids[0]")
        if op is Operation.REPLACE_END and self.member_count is None:
            raise ValueError("REPLACE_END carries member_count")
        if op is Operation.REPLACE_MEMBER:
            if self.person is None:
                raise ValueError("REPLACE_MEMBER carries the person")
            try:
                expected = user_id_key(self.person.external_id)
            except UserKeyError as exc:
                raise ValueError(f"person.external_id: {exc}") from None
            if self.user_key != expected:
                raise ValueError("REPLACE_MEMBER user_key must be user_id:{person.external_id}")
        return self

    def to_record(self) -> CommandRecord:
        """The wire dict (what ``segflow.contract.codec.encode`` takes)."""
        record: CommandRecord = self.model_dump(mode="python")  # type: ignore[assignment]
        record["source"] = self.source.value
        record["operation"] = self.operation.value
        return record

    @classmethod
    def from_record(cls, record: CommandRecord | dict[str, Any]) -> SegmentCommand:
        """Validate a wire dict (raises pydantic's ``ValidationError``)."""
        return cls.model_validate(record)


def _only_on(
    command: SegmentCommand, name: str, operations: set[Operation] | frozenset[Operation]
) -> None:
    if getattr(command, name) is not None and command.operation not in operations:
        raise ValueError(f"{name} is not allowed on {command.operation}")


def _check_json(text: str, name: str) -> Any:
    try:
        return parse_json_text(text)
    except ValueError as exc:
        raise ValueError(f"{name} is not valid JSON: {exc}") from None


def validate_record(record: CommandRecord | dict[str, Any]) -> SegmentCommand:
    """The consumer's check of a decoded record; raises ``InvalidCommandError`` with one line."""
    try:
        return SegmentCommand.model_validate(record)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "command"
        raise InvalidCommandError(
            f"{where}: {first['msg']}"
            + (f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else "")
        ) from None
