"""The data a batch turns into, shared by the planner (which builds it) and the loop and
writer (which carry it out): it sits beneath both, so neither imports the other's internals.

Stages, one name each: **decode** (Avro bytes -> dict) -> **validate** (contract rules) ->
**plan** (dict -> ``Write`` list, pure) -> **write** (Cassandra) -> **commit** (Kafka offsets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cassandra.query import UNSET_VALUE

from consumer.dead_letter import DeadLetter
from consumer.statements import Stmt


class Write(NamedTuple):
    """One statement execution: which prepared statement and its bound values, in order.

    A named tuple, not a frozen dataclass: it is built 3-4 times per record on the hot path,
    and a frozen dataclass's ``__init__`` costs several times a tuple's.
    """

    stmt: Stmt
    values: tuple[Any, ...]


# A column the write must leave untouched: the driver's own marker, so planned values are bound
# as they are, without copying each tuple to swap a marker of our own.
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
    # The writes bound and grouped (``consumer.writer.PreparedWrites``), made while the previous
    # batch's writes are in flight; ``None`` until then, and again once the batch is held.
    prepared: Any = None
