"""The data a batch turns into, shared by the planner (which builds it) and the loop and
writer (which carry it out): it sits beneath both, so neither imports the other's internals.

Stages, one name each: **decode** (Avro bytes -> dict) -> **validate** (contract rules) ->
**plan** (dict -> ``Write`` list, pure) -> **write** (Cassandra) -> **commit** (Kafka offsets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cassandra.query import UNSET_VALUE

from consumer.dead_letter import DeadLetter
from consumer.statements import Stmt


@dataclass(frozen=True, slots=True)
class Write:
    """One statement execution: which prepared statement and its bound values, in order."""

    stmt: Stmt
    values: tuple[Any, ...]


# A column the write must leave untouched: the driver's own marker, so values bind as planned
# without copying every tuple to swap a marker of ours.
UNSET: Any = UNSET_VALUE


@dataclass
class PlannedBatch:
    """Everything one batch of records turns into, and the offsets to store once written."""

    writes: list[Write] = field(default_factory=list)
    extra: list[tuple[Any, tuple[Any, ...]]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    applied_by_operation: dict[str, int] = field(default_factory=dict)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    dead_letters_sent: bool = False
    # The records the batch was planned from (set by the loop): a batch Cassandra refuses in
    # part is re-planned record by record to find the records to dead-letter.
    messages: list[Any] = field(default_factory=list)
