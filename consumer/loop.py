"""The consumer's poll loop: poll a batch, plan it, write it, dead-letter, commit.

Delivery rules (README "Delivery guarantees"):
- ``enable.auto.offset.store=false``: an offset is stored only once its record's writes
  succeeded or the record was dead-lettered (dead-letter acknowledged first), then committed.
- Pipelined, one batch deep: batch k's writes are in flight while batch k+1 is polled,
  planned, bound and grouped; k is awaited and committed before k+1's writes start, so commits
  stay in order per partition.
- Cassandra unavailable after the writer's retries (or past its deadline): the batch — and any
  batch planned behind it — is held, every assigned partition is paused, and the loop keeps
  polling (so the group does not evict it through ``max.poll.interval.ms``) while retrying
  with backoff; partitions resume once everything held is written, oldest first.
- Writes Cassandra refuses for good: the records they belong to are dead-lettered
  (``write_rejected``) and consuming goes on; a refusal no record explains (grants, schema)
  stops the consumer with ``PermanentWriteError`` after committing what was written.
- On revoke, in-flight writes are finished first (bounded by the write deadline) and
  committed, then what was stored is committed synchronously; held work of revoked partitions
  loses its offsets — the new owner re-reads it from the committed offset.
- SIGTERM: stop polling, finish or abandon (after ``shutdown_timeout_s``) the held batch,
  commit, close.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from consumer.batch import PlannedBatch
from consumer.dead_letter import DeadLetterError, DeadLetterSink
from consumer.metrics import ConsumerMetrics
from consumer.writer import (
    TRANSIENT_ERRORS,
    CassandraUnavailableError,
    CassandraWriter,
    PermanentWriteError,
    WriteJob,
    WriteOutcome,
)
from segflow.settings import MAX_POLL_INTERVAL_S, ConsumeSettings

log = logging.getLogger(__name__)
# A batch that ends in one of these is held and retried; nothing is committed for it.
HOLD_ERRORS: tuple[type[Exception], ...] = (
    CassandraUnavailableError,
    DeadLetterError,
    *TRANSIENT_ERRORS,
)


class BatchPlanner(Protocol):
    """Turns Kafka messages into writes and dead letters (``consumer.planner``)."""

    def plan(self, messages: list[Any]) -> PlannedBatch:
        """Decode, validate and plan a batch."""
        ...

    def reject(self, message: Any, reason: str, error: str) -> PlannedBatch:
        """Dead-letter one record whose writes Cassandra refused."""
        ...


@dataclass
class _InFlight:
    batch: PlannedBatch
    job: WriteJob
    begin: float


class ConsumerLoop:
    """One consumer-group member."""

    def __init__(
        self,
        settings: ConsumeSettings,
        planner: BatchPlanner,
        writer: CassandraWriter,
        dead_letters: DeadLetterSink,
        metrics: ConsumerMetrics,
        cassandra_ok: Callable[[], bool],
    ) -> None:
        self._settings = settings
        self._opts = settings.consumer
        self._planner = planner
        self._writer = writer
        self._dlq = dead_letters
        self._metrics = metrics
        self._cassandra_ok = cassandra_ok
        self._stop = threading.Event()
        # Planned batches not yet written, oldest first: retried in order, and nothing newer is
        # written (or committed) before them.
        self._held: list[PlannedBatch] = []
        # Records whose planning itself needed Cassandra (registry lookups) while it was down.
        self._held_messages: list[Any] | None = None
        # The batch whose writes are in flight while the next one is polled and planned.
        self._inflight: _InFlight | None = None
        self._paused = False
        self._assigned: set[tuple[str, int]] = set()
        self._last_commit = time.time()
        self._started = time.time()
        self.last_loop = time.monotonic()
        self._retry_delay = settings.consumer.retry_initial_s
        self._next_retry = 0.0
        self._consumer = Consumer(self._consumer_config())

    def _consumer_config(self) -> dict[str, Any]:
        kafka = self._settings.kafka
        return {
            **kafka.client_config(),
            "group.id": self._opts.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "max.poll.interval.ms": int(MAX_POLL_INTERVAL_S * 1000),
            "session.timeout.ms": 45_000,
            "statistics.interval.ms": self._opts.statistics_interval_ms,
            "stats_cb": self._on_stats,
            "fetch.min.bytes": 1,
            "queued.max.messages.kbytes": 65536,
        }

    # -- lifecycle ---------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT ask the loop to finish and commit."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def stop(self) -> None:
        """Ask the loop to stop after the current batch."""
        self._stop.set()

    @property
    def ready(self) -> bool:
        """Partitions assigned and Cassandra answering."""
        return bool(self._assigned) and not self._paused and self._cassandra_ok()

    def run(self, until_idle: bool = False) -> None:
        """Consume until stopped (or, with ``until_idle``, until caught up and quiet).

        Pipelined: batch k's writes are in flight (driver futures) while batch k+1 is polled
        and planned; k is then awaited and committed before k+1's writes start, so offsets
        are committed in order and only once their writes were acknowledged.
        """
        self._consumer.subscribe(
            [self._settings.kafka.commands_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        idle_since = time.monotonic()
        try:
            while not self._stop.is_set():
                self.last_loop = time.monotonic()
                self._metrics.seconds_since_commit.set(time.time() - self._last_commit)
                if self._holding():
                    self._retry_held()
                    continue
                messages = self._consumer.consume(
                    num_messages=self._opts.batch_size, timeout=self._opts.poll_timeout_s
                )
                messages = [m for m in messages if not _is_eof(m)]
                batch = self._plan(messages) if messages else None
                if batch is not None and not self._holding():
                    # Bind and group now, while the previous batch's writes are in flight.
                    batch.prepared = self._writer.prepare(batch.writes, batch.extra)
                self._finish_inflight()
                if batch is not None:
                    if self._holding():
                        batch.prepared = None
                        self._held.append(batch)
                    else:
                        self._start(batch)
                if messages:
                    idle_since = time.monotonic()
                elif (
                    until_idle
                    and self._inflight is None
                    and not self._holding()
                    and self._caught_up(idle_since)
                ):
                    log.info("caught up and idle; exiting")
                    break
        finally:
            self._shutdown()

    # -- batches -----------------------------------------------------------------------

    def _plan(self, messages: list[Any]) -> PlannedBatch | None:
        errors = [m for m in messages if m.error() is not None]
        for message in errors:
            log.warning("kafka consume error", extra={"fields": {"error": str(message.error())}})
        messages = [m for m in messages if m.error() is None]
        if not messages:
            return None
        self._metrics.consumed.inc(len(messages))
        self._metrics.batch_size.observe(len(messages))
        return self._plan_or_hold(messages)

    def _plan_or_hold(self, messages: list[Any]) -> PlannedBatch | None:
        try:
            batch = self._planner.plan(messages)
        except TRANSIENT_ERRORS as exc:
            log.error(
                "cannot plan batch, Cassandra unavailable; pausing partitions",
                extra={"fields": {"error": type(exc).__name__, "records": len(messages)}},
            )
            self._held_messages = messages
            self._pause()
            return None
        self._held_messages = None
        batch.messages = messages
        return batch

    def _start(self, batch: PlannedBatch) -> bool:
        """Dead-letter the batch's poison records, then start its writes (not awaited)."""
        begin = time.monotonic()
        try:
            if not batch.dead_letters_sent:
                self._dlq.send(batch.dead_letters)
                batch.dead_letters_sent = True
        except DeadLetterError as exc:
            self._hold(batch, exc)
            return False
        prepared = batch.prepared or self._writer.prepare(batch.writes, batch.extra)
        self._inflight = _InFlight(batch, self._writer.start(prepared), begin)
        return True

    def _finish_inflight(self) -> bool:
        """Await the in-flight batch; commit it, or hold it (and pause) if it did not land."""
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return True
        batch = inflight.batch
        try:
            outcome = inflight.job.wait()
            if outcome.rejected:
                self._dead_letter_rejected(batch, outcome)
        except HOLD_ERRORS as exc:
            self._hold(batch, exc)
            return False
        finally:
            self._metrics.apply_latency.observe(time.monotonic() - inflight.begin)
        for operation, count in batch.applied_by_operation.items():
            self._metrics.applied.labels(operation=operation).inc(count)
        for letter in batch.dead_letters:
            self._metrics.dead_lettered.labels(reason=letter.reason).inc()
        self._store_and_commit(batch.next_offsets)
        return True

    def _dead_letter_rejected(self, batch: PlannedBatch, outcome: WriteOutcome) -> None:
        """Cassandra refused some statements for good: find their records, dead-letter them.

        Each record is planned and written alone (its writes are idempotent, so the ones that
        already landed are simply written again); a record whose writes are refused is
        dead-lettered with reason ``write_rejected`` (writes of it that were accepted stay).
        The batch's progress marks are then written per record, as applied or dead-lettered.
        """
        log.error(
            "Cassandra refused writes; dead-lettering the records they belong to",
            extra={
                "fields": {
                    "statements": len(outcome.rejected),
                    "errors": sorted(set(outcome.rejected.values())),
                }
            },
        )
        letters: list[Any] = []
        progress: list[tuple[Any, tuple[Any, ...]]] = []
        applied: Counter[str] = Counter()
        planned = 0
        for message in batch.messages:
            alone = self._planner.plan([message])
            if alone.dead_letters:  # dead-lettered when planned, already sent
                progress.extend(alone.extra)
                continue
            planned += 1
            result = self._writer.write(alone.writes)
            if result.rejected:
                errors = ", ".join(sorted(set(result.rejected.values())))
                rejected = self._planner.reject(
                    message, "write_rejected", f"Cassandra refused the record's writes: {errors}"
                )
                letters.extend(rejected.dead_letters)
                progress.extend(rejected.extra)
            else:
                progress.extend(alone.extra)
                applied.update(alone.applied_by_operation)
        if planned > 1 and len(letters) == planned:
            # Every record refused: a setting or the server (e.g. an events TTL past what the
            # node accepts), not the records. Dead-lettering them all would lose the stream.
            self._metrics.unattributed_write_errors.inc()
            raise PermanentWriteError(
                f"Cassandra refused the writes of all {planned} records of a batch: "
                + ", ".join(sorted(set(outcome.rejected.values())))
            )
        self._dlq.send(letters)
        batch.dead_letters.extend(letters)
        batch.applied_by_operation = dict(applied)
        self._writer.write([], progress)

    def _apply_now(self, batch: PlannedBatch) -> bool:
        """Write one batch and wait for it (the degraded path: no pipelining)."""
        return self._start(batch) and self._finish_inflight()

    def _hold(self, batch: PlannedBatch, exc: BaseException) -> None:
        log.error(
            "batch not written; pausing partitions",
            extra={"fields": {"error": str(exc), "records": len(batch.messages)}},
        )
        # Bound again when retried: the token map (and so the grouping) may have changed.
        batch.prepared = None
        if not any(held is batch for held in self._held):
            self._held.insert(0, batch)
        self._pause()

    def _pause(self) -> None:
        """Pause every assigned partition until the held work is written."""
        self._retry_delay = self._opts.retry_initial_s
        self._next_retry = time.monotonic() + self._retry_delay
        if not self._paused and self._assigned:
            self._consumer.pause([TopicPartition(t, p) for t, p in self._assigned])
            self._paused = True
            self._metrics.paused_partitions.set(len(self._assigned))

    def _retry_held(self) -> None:
        # Keep polling while paused: heartbeats and rebalances go on, nothing is fetched. Should
        # a record slip through anyway (e.g. a partition assigned in between), rewind to it so
        # it is read again after the resume instead of being skipped.
        stray = self._consumer.consume(num_messages=1, timeout=min(0.5, self._opts.poll_timeout_s))
        for message in stray:
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            if message.error() is None and topic and partition is not None and offset is not None:
                self._consumer.seek(TopicPartition(topic, partition, offset))
        if time.monotonic() < self._next_retry:
            return
        self._retry_delay = min(self._retry_delay * 2, self._opts.retry_max_s)
        self._next_retry = time.monotonic() + self._retry_delay
        if not self._cassandra_ok():
            return
        while self._held:
            batch = self._held[0]
            if not self._apply_now(batch):
                return
            self._held.pop(0)
        if self._held_messages is not None:
            batch_or_none = self._plan_or_hold(self._held_messages)
            if batch_or_none is None or not self._apply_now(batch_or_none):
                return
        self._resume()

    def _holding(self) -> bool:
        return bool(self._held) or self._held_messages is not None

    def _resume(self) -> None:
        if self._paused and self._assigned:
            self._consumer.resume([TopicPartition(t, p) for t, p in self._assigned])
        self._paused = False
        self._metrics.paused_partitions.set(0)

    def _store_and_commit(self, next_offsets: dict[tuple[str, int], int]) -> None:
        offsets = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in next_offsets.items()
            if (topic, partition) in self._assigned
        ]
        if not offsets:
            return
        self._consumer.store_offsets(offsets=offsets)
        self._commit("commit", offsets=offsets, asynchronous=True)

    def _commit(self, what: str, **kwargs: Any) -> None:
        """Commit (stored offsets by default); nothing to commit is not an error."""
        try:
            self._consumer.commit(**({"asynchronous": False} | kwargs))
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning(f"{what} failed", extra={"fields": {"error": str(exc)}})
            return
        self._mark_committed()

    def _mark_committed(self) -> None:
        self._last_commit = time.time()
        self._metrics.commits.inc()
        self._metrics.last_commit.set(self._last_commit)

    # -- rebalance callbacks -----------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(tp.topic, tp.partition) for tp in partitions}
        self._metrics.assigned_partitions.set(len(self._assigned))
        if self._paused or self._holding():
            # Pausing only works on partitions already assigned: before this callback returns
            # they are not (confluent-kafka assigns afterwards unless the callback does), so a
            # pause here was lost and the new partitions were fetched while a batch was held.
            consumer.incremental_assign(partitions)
            consumer.pause(partitions)
            self._paused = True
            self._metrics.paused_partitions.set(len(self._assigned))
        log.info("partitions assigned", extra={"fields": {"partitions": _names(partitions)}})

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        # Writes in flight are finished (bounded by the write deadline) and committed first,
        # as if processing still happened strictly between polls.
        self._finish_inflight()
        self._forget(revoked)
        self._commit("commit on revoke")
        self._assigned -= revoked
        for topic, partition in revoked:
            with contextlib.suppress(KeyError):
                self._metrics.lag.remove(topic, str(partition))
        self._metrics.assigned_partitions.set(len(self._assigned))
        log.info("partitions revoked", extra={"fields": {"partitions": _names(partitions)}})

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        lost = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= lost
        self._forget(lost)
        self._metrics.assigned_partitions.set(len(self._assigned))
        log.warning("partitions lost", extra={"fields": {"partitions": _names(partitions)}})

    def _forget(self, partitions: set[tuple[str, int]]) -> None:
        """Held or in-flight work cannot be committed for partitions no longer ours.

        Their records are re-read by the new owner from the committed offsets; the writes
        still land (idempotent), only the offsets are dropped.
        """
        if self._held_messages is not None:
            self._held_messages = [
                m for m in self._held_messages if (m.topic(), m.partition()) not in partitions
            ]
        batches = [*self._held, *([self._inflight.batch] if self._inflight else [])]
        for batch in batches:
            batch.next_offsets = {
                key: value for key, value in batch.next_offsets.items() if key not in partitions
            }

    # -- statistics, idleness, shutdown -----------------------------------------------

    def _on_stats(self, stats_json: str) -> None:
        stats = json.loads(stats_json)
        for topic, data in stats.get("topics", {}).items():
            for partition, pstats in data.get("partitions", {}).items():
                if partition == "-1" or (topic, int(partition)) not in self._assigned:
                    continue
                lag = pstats.get("consumer_lag", -1)
                if lag >= 0:
                    self._metrics.lag.labels(topic=topic, partition=partition).set(lag)

    def _caught_up(self, idle_since: float) -> bool:
        if time.monotonic() - idle_since < self._opts.idle_exit_s or not self._assigned:
            return False
        partitions = [TopicPartition(t, p) for t, p in sorted(self._assigned)]
        committed = self._consumer.committed(partitions, timeout=10)
        for tp in committed:
            _low, high = self._consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            position = tp.offset if tp.offset >= 0 else _low
            if position < high:
                return False
        return True

    def _shutdown(self) -> None:
        deadline = time.monotonic() + self._opts.shutdown_timeout_s
        try:
            self._finish_inflight()
            while self._holding() and time.monotonic() < deadline:
                self._retry_held()
                time.sleep(0.05)
            if self._holding():
                log.error("shutting down with an unwritten batch; its offsets are not committed")
            self._commit("final commit")
        finally:
            self._consumer.close()
            self._dlq.close()


def _is_eof(message: Any) -> bool:
    error = message.error()
    return error is not None and error.code() == KafkaError._PARTITION_EOF


def _names(partitions: list[TopicPartition]) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in partitions]
