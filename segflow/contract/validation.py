"""The consumer's check of a decoded record, without building a model per record.

``validate_record`` (pydantic, ``segflow.contract.models``) is the definition of a valid
command, and it costs ~16 µs: more than the whole decode + validate + plan budget. Nearly every
record is valid, so ``check_record`` first asks ``certainly_valid``, a plain-Python test of
the same rules that answers True only when the record is valid beyond doubt. Anything else
(a broken rule, or merely an unusual shape: a ``str`` subclass, a missing optional key,
an identifier with an exotic character) goes to the pydantic model, which either accepts it
or raises the very ``InvalidCommandError`` it always raised. So the rules, and every
dead-letter reason and message, are the model's by construction; a differential property test
proves that ``certainly_valid`` never accepts what the model refuses.
"""

from __future__ import annotations

from typing import Any

from segflow.contract.enums import (
    OVERRIDE_OPERATIONS,
    SEGMENT_LEVEL_OPERATIONS,
    Operation,
    Source,
)
from segflow.contract.ids import MAX_LONG, MAX_TIMESTAMP_MS, MAX_VERSION
from segflow.contract.jsontext import JSON_ERRORS, parse_json_text
from segflow.contract.models import (
    MAX_SEGMENT_REF_CHARS,
    MAX_SEGMENTS_PER_COMMAND,
    SegmentCommand,
    validate_record,
)
from segflow.contract.user_keys import MAX_IDENTIFIER_CHARS, UserKeyError, parse_user_key

_FIELDS = frozenset(SegmentCommand.model_fields)
_DEFINITION_FIELDS = frozenset(("id", "name", "description", "broadcast_medium_id", "segment_type"))
_PERSON_FIELDS = frozenset(
    ("external_id", "first_name", "last_name", "email", "phone", "substitution_tags")
)
_TAG_FIELDS = frozenset(("tag", "value"))
_ORIGIN_FIELDS = frozenset(("file", "line"))
_SOURCES = frozenset(member.value for member in Source)
_OPERATIONS = frozenset(member.value for member in Operation)
_SEGMENT_LEVEL = frozenset(op.value for op in SEGMENT_LEVEL_OPERATIONS)
_OVERRIDES = frozenset(op.value for op in OVERRIDE_OPERATIONS)
_FEED_ADD = Operation.FEED_ADD.value
_REPLACE_BEGIN = Operation.REPLACE_BEGIN.value
_REPLACE_MEMBER = Operation.REPLACE_MEMBER.value
_REPLACE_END = Operation.REPLACE_END.value
_SIMPLE_KEY_TYPES = frozenset(("email_hash", "user_agent", "user_id"))
_MIN_LONG = -(1 << 63)


def check_record(record: Any) -> None:
    """Raise ``InvalidCommandError`` exactly when ``validate_record`` would, with its message."""
    if not certainly_valid(record):
        validate_record(record)


def certainly_valid(record: Any) -> bool:
    """True only for a record ``SegmentCommand`` accepts (False: ask the model)."""
    if type(record) is not dict or record.keys() != _FIELDS:
        return False
    if not (_id_text(record["command_id"]) and _id_text(record["execution_id"])):
        return False
    source = record["source"]
    operation = record["operation"]
    if type(source) is not str or source not in _SOURCES:
        return False
    if type(operation) is not str or operation not in _OPERATIONS:
        return False
    version = record["version"]
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        return False
    ids = record["segment_ids"]
    names = record["segment_technical_names"]
    if not (_refs(ids) and _refs(names)) or not (ids or names):
        return False
    user_key = record["user_key"]
    if operation in _SEGMENT_LEVEL:
        if user_key is not None:
            return False
    elif type(user_key) is not str or not _canonical(user_key):
        return False
    if operation[0] == "R" and (len(ids) != 1 or names):  # REPLACE_*
        return False
    expires = record["expires_at_ms"]
    data_bag = record["data_bag"]
    if expires is not None or data_bag is not None:
        if operation != _FEED_ADD:
            return False
        if expires is not None and (
            type(expires) is not int or not 0 <= expires <= MAX_TIMESTAMP_MS
        ):
            return False
        if data_bag is not None and (type(data_bag) is not str or not _json(data_bag, False)):
            return False
    metadata = record["metadata"]
    reference_id = record["reference_id"]
    description = record["description"]
    if metadata is not None or reference_id is not None or description is not None:
        if operation not in _OVERRIDES:
            return False
        if not (_optional_text(reference_id) and _optional_text(description)):
            return False
        if metadata is not None and (type(metadata) is not str or not _json(metadata, True)):
            return False
    segment = record["segment"]
    if segment is None:
        if operation == _REPLACE_BEGIN:
            return False
    elif operation not in _SEGMENT_LEVEL or not _definition(segment, ids):
        return False
    person = record["person"]
    if person is None:
        if operation == _REPLACE_MEMBER:
            return False
    elif operation != _REPLACE_MEMBER or not _person(person, user_key):
        return False
    member_count = record["member_count"]
    if member_count is None:
        if operation == _REPLACE_END:
            return False
    elif (
        operation != _REPLACE_END
        or type(member_count) is not int
        or not 0 <= member_count <= MAX_LONG
    ):
        return False
    origin = record["origin"]
    return origin is None or (
        type(origin) is dict
        and origin.keys() == _ORIGIN_FIELDS
        and type(origin["file"]) is str
        and type(origin["line"]) is int
        and _MIN_LONG <= origin["line"] <= MAX_LONG
    )


