"""Decode, validate and plan one batch of Kafka records (the consumer's ``BatchPlanner``).

Each record ends in exactly one of two places: its writes (plus an ``applied`` progress
mark) or the dead-letter topic (plus a ``dead_lettered`` mark). A record naming several
segments is applied to all of them or dead-lettered whole, never half.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from typing import Any

from consumer.batch import PlannedBatch, Write
from consumer.dead_letter import DeadLetter
from consumer.plan import Context, plan_command
from segflow.contract.codec import Codec, writer_fingerprint
from segflow.contract.enums import SEGMENT_LEVEL_OPERATIONS
from segflow.contract.errors import DecodeError, DecodeReason
from segflow.contract.models import InvalidCommandError
from segflow.contract.records import CommandRecord
from segflow.contract.schema import fingerprint_text
from segflow.contract.validation import check_record
from segflow.db.executions import ExecutionStore
from segflow.db.registry import Segment, SegmentRegistry
from segflow.headers import EXECUTION_ID, SEQUENCE


class UnknownSegmentError(LookupError):
    """A referenced segment is not registered (policy ``reject``)."""


class CommandPlanner:
    """Plans the writes of a batch against the segment registry."""

    def __init__(
        self,
        codec: Codec,
        registry: SegmentRegistry,
        executions: ExecutionStore,
        unknown_segment_policy: str,
        events_ttl_s: int,
    ) -> None:
        self._codec = codec
        self._registry = registry
        self._executions = executions
        self._create_unknown = unknown_segment_policy == "create"
        self._events_ttl_s = events_ttl_s

    def plan(self, messages: list[Any]) -> PlannedBatch:
        """Everything the batch's records turn into, and the offsets to store afterwards."""
        ctx = Context(now_ms=int(time.time() * 1000), events_ttl_s=self._events_ttl_s)
        batch = PlannedBatch()
        applied: list[tuple[str, int]] = []
        dead: list[tuple[str, int]] = []
        operations: Counter[str] = Counter()
        for message in messages:
            key = (message.topic(), message.partition())
            batch.next_offsets[key] = max(batch.next_offsets.get(key, 0), message.offset() + 1)
            headers = list(message.headers() or [])
            execution_id = _header(headers, EXECUTION_ID)
            sequence = _sequence(headers)
            try:
                record = self._codec.decode(message.value() or b"")
            except DecodeError as exc:
                batch.dead_letters.append(_undecodable(message, headers, exc, execution_id))
                _mark(dead, execution_id, sequence)
                continue
            execution_id = record["execution_id"] or execution_id
            try:
                check_record(record)
                batch.writes.extend(self._plan(record, ctx))
            except InvalidCommandError as exc:
                batch.dead_letters.append(
                    _letter(message, headers, "invalid", str(exc), execution_id)
                )
                _mark(dead, execution_id, sequence)
                continue
            except UnknownSegmentError as exc:
                batch.dead_letters.append(
                    _letter(message, headers, "unknown_segment", str(exc), execution_id)
                )
                _mark(dead, execution_id, sequence)
                continue
            operations[record["operation"].lower()] += 1
            _mark(applied, execution_id, sequence)
        batch.extra = self._executions.record_progress(applied, dead)
        batch.applied_by_operation = dict(operations)
        return batch

    def reject(self, message: Any, reason: str, error: str) -> PlannedBatch:
        """Dead-letter one record the planner accepted but Cassandra refused to store."""
        headers = list(message.headers() or [])
        execution_id = _header(headers, EXECUTION_ID)
        dead: list[tuple[str, int]] = []
        _mark(dead, execution_id, _sequence(headers))
        batch = PlannedBatch(
            dead_letters=[_letter(message, headers, reason, error, execution_id)],
            extra=self._executions.record_progress([], dead),
        )
        key = (message.topic(), message.partition())
        batch.next_offsets[key] = message.offset() + 1
        return batch

    def _plan(self, record: CommandRecord, ctx: Context) -> list[Write]:
        operation = record["operation"]
        if operation in SEGMENT_LEVEL_OPERATIONS:
            # Segment-level records name exactly one segment id (validation) and carry the
            # definition Segmenter documents upsert.
            definition = record["segment"] or {"id": record["segment_ids"][0]}
            return plan_command(record, [self._segmenter_segment(definition)], ctx)
        return plan_command(record, self._resolve(record), ctx)

    def _segmenter_segment(self, definition: Any) -> Segment:
        """Segmenter documents upsert their segment: create it when new."""
        segment = self._registry.get(definition["id"]) or self._registry.get(
            definition["id"], fresh=True
        )
        if segment is None:
            # Identity only: the definition is written by plan_definition at the record's
            # version, never at the creation's wall clock (it would shadow older versions).
            segment, _ = self._registry.create(definition["id"])
        return segment

    def _resolve(self, record: CommandRecord) -> list[Segment]:
        ids = list(dict.fromkeys(record["segment_ids"]))
        for name in dict.fromkeys(record["segment_technical_names"]):
            resolved = self._registry.resolve_name(name) or self._registry.resolve_name(
                name, fresh=True
            )
            if resolved is None:
                raise UnknownSegmentError(f"segment technical name {name!r} is not registered")
            if resolved not in ids:
                ids.append(resolved)
        segments: list[Segment] = []
        for segment_id in ids:
            segment = self._registry.get(segment_id) or self._registry.get(segment_id, True)
            if segment is None:
                if not self._create_unknown:
                    raise UnknownSegmentError(f"segment {segment_id!r} is not registered")
                segment, _ = self._registry.create(segment_id)
            segments.append(segment)
        return segments


def _mark(target: list[tuple[str, int]], execution_id: str | None, sequence: int | None) -> None:
    if execution_id and sequence is not None:
        target.append((execution_id, sequence))


def _sequence(headers: list[tuple[str, bytes | None]]) -> int | None:
    raw = _header(headers, SEQUENCE)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _header(headers: list[tuple[str, bytes | None]], name: str) -> str | None:
    for key, value in headers:
        if key == name and value:
            return value.decode("utf-8", errors="replace")
    return None


def _undecodable(
    message: Any, headers: list[tuple[str, Any]], exc: DecodeError, execution_id: str | None
) -> DeadLetter:
    """``unknown_schema`` (a well-formed header naming a writer schema nobody configured:
    fixed by adding the schema, then replaying) apart from ``undecodable`` (broken bytes)."""
    letter = _letter(message, headers, "undecodable", str(exc), execution_id)
    if exc.reason is not DecodeReason.UNKNOWN_FINGERPRINT:
        return letter
    fingerprint = writer_fingerprint(message.value() or b"")
    shown = fingerprint_text(fingerprint) if fingerprint is not None else None
    return dataclasses.replace(letter, reason="unknown_schema", schema_fingerprint=shown)


def _letter(
    message: Any, headers: list[tuple[str, Any]], reason: str, error: str, execution_id: str | None
) -> DeadLetter:
    return DeadLetter(
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        key=message.key(),
        value=message.value(),
        reason=reason,
        error=error,
        execution_id=execution_id,
        original_headers=[(k, v) for k, v in headers if v is not None],
    )
