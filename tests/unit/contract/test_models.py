"""The pydantic models: field-for-field agreement with the .avsc, and the contract's rules."""

from __future__ import annotations

import enum
import json
import types
import typing
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError

from segflow.contract.errors import ContractError
from segflow.contract.ids import MAX_VERSION
from segflow.contract.models import (
    InvalidCommandError,
    SegmentCommand,
    validate_record,
)
from segflow.contract.schema import SCHEMA_FILE
from segflow.resources import schemas_dir

SCHEMA = json.loads((schemas_dir() / SCHEMA_FILE).read_text())


def _avro_shape(node: Any, names: dict[str, Any]) -> Any:
    """A comparable description of an Avro type."""
    if isinstance(node, list):
        assert len(node) == 2, "only [null, T] unions are used"
        assert node[0] == "null", "only [null, T] unions are used"
        return ("nullable", _avro_shape(node[1], names))
    if isinstance(node, str):
        if node in names:
            return _avro_shape(names[node], names)
        return node
    kind = node["type"]
    if kind == "enum":
        names[node["name"]] = node
        return ("enum", tuple(node["symbols"]))
    if kind == "array":
        return ("array", _avro_shape(node["items"], names))
    if kind == "record":
        names[node["name"]] = node
        return (
            "record",
            tuple(
                (f["name"], _avro_shape(f["type"], names), "default" in f, f.get("default"))
                for f in node["fields"]
            ),
        )
    return _avro_shape(kind, names)


def _model_shape(annotation: Any) -> Any:
    """The same description built from a pydantic annotation."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _model_shape(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        assert len(args) == 1
        assert type(None) in get_args(annotation)
        return ("nullable", _model_shape(args[0]))
    if origin is list:
        return ("array", _model_shape(get_args(annotation)[0]))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return ("enum", tuple(member.value for member in annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return ("record", _model_fields(annotation))
    if annotation is str:
        return "string"
    if annotation is int:
        return "long"
    raise AssertionError(f"unmapped annotation {annotation!r}")


def _model_fields(model: type[BaseModel]) -> tuple[Any, ...]:
    hints = typing.get_type_hints(model, include_extras=True)
    out = []
    for name, info in model.model_fields.items():
        has_default = not info.is_required()
        default = info.get_default(call_default_factory=True) if has_default else None
        out.append((name, _model_shape(hints[name]), has_default, default))
    return tuple(out)


def test_model_and_avsc_agree_field_by_field() -> None:
    avro = _avro_shape(SCHEMA, {})
    model = ("record", _model_fields(SegmentCommand))
    avro_fields = {f[0]: f[1:] for f in avro[1]}
    model_fields = {f[0]: f[1:] for f in model[1]}
    assert list(avro_fields) == list(model_fields), "field names or order differ"
    for name, shape in avro_fields.items():
        assert model_fields[name] == shape, name


def _valid() -> dict[str, Any]:
    return {
        "command_id": "c" * 32,
        "execution_id": "e",
        "source": "MEDIARITHMICS",
        "operation": "FEED_ADD",
        "version": 10,
        "user_key": "email_hash:abc",
        "segment_ids": ["1"],
    }


def test_a_valid_record_validates() -> None:
    command = validate_record(_valid())
    assert command.operation == "FEED_ADD"
    assert command.to_record()["segment_technical_names"] == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"user_key": None}, "needs a user_key"),
        ({"user_key": "mail:x"}, "unknown user key type"),
        ({"user_key": "email:A@b"}, "not canonical"),
        ({"user_key": "account:1"}, "account keys are"),
        ({"segment_ids": []}, "at least one segment"),
        ({"segment_ids": ["1", "1"]}, "duplicates"),
        ({"segment_ids": [""]}, "at least 1 character"),
        ({"version": 0}, "greater than or equal to 1"),
        ({"version": "5"}, "valid integer"),
        ({"source": "KAFKA"}, "Input should be"),
        ({"data_bag": "{not json"}, "data_bag is not valid JSON"),
        ({"data_bag": "NaN"}, "data_bag is not valid JSON"),
        ({"operation": "FEED_REMOVE", "data_bag": "{}"}, "data_bag is not allowed"),
        ({"operation": "FEED_REMOVE", "expires_at_ms": 5}, "expires_at_ms is not allowed"),
        ({"expires_at_ms": -1}, "greater than or equal to 0"),
        ({"metadata": "{}"}, "metadata is not allowed"),
        ({"operation": "OVERRIDE_ADD", "metadata": "[1]"}, "metadata must be a JSON object"),
        ({"operation": "REPLACE_BEGIN"}, "user_key must be null"),
        ({"operation": "REPLACE_BEGIN", "user_key": None}, "carries the segment definition"),
        (
            {
                "operation": "REPLACE_BEGIN",
                "user_key": None,
                "segment": {"id": "2"},
            },
            "segment.id differs",
        ),
        (
            {"operation": "REPLACE_END", "user_key": None, "segment_technical_names": ["t"]},
            "exactly one segment",
        ),
        ({"operation": "REPLACE_END", "user_key": None}, "carries member_count"),
        ({"operation": "REPLACE_MEMBER", "user_key": "user_id:x"}, "carries the person"),
        (
            {
                "operation": "REPLACE_MEMBER",
                "user_key": "user_id:x",
                "person": {"external_id": "y"},
            },
            "user_id:{person.external_id}",
        ),
        ({"person": {"external_id": "y"}}, "person is not allowed"),
        ({"member_count": 1}, "member_count is not allowed"),
        ({"extra": 1}, "Extra inputs are not permitted"),
    ],
)
def test_contract_rules_are_enforced(changes: dict[str, Any], message: str) -> None:
    record = {**_valid(), **changes}
    with pytest.raises(InvalidCommandError, match=None) as caught:
        validate_record(record)
    assert message in str(caught.value), str(caught.value)
    assert isinstance(caught.value, ContractError)
    with pytest.raises(ValidationError):
        SegmentCommand.from_record(record)


def test_models_are_frozen() -> None:
    command = validate_record(_valid())
    with pytest.raises(ValidationError):
        command.version = 3


def test_a_version_after_year_9999_is_invalid_and_named() -> None:
    """Versions are times too (event day, updated_at): the contract stops at year 9999."""
    validate_record({**_valid(), "version": MAX_VERSION})
    for version in (MAX_VERSION + 1, (1 << 63) - 1):
        with pytest.raises(InvalidCommandError, match=r"^version: .*less than or equal"):
            validate_record({**_valid(), "version": version})


@pytest.mark.parametrize(
    "user_key",
    ["jane.doe@example.com", "Email:jane.doe@example.com", "email:Jane.Doe@example.com",
     "jane.doe@example.com:x", "user_id: jane.doe@example.com"],
)  # fmt: skip
def test_invalid_user_keys_are_not_quoted_in_the_reason(user_key: str) -> None:
    """The reason becomes the dead-letter ``dlq.error`` header: no user key in it (issue 13)."""
    with pytest.raises(InvalidCommandError) as caught:
        validate_record({**_valid(), "user_key": user_key})
    assert "jane" not in str(caught.value).lower(), str(caught.value)
