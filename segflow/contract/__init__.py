"""The segment-command contract shared by the uploader, the consumer and upstream producers.

* ``codec``: ``encode(record) -> bytes`` and ``decode(bytes) -> record`` (Avro single-object
  encoding, writer schema found by fingerprint among the versions kept in ``schemas/``).
* ``models``: pydantic models (``SegmentCommand`` ...) and ``validate_record``, the definition
  of a valid command. ``validation.check_record``: the consumer's cheap check with the model's
  verdicts. ``fastenc`` / ``fastdec``: encoder and decoder generated from the schema.
* ``records``: ``CommandRecord``, the typed dict the hot path moves.
* ``user_keys``: canonical user keys. ``ids``: command ids and versions.
* ``routing``: ``message_key(record)``. ``errors``: ``DecodeError``, ``RecordError``...

See ``schemas/README.md`` for the rules.
"""

from __future__ import annotations

from segflow.contract.codec import Codec, decode, default_codec, encode
from segflow.contract.enums import Operation, Source
from segflow.contract.errors import (
    ContractError,
    DecodeError,
    DecodeReason,
    EncodeError,
    RecordError,
    SchemaEvolutionError,
)
from segflow.contract.ids import CommandIds
from segflow.contract.models import (
    InvalidCommandError,
    Origin,
    Person,
    SegmentCommand,
    SegmentDefinition,
    SubstitutionTag,
    validate_record,
)
from segflow.contract.records import CommandRecord
from segflow.contract.routing import message_key

__all__ = [
    "Codec",
    "CommandIds",
    "CommandRecord",
    "ContractError",
    "DecodeError",
    "DecodeReason",
    "EncodeError",
    "InvalidCommandError",
    "Operation",
    "Origin",
    "Person",
    "RecordError",
    "SchemaEvolutionError",
    "SegmentCommand",
    "SegmentDefinition",
    "Source",
    "SubstitutionTag",
    "decode",
    "default_codec",
    "encode",
    "message_key",
    "validate_record",
]
