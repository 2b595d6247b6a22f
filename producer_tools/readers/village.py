"""Village Segments API calls (seed 002) as NDJSON: one add/block/reset per line.

Village overrides are the *override layer*: add forces a user in, block forces them out,
reset removes the override. Rules (each failure names the field):

* ``user`` mandatory: containing ``@`` -> ``email:{trimmed, lower-cased}``, otherwise
  ``user_id:{trimmed}``.
* ``segment_id`` mandatory integer (a decimal string is accepted) -> its decimal text.
* ``user_status`` mandatory: ``add`` | ``block`` | ``reset``.
* ``metadata`` optional object -> compact JSON text (size-capped); ``reference_id`` and
  ``description`` optional text.
* ``status_change_timestamp`` optional Unix seconds; version = seconds * 1e6 + line, or the
  execution's created time (µs) + line when absent (Village uses the time it received the
  data).
"""

from __future__ import annotations

from typing import Any, ClassVar

from producer_tools.readers.base import LineBuilder, NdjsonReader
from producer_tools.readers.fields import (
    FieldError,
    as_identifier,
    as_int,
    as_text,
    is_absent,
    type_name,
)
from segflow.contract.enums import Operation, Source
from segflow.contract.errors import RecordError
from segflow.contract.ids import MAX_TIMESTAMP_S, MAX_VERSION, village_version
from segflow.contract.jsontext import compact_json
from segflow.contract.models import MAX_SEGMENT_REF_CHARS
from segflow.contract.records import CommandRecord
from segflow.contract.user_keys import MAX_IDENTIFIER_CHARS, UserKeyError, village_user_key

KNOWN_FIELDS = frozenset(
    {
        "user",
        "segment_id",
        "user_status",
        "metadata",
        "reference_id",
        "status_change_timestamp",
        "description",
    }
)
_STATUSES = {
    "add": Operation.OVERRIDE_ADD.value,
    "block": Operation.OVERRIDE_BLOCK.value,
    "reset": Operation.OVERRIDE_RESET.value,
}


class VillageReader(NdjsonReader):
    """NDJSON of Village segment status changes (a pretty-printed object is one command)."""

    format_name: ClassVar[str] = "village"
    source: ClassVar[Source] = Source.VILLAGE

    def line_builder(self) -> LineBuilder:
        """``build``, bound once per file."""
        return self.build

    def build(self, obj: Any, line: int, raw: bytes | str) -> CommandRecord | RecordError:
        """Validate one parsed line into an OVERRIDE_* command."""
        if type(obj) is not dict:
            return self.error(line, None, f"line is a JSON {type_name(obj)}, not an object", raw)
        if not KNOWN_FIELDS.issuperset(obj):
            problem = self.unknown_fields(set(obj) - KNOWN_FIELDS, line, raw)
            if problem is not None:
                return problem
        try:
            return self._build(obj, line)
        except FieldError as exc:
            return self.error(line, exc.field, exc.reason, raw)

    def _build(self, obj: dict[str, Any], line: int) -> CommandRecord:
        limits = self.limits
        user = obj.get("user")
        if is_absent(user):
            raise FieldError("user", "missing (an e-mail or a user id)")
        user_text = as_identifier(user, "user", MAX_IDENTIFIER_CHARS)
        if user_text is None:
            raise FieldError("user", "missing (an e-mail or a user id)")
        try:
            user_key = village_user_key(user_text)
        except UserKeyError as exc:
            raise FieldError("user", str(exc)) from None

        segment_value = obj.get("segment_id")
        if is_absent(segment_value):
            raise FieldError("segment_id", "missing (integer)")
        segment_number = as_int(segment_value, "segment_id")
        if segment_number is None or segment_number < 0:
            raise FieldError("segment_id", "must be a non-negative integer")
        segment_id = str(segment_number)
        if len(segment_id) > MAX_SEGMENT_REF_CHARS:
            raise FieldError("segment_id", "too long")

        status = obj.get("user_status")
        operation = _STATUSES.get(status) if type(status) is str else None
        if operation is None:
            if is_absent(status):
                raise FieldError("user_status", "missing (add, block or reset)")
            raise FieldError(
                "user_status", f"must be add, block or reset, got {str(status)[:40]!r}"
            )

        metadata = obj.get("metadata")
        metadata_text: str | None = None
        if metadata is not None:
            if type(metadata) is not dict:
                raise FieldError("metadata", f"must be an object, got {type_name(metadata)}")
            try:
                metadata_text = compact_json(metadata)
            except ValueError as exc:
                raise FieldError("metadata", str(exc)) from None
            if len(metadata_text.encode()) > limits.max_metadata_bytes:
                raise FieldError(
                    "metadata",
                    f"larger than {limits.max_metadata_bytes} bytes (max_metadata_bytes)",
                )
        reference_id = as_text(obj.get("reference_id"), "reference_id", limits.max_text_chars)
        description = as_text(obj.get("description"), "description", limits.max_text_chars)

        timestamp = as_int(obj.get("status_change_timestamp"), "status_change_timestamp")
        if timestamp is None:
            version = self.ids.line_version(line)
        elif not 0 <= timestamp <= MAX_TIMESTAMP_S:
            raise FieldError(
                "status_change_timestamp",
                f"must be Unix seconds between 0 and {MAX_TIMESTAMP_S} "
                "(milliseconds are not accepted)",
            )
        else:
            version = village_version(timestamp, line)
            if version > MAX_VERSION:
                raise FieldError(
                    "status_change_timestamp",
                    f"with line {line} the version passes the last µs of year 9999 "
                    "(the contract's maximum version)",
                )

        record = self.template.copy()
        record["command_id"] = self.ids.command_id(line)
        record["operation"] = operation
        record["version"] = version
        record["user_key"] = user_key
        record["segment_ids"] = [segment_id]
        record["metadata"] = metadata_text
        record["reference_id"] = reference_id
        record["description"] = description
        record["origin"] = {"file": self.file, "line": line}
        return record
