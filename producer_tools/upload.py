"""Upload one import file as an execution: read, validate, reject, produce, account.

The same content uploaded again under the same import name reuses its execution — the
reader then yields the same command ids, versions and sequence numbers, so re-producing
changes nothing in effect, and an upload killed half-way completes the same execution when
re-run. A SUCCEEDED execution is not produced again at all.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from cassandra import DriverException, RequestExecutionException
from cassandra.cluster import NoHostAvailable

from producer_tools.interrupts import DeferredInterrupt
from producer_tools.kafka_sink import CommandSink
from producer_tools.readers.base import ReadContext, Reader, ReaderLimits
from producer_tools.readers.registry import make_reader
from segflow.contract.codec import default_codec
from segflow.contract.errors import RecordError
from segflow.contract.records import CommandRecord
from segflow.contract.routing import message_key
from segflow.db.executions import Execution, ExecutionStore, Status
from segflow.errors import ExitCode, SegflowError
from segflow.headers import EXECUTION_ID, SEQUENCE, SOURCE_FILE, SOURCE_LINE

SAVE_EVERY_S = 5.0
PERCENT_MIN_LINES = 1000
# The final status is retried this long when Cassandra does not answer, so a short outage at
# the end of an upload does not leave its execution RUNNING.
FINAL_SAVE_TIMEOUT_S = 60.0
# Cassandra not answering (timeouts, unavailable, no host): a progress save is skipped.
CASSANDRA_ERRORS: tuple[type[Exception], ...] = (
    DriverException,
    RequestExecutionException,
    NoHostAvailable,
)


class MaxErrorsExceededError(RuntimeError):
    """More rejected lines than ``--max-errors`` allows."""


class InputBrokenError(RuntimeError):
    """The reader had to stop (corrupt gzip, broken JSON document, size cap): rest unread."""


class ExecutionCanceledError(RuntimeError):
    """``segflow executions cancel`` ended the execution while it was being uploaded."""


class RejectsPathError(SegflowError):
    """The rejects path would overwrite the input or write through a symlink (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.USAGE)


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

    Opened lazily: a clean file leaves no empty rejects file behind, and nothing is ever
    deleted (an older rejects file at the path stays; ``stale`` says so). ``input_path`` is
    the file being read: a rejects path that is the same file (same inode: the path itself, a
    hard link, a symlink to it) is refused before anything is truncated. With
    ``follow_symlinks=False`` (the default path, which the user did not choose) a symlink at
    the path is refused instead of written through.
    """

    def __init__(
        self, path: Path, *, input_path: Path | None = None, follow_symlinks: bool = True
    ) -> None:
        self.path = path
        self.count = 0
        self.stale = False
        self._input = input_path
        self._follow = follow_symlinks
        self._handle: IO[str] | None = None

    def check(self) -> None:
        """Refuse the path before the upload starts (``RejectsPathError``, exit 2)."""
        if not self._follow and self.path.is_symlink():
            raise RejectsPathError(
                f"refusing to write rejects through the symlink {self.path}; "
                "remove it or name a rejects file with --rejects"
            )
        if self._input is not None and self.path.exists():
            try:
                same = self.path.samefile(self._input)
            except OSError:
                same = False
            if same:
                raise RejectsPathError(
                    f"--rejects {self.path} is the input file {self._input}; "
                    "name another rejects file"
                )

    def write(self, error: RecordError) -> None:
        """Append one rejected line."""
        if self._handle is None:
            self._handle = self._open()
        self._handle.write(json.dumps(error.to_reject(), ensure_ascii=False) + "\n")
        if not error.notice:  # a notice's record was produced: not a rejected line
            self.count += 1

    def _open(self) -> IO[str]:
        self.check()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | (0 if self._follow else os.O_NOFOLLOW)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RejectsPathError(
                    f"refusing to write rejects through the symlink {self.path}"
                ) from None
            raise
        # Compare inodes on the open file before truncating: nothing can swap it in between.
        opened = os.fstat(fd)
        if self._input is not None:
            source = os.stat(self._input)
            if (opened.st_dev, opened.st_ino) == (source.st_dev, source.st_ino):
                os.close(fd)
                raise RejectsPathError(f"--rejects {self.path} is the input file {self._input}")
        os.ftruncate(fd, 0)
        return os.fdopen(fd, "w", encoding="utf-8")

    def close(self) -> None:
        """Flush and close; an older file at the path is left alone (``stale``)."""
        if self._handle is not None:
            self._handle.close()
        else:
            self.stale = self.path.exists()


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
    save_every_s: float = SAVE_EVERY_S,
    admit: Callable[[int, CommandRecord], RecordError | None] | None = None,
) -> Reader:
    """Read ``path`` and produce its commands for ``execution`` (``sink=None``: dry run).

    ``path`` may also be a binary stream (an HTTP request body), named by the execution's
    ``file_name``. ``admit`` may turn a valid command into a rejected one before it is
    produced (the HTTP API refuses unknown Village segments at request time).

    Updates the execution's counters as it goes (saved every ``save_every_s`` when ``store``
    is given; a save Cassandra does not answer is skipped, not fatal) and leaves its final
    status to the caller; raises ``MaxErrorsExceededError`` when the budget is crossed (what
    was produced stays valid), ``ExecutionCanceledError`` at the first save after
    ``executions cancel``, ``KeyboardInterrupt`` between two records once ``interrupt`` was
    requested (Ctrl-C).
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
    last_save = time.monotonic()

    def save_progress() -> None:
        nonlocal last_save
        if store is None:
            return
        now = time.monotonic()
        if now - last_save < save_every_s:
            return
        last_save = now
        _count(execution, reader, rejects, sequence)
        try:
            if not store.save(execution):
                raise ExecutionCanceledError(execution.error or "execution canceled")
        except CASSANDRA_ERRORS as exc:
            _warn(f"progress of execution {execution.execution_id} not saved ({_name(exc)})")

    last_progress = time.monotonic()
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
                if rejects.count & 0x3FF == 0:
                    save_progress()
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
                save_progress()
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
    """Record the final status (and error) of an execution.

    A CANCELED execution stays CANCELED (``execution`` then says so). Cassandra not answering
    is retried for ``FINAL_SAVE_TIMEOUT_S``; after that a ``SegflowError`` says the status
    could not be recorded (the upload itself is flushed by then).
    """
    execution.status = status
    execution.error = error
    if store is None:
        return
    deadline = time.monotonic() + FINAL_SAVE_TIMEOUT_S
    delay = 0.5
    while True:
        try:
            store.save(execution)
            return
        except CASSANDRA_ERRORS as exc:
            if time.monotonic() >= deadline:
                raise SegflowError(
                    f"execution {execution.execution_id}: could not record its final status "
                    f"{status.value} ({_name(exc)} after {FINAL_SAVE_TIMEOUT_S:.0f}s); every "
                    "record was flushed to Kafka; re-run the upload to record it"
                ) from None
            _warn(f"final status of execution {execution.execution_id} not saved yet, retrying")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _name(exc: BaseException) -> str:
    return type(exc).__name__


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr, flush=True)


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
        f"execution {execution.execution_id} {execution.status.value} "
        f"({execution.applied.value}): "
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
        "applied": execution.applied.value,
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
