"""Upload one import file as an execution: read, validate, reject, produce, account.

The same content uploaded again under the same import name reuses its execution — the
reader then yields the same command ids, versions and sequence numbers, so re-producing
changes nothing in effect, and an upload killed half-way completes the same execution when
re-run. A SUCCEEDED execution is not produced again at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from producer_tools.interrupts import DeferredInterrupt
from producer_tools.kafka_sink import CommandSink
from producer_tools.readers.base import ReadContext, Reader, ReaderLimits
from producer_tools.readers.registry import make_reader
from segflow.contract.codec import default_codec
from segflow.contract.errors import RecordError
from segflow.contract.records import CommandRecord
from segflow.contract.routing import message_key
from segflow.db.executions import Execution, ExecutionStore, Status
from segflow.headers import EXECUTION_ID, SEQUENCE, SOURCE_FILE, SOURCE_LINE

SAVE_EVERY_S = 5.0
PERCENT_MIN_LINES = 1000


class MaxErrorsExceededError(RuntimeError):
    """More rejected lines than ``--max-errors`` allows."""


class InputBrokenError(RuntimeError):
    """The reader had to stop (corrupt gzip, broken JSON document, size cap): rest unread."""


@dataclass(frozen=True)
class ErrorBudget:
    """``--max-errors``: an absolute count (``N``) or a share of lines read (``N%``)."""

    limit: float
    percent: bool

    @classmethod
    def parse(cls, text: str) -> ErrorBudget:
        """Parse ``N`` or ``N%``."""
        if text.endswith("%"):
            return cls(float(text[:-1]), True)
        return cls(float(int(text)), False)

    def exceeded(self, rejected: int, lines: int, final: bool = False) -> bool:
        """True once ``rejected`` crosses the budget (percentages need some lines first)."""
        if not self.percent:
            return rejected > self.limit
        if not final and lines < PERCENT_MIN_LINES:
            return False
        return lines > 0 and rejected * 100.0 / lines > self.limit

    def __str__(self) -> str:
        return f"{self.limit:g}%" if self.percent else f"{int(self.limit)}"


class RejectsFile:
    """NDJSON rejects, one ``{line, field, reason, raw}`` object per rejected line.

    Opened lazily: a clean file leaves no empty rejects file behind.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._handle: IO[str] | None = None

    def write(self, error: RecordError) -> None:
        """Append one rejected line."""
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("w", encoding="utf-8")
        self._handle.write(json.dumps(error.to_reject(), ensure_ascii=False) + "\n")
        if not error.notice:  # a notice's record was produced: not a rejected line
            self.count += 1

    def close(self) -> None:
        """Flush and close; removes a stale rejects file from an earlier run if none now."""
        if self._handle is not None:
            self._handle.close()
        elif self.path.exists():
            self.path.unlink()


Progress = Callable[[Reader, Execution, RejectsFile], None]


