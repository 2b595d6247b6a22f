"""The Kafka message key of a command: what keeps related commands ordered on one partition.

Per-user commands are keyed by the canonical user key (all of one user's commands stay in
order, whatever the source); the records of a replace are keyed by the segment id so BEGIN,
the members and END of one replace stay together and in order. Ordering is a convenience,
not the correctness argument (versions are), but it keeps the consumer's batches coherent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segflow.contract.enums import REPLACE_OPERATIONS


def message_key(record: Mapping[str, Any]) -> bytes:
    """UTF-8 Kafka key for ``record`` (a ``CommandRecord``)."""
    if record["operation"] in REPLACE_OPERATIONS:
        return str(record["segment_ids"][0]).encode()
    user_key = record["user_key"]
    if user_key is None:
        raise ValueError(f"{record['operation']} command without user_key")
    return str(user_key).encode()
