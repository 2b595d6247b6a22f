"""Field coercions shared by the readers; each failure names the field and the reason.

CSV cells are always text and JSON producers are loose with types (ids sent as numbers,
integers as ``60.0``), so the readers accept the unambiguous spellings of a value and refuse
the rest: an integer may come as a JSON integer, an integral JSON number or a decimal string;
booleans are never numbers; an id may come as a string or an integer.
"""

from __future__ import annotations

import math
import re
from typing import Any

from segflow.contract.jsontext import parse_json_text

_DECIMAL = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class FieldError(Exception):
    """A field value the contract refuses."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def type_name(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def is_absent(value: Any) -> bool:
    """Null, missing and empty text all mean "not given" (a CSV cell cannot tell them apart)."""
    return value is None or value == ""


def as_identifier(value: Any, field: str, max_chars: int) -> str | None:
    """An id (string or integer) as trimmed text; None when absent."""
    if type(value) is str:
        text = value.strip()
    elif value is None:
        return None
    elif type(value) is int:
        text = str(value)
    else:
        raise FieldError(field, f"must be a string, got {type_name(value)}")
    if not text:
        return None
    if len(text) > max_chars:
        raise FieldError(field, f"longer than {max_chars} characters")
    if not text.isprintable() and _CONTROL.search(text):
        raise FieldError(field, "contains control characters")
    return text


def as_text(value: Any, field: str, max_chars: int) -> str | None:
    """Free text (names, descriptions) kept as sent; numbers become their JSON text."""
    if type(value) is str:
        text = value
    elif value is None:
        return None
    elif type(value) is int or type(value) is float:
        text = repr(value) if math.isfinite(value) else ""
    elif type(value) is bool:
        text = "true" if value else "false"
    else:
        raise FieldError(field, f"must be a string, got {type_name(value)}")
    if len(text) > max_chars:
        raise FieldError(field, f"longer than {max_chars} characters")
    return text


def as_int(value: Any, field: str) -> int | None:
    """An integer: JSON integer, integral JSON number, or decimal text; None when absent."""
    if type(value) is int:
        return value
    if is_absent(value):
        return None
    if type(value) is float:
        if value.is_integer():
            return int(value)
        raise FieldError(field, f"must be an integer, got {value!r}")
    if type(value) is str:
        text = value.strip()
        if _DECIMAL.fullmatch(text) and len(text) <= 20:
            return int(text)
        raise FieldError(field, f"must be an integer, got {text[:40]!r}")
    raise FieldError(field, f"must be an integer, got {type_name(value)}")


def as_number_floor(value: Any, field: str) -> int | None:
    """A number truncated to an integer (``expiration_ts`` is a "Number"); None when absent."""
    if type(value) is int:
        return value
    if is_absent(value):
        return None
    if type(value) is str:
        text = value.strip()
        if _DECIMAL.fullmatch(text) and len(text) <= 20:
            return int(text)
        if not _NUMBER.fullmatch(text) or len(text) > 40:
            raise FieldError(field, f"must be a number, got {text[:40]!r}")
        value = float(text)
    if type(value) is float:
        if not math.isfinite(value):
            raise FieldError(field, "must be a finite number")
        return math.floor(value)
    raise FieldError(field, f"must be a number, got {type_name(value)}")


def json_list_cell(value: Any, field: str) -> Any:
    """A CSV list cell: JSON array text (``["a","b"]``) parsed; absent stays None."""
    if is_absent(value):
        return None
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str) or not text.startswith("["):
        raise FieldError(field, 'a list cell must hold a JSON array, e.g. ["a","b"]')
    try:
        return parse_json_text(text)
    except ValueError as exc:
        raise FieldError(field, f"not a valid JSON array: {exc}") from None


def encodable(text: str, field: str) -> str:
    """Refuse text Avro cannot carry as UTF-8 (lone surrogates from ``\\ud800`` escapes)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        raise FieldError(field, "contains an unpaired UTF-16 surrogate escape") from None
    return text