def _id_text(value: Any) -> bool:
    return type(value) is str and 1 <= len(value) <= 128


def _optional_text(value: Any) -> bool:
    return value is None or type(value) is str


def _refs(values: Any) -> bool:
    if type(values) is not list or len(values) > MAX_SEGMENTS_PER_COMMAND:
        return False
    for value in values:
        if type(value) is not str or not 1 <= len(value) <= MAX_SEGMENT_REF_CHARS:
            return False
    return len(values) < 2 or len(set(values)) == len(values)


def _json(text: str, must_be_object: bool) -> bool:
    try:
        parsed = parse_json_text(text)
    except JSON_ERRORS:
        return False
    return not must_be_object or type(parsed) is dict


def _definition(segment: Any, ids: list[str]) -> bool:
    return (
        type(segment) is dict
        and segment.keys() == _DEFINITION_FIELDS
        and type(segment["id"]) is str
        and 1 <= len(segment["id"]) <= MAX_SEGMENT_REF_CHARS
        and segment["id"] == ids[0]
        and _optional_text(segment["name"])
        and _optional_text(segment["description"])
        and _optional_text(segment["broadcast_medium_id"])
        and _optional_text(segment["segment_type"])
    )


def _person(person: Any, user_key: str) -> bool:
    if type(person) is not dict or person.keys() != _PERSON_FIELDS:
        return False
    external_id = person["external_id"]
    if type(external_id) is not str or not external_id:
        return False
    if not (
        _optional_text(person["first_name"])
        and _optional_text(person["last_name"])
        and _optional_text(person["email"])
        and _optional_text(person["phone"])
    ):
        return False
    tags = person["substitution_tags"]
    if type(tags) is not list:
        return False
    for tag in tags:
        if type(tag) is not dict or tag.keys() != _TAG_FIELDS:
            return False
        if type(tag["tag"]) is not str or not tag["tag"] or type(tag["value"]) is not str:
            return False
    # user_id:{external_id} with the identifier already clean (the key was checked canonical).
    return user_key == "user_id:" + external_id


def _clean(value: str) -> bool:
    """``clean_identifier(value) == value`` for the common case (printable, not padded)."""
    return 0 < len(value) <= MAX_IDENTIFIER_CHARS and value.isprintable() and value.strip() == value


def _canonical(key: str) -> bool:
    """``parse_user_key`` accepts ``key``: decided here for plain keys, else by it."""
    prefix, _, rest = key.partition(":")
    if prefix in _SIMPLE_KEY_TYPES:
        if _clean(rest):
            return True
    elif prefix == "account":
        compartment, sep, account = rest.partition(":")
        if sep and _clean(compartment) and _clean(account):
            return True
    elif prefix == "email":
        local, _, domain = rest.rpartition("@")
        if local and domain and _clean(rest) and rest.lower() == rest:
            return True
    try:
        parse_user_key(key)
    except UserKeyError:
        return False
    return True
