"""The data a batch turns into, shared by the planner (which builds it) and the loop and
writer (which carry it out): it sits beneath both, so neither imports the other's internals.

Stages, one name each: **decode** (Avro bytes -> dict) -> **validate** (contract rules) ->
**plan** (dict -> ``Write`` list, pure) -> **write** (Cassandra) -> **commit** (Kafka offsets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from consumer.dead_letter import DeadLetter
from consumer.statements import Stmt


@dataclass(frozen=True, slots=True)
class Write:
    """One statement execution: which prepared statement and its bound values, in order."""

    stmt: Stmt
    values: tuple[Any, ...]


class Unset:
    """Marker for a column the write must leave untouched (bound as the driver's UNSET)."""


UNSET = Unset()


@dataclass
class PlannedBatch:
    """Everything one batch of records turns into, and the offsets to store once written."""

    writes: list[Write] = field(default_factory=list)
    extra: list[tuple[Any, tuple[Any, ...]]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    applied_by_operation: dict[str, int] = field(default_factory=dict)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    dead_letters_sent: bool = False