def run_upload(
    path: Path | BinaryIO,
    fmt: str,
    execution: Execution,
    sink: CommandSink | None,
    store: ExecutionStore | None,
    rejects: RejectsFile,
    budget: ErrorBudget,
    strict: bool,
    limits: ReaderLimits,
    progress: Progress,
    interrupt: DeferredInterrupt | None = None,
    admit: Callable[[int, CommandRecord], RecordError | None] | None = None,
) -> Reader:
    """Read ``path`` and produce its commands for ``execution`` (``sink=None``: dry run).

    ``path`` may also be a binary stream (an HTTP request body), named by the execution's
    ``file_name``. ``admit`` may turn a valid command into a rejected one before it is
    produced (the HTTP API refuses unknown Village segments at request time).

    Updates the execution's counters as it goes (saved every few seconds when ``store`` is
    given) and leaves its final status to the caller; raises ``MaxErrorsExceededError`` when
    the budget is crossed (what was produced stays valid), ``KeyboardInterrupt`` between two
    records once ``interrupt`` was requested (Ctrl-C).
    """
    ctx = ReadContext(
        execution_id=execution.execution_id,
        content_sha256=execution.content_sha256,
        created_at_us=execution.created_at_us,
        file_name=path.name if isinstance(path, Path) else execution.file_name,
        strict=strict,
        limits=limits,
    )
    reader = make_reader(fmt, ctx)
    encode = default_codec().encode
    eid_header = (EXECUTION_ID, execution.execution_id.encode())
    file_header = (SOURCE_FILE, ctx.file_name.encode())
    sequence = 0
    last_save = last_progress = time.monotonic()
    try:
        for position, read_item in reader.read(path):
            if interrupt is not None and interrupt.requested:
                raise KeyboardInterrupt
            item = read_item
            if admit is not None and not isinstance(item, RecordError):
                item = admit(position, item) or item
            if isinstance(item, RecordError):
                rejects.write(item)
                if item.notice:
                    continue
                if item.fatal:
                    raise InputBrokenError(f"{item}; the rest of the file was not read")
                if budget.exceeded(rejects.count, reader.lines_read):
                    raise MaxErrorsExceededError(
                        f"{rejects.count} rejected lines after {reader.lines_read} lines read "
                        f"exceed --max-errors {budget}; stopped reading"
                    )
                continue
            if sink is not None:
                sink.produce(
                    message_key(item),
                    encode(item),
                    [
                        eid_header,
                        file_header,
                        (SOURCE_LINE, str(position).encode()),
                        (SEQUENCE, str(sequence).encode()),
                    ],
                )
            sequence += 1
            if sequence & 0x3FF == 0:
                if sink is not None:
                    sink.poll()
                now = time.monotonic()
                if now - last_progress >= 0.5:
                    _count(execution, reader, rejects, sequence)
                    progress(reader, execution, rejects)
                    last_progress = now
                if store is not None and now - last_save >= SAVE_EVERY_S:
                    store.save(execution)
                    last_save = now
    finally:
        _count(execution, reader, rejects, sequence)
    if budget.exceeded(rejects.count, reader.lines_read, final=True):
        raise MaxErrorsExceededError(
            f"{rejects.count} rejected of {reader.lines_read} lines exceed --max-errors {budget}"
        )
    return reader


def _count(execution: Execution, reader: Reader, rejects: RejectsFile, produced: int) -> None:
    execution.lines_read = reader.lines_read
    execution.lines_rejected = rejects.count
    execution.commands_produced = produced


def finish(
    store: ExecutionStore | None, execution: Execution, status: Status, error: str | None = None
) -> None:
    """Record the final status (and error) of an execution."""
    execution.status = status
    execution.error = error
    if store is not None:
        store.save(execution)


def wait_until_landed(
    store: ExecutionStore,
    execution_id: str,
    timeout_s: float,
    on_tick: Callable[[Execution], None] | None = None,
    poll_s: float = 1.0,
) -> tuple[Execution, bool]:
    """Poll until every produced command was applied or dead-lettered; (execution, done)."""
    deadline = time.monotonic() + timeout_s
    while True:
        execution = store.get(execution_id)
        if execution is None:
            raise LookupError(f"execution {execution_id} not found")
        done = execution.landed >= execution.commands_produced
        if on_tick is not None:
            on_tick(execution)
        if done or time.monotonic() >= deadline:
            return execution, done
        time.sleep(poll_s)


def report_line(execution: Execution, seconds: float) -> str:
    """The one-line summary of an execution."""
    rate = execution.lines_read / seconds if seconds > 0 else 0.0
    return (
        f"execution {execution.execution_id} {execution.status.value}: "
        f"{execution.lines_read} lines read, {execution.commands_produced} commands produced, "
        f"{execution.lines_rejected} rejected, {execution.commands_applied} applied, "
        f"{execution.commands_dead_lettered} dead-lettered in {seconds:.1f}s "
        f"({rate:,.0f} lines/s)"
    )


def as_dict(execution: Execution) -> dict[str, Any]:
    """JSON-ready view of an execution (``segflow executions show``)."""
    return {
        "execution_id": execution.execution_id,
        "import_name": execution.import_name,
        "file_name": execution.file_name,
        "format": execution.format,
        "content_sha256": execution.content_sha256,
        "status": execution.status.value,
        "created_at": execution.created_at.isoformat(),
        "updated_at": execution.updated_at.isoformat() if execution.updated_at else None,
        "finished_at": execution.finished_at.isoformat() if execution.finished_at else None,
        "lines_read": execution.lines_read,
        "commands_produced": execution.commands_produced,
        "lines_rejected": execution.lines_rejected,
        "commands_applied": execution.commands_applied,
        "commands_dead_lettered": execution.commands_dead_lettered,
        "error": execution.error,
    }
