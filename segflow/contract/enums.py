"""The two enums of the contract, shared by the Avro schema, the models and the readers.

They are ``StrEnum`` so a member *is* its Avro symbol: readers put members straight into the
wire dicts and decoded records (plain strings) compare equal to them.
"""

from __future__ import annotations

from enum import StrEnum


class Source(StrEnum):
    """Upstream system (format) a command came from."""

    MEDIARITHMICS = "MEDIARITHMICS"
    VILLAGE = "VILLAGE"
    SEGMENTER = "SEGMENTER"
    PRODUCER = "PRODUCER"


class Operation(StrEnum):
    """What a command does to the membership state (see schemas/README.md)."""

    FEED_ADD = "FEED_ADD"
    FEED_REMOVE = "FEED_REMOVE"
    OVERRIDE_ADD = "OVERRIDE_ADD"
    OVERRIDE_BLOCK = "OVERRIDE_BLOCK"
    OVERRIDE_RESET = "OVERRIDE_RESET"
    REPLACE_BEGIN = "REPLACE_BEGIN"
    REPLACE_MEMBER = "REPLACE_MEMBER"
    REPLACE_END = "REPLACE_END"


FEED_OPERATIONS = frozenset({Operation.FEED_ADD, Operation.FEED_REMOVE})
OVERRIDE_OPERATIONS = frozenset(
    {Operation.OVERRIDE_ADD, Operation.OVERRIDE_BLOCK, Operation.OVERRIDE_RESET}
)
REPLACE_OPERATIONS = frozenset(
    {Operation.REPLACE_BEGIN, Operation.REPLACE_MEMBER, Operation.REPLACE_END}
)
# The only operations whose records carry no user (they are about the segment as a whole).
SEGMENT_LEVEL_OPERATIONS = frozenset({Operation.REPLACE_BEGIN, Operation.REPLACE_END})
