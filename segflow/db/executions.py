"""Executions: one per uploaded file content (and import name), with status and exact counts.

The uploader creates and updates an execution; the consumer records, per command sequence
number, which commands of the execution were applied or dead-lettered
(``execution_progress_by_chunk`` sets: adding a number twice changes nothing, so counts stay
exact under redelivery, replay and re-upload of the same file). A partition holds one chunk of
65,536 sequence numbers, so a 100M-command execution never makes one huge partition;
``execution_progress_chunks`` lists the chunks. ``--wait`` and ``segflow executions show`` sum
those sets on read (with the pre-V005 ``execution_progress`` rows, merged block by block).
"""

from __future__ import annotations

import heapq
import uuid
import zlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from segflow.db.session import aware

PROGRESS_BLOCK = 4096
# Blocks per progress partition: a partition holds at most 65,536 sequence numbers per set, so
# a 100M-command execution spreads over 1,526 partitions (schemas/README.md, "Partition sizes").
PROGRESS_BLOCKS_PER_CHUNK = 16
PROGRESS_CHUNK = PROGRESS_BLOCK * PROGRESS_BLOCKS_PER_CHUNK


class Status(StrEnum):
    """Execution lifecycle: PENDING -> RUNNING -> SUCCEEDED | FAILED | CANCELED."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


FINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED})


class Applied(StrEnum):
    """What the consumer made of what the upload produced (next to ``Status``, which is the
    upload's own: SUCCEEDED means every command was *produced*).

    APPLYING: commands produced are still on their way (or the upload still runs); APPLIED:
    the upload ended and every command it produced was applied; APPLIED_WITH_DEAD_LETTERS:
    it ended and every command landed, some in the dead-letter topic.
    """

    APPLYING = "APPLYING"
    APPLIED = "APPLIED"
    APPLIED_WITH_DEAD_LETTERS = "APPLIED_WITH_DEAD_LETTERS"


# The index of ``executions list`` (V011): one partition per hour of creation and shard.
US_PER_HOUR = 3_600_000_000
INDEX_SHARDS = 16
# The tables whose tombstones a re-run could outlive (its commands carry the old versions).
MEMBERSHIP_TABLES = ("feed_by_segment", "override_by_segment", "segments_by_user")


@dataclass
class Execution:
    """One execution row plus the consumer's progress summed from ``execution_progress``."""

    execution_id: str
    import_name: str
    file_name: str
    format: str
    content_sha256: str
    created_at: datetime
    created_at_us: int
    status: Status
    lines_read: int = 0
    commands_produced: int = 0
    lines_rejected: int = 0
    error: str | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    commands_applied: int = 0
    commands_dead_lettered: int = 0

    @property
    def landed(self) -> int:
        """Commands that reached a final outcome in the consumer."""
        return self.commands_applied + self.commands_dead_lettered

    @property
    def applied(self) -> Applied:
        """Whether everything produced has also been applied (``Applied``)."""
        if self.status not in FINAL or self.landed < self.commands_produced:
            return Applied.APPLYING
        if self.commands_dead_lettered:
            return Applied.APPLIED_WITH_DEAD_LETTERS
        return Applied.APPLIED


def new_execution_id() -> str:
    """A random, URL-safe execution id."""
    return uuid.uuid4().hex


_COLUMNS = (
    "execution_id, import_name, file_name, format, content_sha256, created_at, created_at_us, "
    "status, lines_read, commands_produced, lines_rejected, error, updated_at, finished_at"
)


class ExecutionStore:
    """Cassandra access to ``executions``, ``executions_by_content``, ``execution_progress``."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._hours_written: set[int] = set()
        self._insert = session.prepare(
            f"INSERT INTO {{ks}}.executions ({_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._by_content_insert = session.prepare(
            "INSERT INTO {ks}.executions_by_content (content_sha256, import_name, execution_id, "
            "created_at) VALUES (?, ?, ?, ?)"
        )
        self._by_content = session.prepare(
            "SELECT execution_id FROM {ks}.executions_by_content "
            "WHERE content_sha256 = ? AND import_name = ? LIMIT 1"
        )
        self._index = session.prepare(
            "INSERT INTO {ks}.executions_by_hour (hour, shard, created_at_us, execution_id) "
            "VALUES (?, ?, ?, ?)"
        )
        self._index_hour = session.prepare(
            "INSERT INTO {ks}.execution_hours (scope, hour) VALUES ('all', ?)"
        )
        self._hours = session.prepare("SELECT hour FROM {ks}.execution_hours WHERE scope = 'all'")
        self._hours.fetch_size = 100
        self._in_hour = session.prepare(
            "SELECT created_at_us, execution_id FROM {ks}.executions_by_hour "
            "WHERE hour = ? AND shard = ? LIMIT ?"
        )
        self._get = session.prepare(
            f"SELECT {_COLUMNS} FROM {{ks}}.executions WHERE execution_id = ?"
        )
        _set_all = (
            "UPDATE {ks}.executions SET status = ?, lines_read = ?, commands_produced = ?, "
            "lines_rejected = ?, error = ?, updated_at = ?, finished_at = ? "
            "WHERE execution_id = ?"
        )
        self._update = session.prepare(_set_all)
        # A save never overwrites CANCELED (``executions cancel`` while the upload runs): the
        # uploader learns of the cancel from the refused save and stops.
        self._update_unless_canceled = session.prepare(_set_all + " IF status != 'CANCELED'")
        self._update_counters = session.prepare(
            "UPDATE {ks}.executions SET lines_read = ?, commands_produced = ?, "
            "lines_rejected = ?, updated_at = ? WHERE execution_id = ?"
        )
        self._set_status = session.prepare(
            "UPDATE {ks}.executions SET status = ?, error = ?, updated_at = ?, finished_at = ? "
            "WHERE execution_id = ? IF status IN ('PENDING', 'RUNNING')"
        )
        self._chunks = session.prepare(
            "SELECT chunk FROM {ks}.execution_progress_chunks WHERE execution_id = ?"
        )
        self._progress = session.prepare(
            "SELECT block, applied, dead_lettered FROM {ks}.execution_progress_by_chunk "
            "WHERE execution_id = ? AND chunk = ?"
        )
        # Executions consumed before V005 keep their progress in the one-partition table.
        self._legacy_any = session.prepare(
            "SELECT block FROM {ks}.execution_progress WHERE execution_id = ? LIMIT 1"
        )
        self._legacy = session.prepare(
            "SELECT block, applied, dead_lettered FROM {ks}.execution_progress "
            "WHERE execution_id = ? AND block >= ? AND block < ?"
        )
        self._add_chunk = session.prepare(
            "INSERT INTO {ks}.execution_progress_chunks (execution_id, chunk) VALUES (?, ?)"
        )
        self._add_applied = session.prepare(
            "UPDATE {ks}.execution_progress_by_chunk SET applied = applied + ? "
            "WHERE execution_id = ? AND chunk = ? AND block = ?"
        )
        self._add_dead = session.prepare(
            "UPDATE {ks}.execution_progress_by_chunk SET dead_lettered = dead_lettered + ? "
            "WHERE execution_id = ? AND chunk = ? AND block = ?"
        )
        for statement in (self._add_applied, self._add_dead, self._add_chunk):
            statement.is_idempotent = True

    def find_by_content(self, content_sha256: str, import_name: str) -> Execution | None:
        """The newest execution of the same content under the same import name."""
        row = self._session.execute(self._by_content, (content_sha256, import_name)).one()
        return self.get(row.execution_id) if row is not None else None

    def create(
        self, import_name: str, file_name: str, fmt: str, content_sha256: str, created_at_us: int
    ) -> Execution:
        """Record a new PENDING execution."""
        created_at = datetime.fromtimestamp(created_at_us / 1_000_000, tz=UTC)
        execution = Execution(
            execution_id=new_execution_id(),
            import_name=import_name,
            file_name=file_name,
            format=fmt,
            content_sha256=content_sha256,
            created_at=created_at,
            created_at_us=created_at_us,
            status=Status.PENDING,
            updated_at=created_at,
        )
        self._session.execute(
            self._insert,
            (
                execution.execution_id,
                import_name,
                file_name,
                fmt,
                content_sha256,
                created_at,
                created_at_us,
                execution.status.value,
                0,
                0,
                0,
                None,
                created_at,
                None,
            ),
        )
        by_content = self._session.execute_async(
            self._by_content_insert,
            (content_sha256, import_name, execution.execution_id, created_at),
        )
        try:
            for future in [by_content, *self._add_to_index(execution.execution_id, created_at_us)]:
                future.result()
        except Exception:
            self._hours_written.discard(created_at_us // US_PER_HOUR)  # written next time
            raise
        return execution

    def _add_to_index(self, execution_id: str, created_at_us: int) -> list[Any]:
        """The index writes of one execution, sent concurrently (futures to wait on).

        The hour's row is written once per hour and store (an execution per HTTP request
        would otherwise rewrite it every time).
        """
        hour = created_at_us // US_PER_HOUR
        shard = zlib.crc32(execution_id.encode()) % INDEX_SHARDS
        futures = [
            self._session.execute_async(self._index, (hour, shard, created_at_us, execution_id))
        ]
        if hour not in self._hours_written:
            futures.append(self._session.execute_async(self._index_hour, (hour,)))
            self._hours_written.add(hour)
        return futures

    def reindex(self) -> int:
        """Index every execution for ``recent`` (those created before V011); idempotent."""
        count = 0
        for row in self._session.execute("SELECT execution_id, created_at_us FROM {ks}.executions"):
            if row.created_at_us:
                for future in self._add_to_index(row.execution_id, int(row.created_at_us)):
                    future.result()
                count += 1
        return count

    def gc_grace_s(self) -> int:
        """The smallest ``gc_grace_seconds`` of the membership tables, from the driver's schema
        metadata: after that long their tombstones may be purged."""
        keyspace = self._session.cluster.metadata.keyspaces[self._session.keyspace]
        return min(
            int(keyspace.tables[table].options["gc_grace_seconds"]) for table in MEMBERSHIP_TABLES
        )

    def rerun_refusal(self, execution: Execution, now_us: int) -> str | None:
        """Why re-running ``execution`` (same ids and versions) is refused, or None.

        Its commands carry versions as old as its creation. Once the membership tables'
        ``gc_grace_seconds`` have passed since then, a removal written after those versions may
        already be purged on one replica or one view and not on the other, so re-applying the
        old adds could bring removed members back in one view and not the other.
        """
        grace = self.gc_grace_s()
        age_s = (now_us - execution.created_at_us) // 1_000_000
        if age_s <= grace:
            return None
        return (
            f"execution {execution.execution_id} was created {age_s}s ago, more than the "
            f"membership tables' gc_grace_seconds ({grace}s): its commands carry versions that "
            "old, and removals written since may already be purged, so re-applying them could "
            "bring removed members back in one view and not the other; upload it with "
            "--new-execution (new versions: applied as newer data)"
        )

    def start(self, execution: Execution) -> None:
        """Mark the execution RUNNING whatever it was (a re-run of FAILED or CANCELED)."""
        execution.status = Status.RUNNING
        execution.error = None
        execution.finished_at = None
        self._session.execute(self._update, self._values(execution))

    def save(self, execution: Execution) -> bool:
        """Persist status and uploader counters, unless the execution was CANCELED meanwhile.

        Returns False when it was: then only the counters are saved, and ``execution`` takes
        the stored status and error, so the caller stops and reports CANCELED.
        """
        result = self._session.execute(self._update_unless_canceled, self._values(execution))
        if result.was_applied:
            return True
        self._session.execute(
            self._update_counters,
            (
                execution.lines_read,
                execution.commands_produced,
                execution.lines_rejected,
                execution.updated_at,
                execution.execution_id,
            ),
        )
        stored = self._session.execute(self._get, (execution.execution_id,)).one()
        execution.status = Status.CANCELED
        if stored is not None:
            execution.error = stored.error
            execution.finished_at = aware(stored.finished_at)
        return False

    def _values(self, execution: Execution) -> tuple[Any, ...]:
        now = datetime.now(tz=UTC)
        execution.updated_at = now
        if execution.status in FINAL and execution.finished_at is None:
            execution.finished_at = now
        return (
            execution.status.value,
            execution.lines_read,
            execution.commands_produced,
            execution.lines_rejected,
            execution.error,
            now,
            execution.finished_at,
            execution.execution_id,
        )

    def cancel(self, execution_id: str, reason: str) -> bool:
        """Mark a non-final execution CANCELED; False when it had already ended."""
        now = datetime.now(tz=UTC)
        result = self._session.execute(
            self._set_status, (Status.CANCELED.value, reason, now, now, execution_id)
        )
        return bool(result.was_applied)

    def get(self, execution_id: str) -> Execution | None:
        """The execution with its consumer progress summed, or None."""
        row = self._session.execute(self._get, (execution_id,)).one()
        if row is None:
            return None
        execution = _execution(row)
        applied = dead = 0
        legacy = self._session.execute(self._legacy_any, (execution_id,)).one() is not None
        for chunk_row in self._session.execute(self._chunks, (execution_id,)):
            chunk = chunk_row.chunk
            blocks: dict[int, tuple[set[int], set[int]]] = {}
            reads = [self._session.execute(self._progress, (execution_id, chunk))]
            if legacy:
                first = chunk * PROGRESS_BLOCKS_PER_CHUNK
                reads.append(
                    self._session.execute(
                        self._legacy, (execution_id, first, first + PROGRESS_BLOCKS_PER_CHUNK)
                    )
                )
            for rows in reads:
                for progress in rows:
                    done, lettered = blocks.setdefault(progress.block, (set(), set()))
                    done.update(progress.applied or ())
                    lettered.update(progress.dead_lettered or ())
            for done, lettered in blocks.values():
                applied += len(done)
                # A command dead-lettered once (e.g. unknown segment) and applied after a
                # later re-upload counts as applied only.
                dead += len(lettered - done)
        if legacy:
            applied, dead = self._add_legacy_only(execution_id, applied, dead)
        execution.commands_applied = applied
        execution.commands_dead_lettered = dead
        return execution

    def _add_legacy_only(self, execution_id: str, applied: int, dead: int) -> tuple[int, int]:
        """Add the pre-V005 blocks of chunks that have no row in the chunked table."""
        chunks = {row.chunk for row in self._session.execute(self._chunks, (execution_id,))}
        for progress in self._session.execute(self._legacy, (execution_id, 0, 1 << 62)):
            if progress.block // PROGRESS_BLOCKS_PER_CHUNK in chunks:
                continue  # merged above
            done = progress.applied or set()
            applied += len(done)
            dead += len(set(progress.dead_lettered or ()) - set(done))
        return applied, dead

    def recent(self, limit: int = 50) -> list[Execution]:
        """The ``limit`` newest executions, newest first, with their progress (``get``).

        Read from the index (V011): hours newest first, the hour's shards merged by creation
        time, until ``limit`` were found.
        """
        found: list[str] = []
        for hour_row in self._session.execute(self._hours):
            want = limit - len(found)
            futures = [
                self._session.execute_async(self._in_hour, (hour_row.hour, shard, want))
                for shard in range(INDEX_SHARDS)
            ]
            shards = [
                [(-row.created_at_us, row.execution_id) for row in future.result()]
                for future in futures
            ]
            found += [eid for _, eid in heapq.merge(*shards)][:want]
            if len(found) >= limit:
                break
        executions = (self.get(execution_id) for execution_id in found)
        return [execution for execution in executions if execution is not None]

    def record_progress(
        self,
        applied: Iterable[tuple[str, int]],
        dead_lettered: Iterable[tuple[str, int]],
    ) -> list[tuple[Any, tuple[Any, ...]]]:
        """Statements adding (execution_id, sequence) pairs to the progress sets.

        Returned rather than executed so the consumer sends them with the batch's other
        writes (same retries, same all-or-nothing rule before offsets are stored).
        """
        statements: list[tuple[Any, tuple[Any, ...]]] = []
        chunks: set[tuple[str, int]] = set()
        for prepared, pairs in ((self._add_applied, applied), (self._add_dead, dead_lettered)):
            grouped: dict[tuple[str, int], set[int]] = defaultdict(set)
            for execution_id, sequence in pairs:
                grouped[(execution_id, sequence // PROGRESS_BLOCK)].add(sequence)
            for (execution_id, block), sequences in grouped.items():
                chunk = block // PROGRESS_BLOCKS_PER_CHUNK
                chunks.add((execution_id, chunk))
                statements.append((prepared, (sequences, execution_id, chunk, block)))
        # The chunk index rows: one per (execution, chunk) a batch touches, idempotent.
        statements.extend((self._add_chunk, key) for key in sorted(chunks))
        return statements


def _execution(row: Any) -> Execution:
    return Execution(
        execution_id=row.execution_id,
        import_name=row.import_name or "",
        file_name=row.file_name or "",
        format=row.format or "",
        content_sha256=row.content_sha256 or "",
        created_at=aware(row.created_at),
        created_at_us=int(row.created_at_us or 0),
        status=Status(row.status),
        lines_read=int(row.lines_read or 0),
        commands_produced=int(row.commands_produced or 0),
        lines_rejected=int(row.lines_rejected or 0),
        error=row.error,
        updated_at=aware(row.updated_at),
        finished_at=aware(row.finished_at),
    )
