"""The consumer's poll loop: poll a batch, plan it, write it, dead-letter, commit.

Delivery rules (README "Delivery guarantees"):
- ``enable.auto.offset.store=false``: an offset is stored only once its record's writes
  succeeded or the record was dead-lettered (dead-letter acknowledged first), then committed.
- Cassandra unavailable after the writer's retries: the batch is held, every assigned
  partition is paused, and the loop keeps polling (so the group does not evict it through
  ``max.poll.interval.ms``) while retrying with backoff; partitions resume once it is written.
- On revoke, in-flight work is already done (processing happens between polls); what was
  stored is committed synchronously and a held batch of revoked partitions is dropped — the new
  owner re-reads it from the committed offset.
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
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from consumer.batch import PlannedBatch
from consumer.dead_letter import DeadLetterError, DeadLetterSink
from consumer.metrics import ConsumerMetrics
from consumer.writer import TRANSIENT_ERRORS, CassandraUnavailableError, CassandraWriter
from segflow.settings import ConsumeSettings

log = logging.getLogger(__name__)


class BatchPlanner(Protocol):
    """Turns Kafka messages into writes and dead letters (``consumer.planner``)."""

    def plan(self, messages: list[Any]) -> PlannedBatch:
        """Decode, validate and plan a batch."""
        ...


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
        self._held: PlannedBatch | None = None
        # Records whose planning itself needed Cassandra (registry lookups) while it was down.
        self._held_messages: list[Any] | None = None
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
            "max.poll.interval.ms": 300_000,
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
        """Consume until stopped (or, with ``until_idle``, until caught up and quiet)."""
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
                if self._held is not None or self._held_messages is not None:
                    self._retry_held()
                    continue
                messages = self._consumer.consume(
                    num_messages=self._opts.batch_size, timeout=self._opts.poll_timeout_s
                )
                messages = [m for m in messages if not _is_eof(m)]
                if not messages:
                    if until_idle and self._caught_up(idle_since):
                        log.info("caught up and idle; exiting")
                        break
                    continue
                idle_since = time.monotonic()
                self._process(messages)
        finally:
            self._shutdown()

    # -- batches -----------------------------------------------------------------------

    def _process(self, messages: list[Any]) -> None:
        errors = [m for m in messages if m.error() is not None]
        for message in errors:
            log.warning("kafka consume error", extra={"fields": {"error": str(message.error())}})
        messages = [m for m in messages if m.error() is None]
        if not messages:
            return
        self._metrics.consumed.inc(len(messages))
        self._metrics.batch_size.observe(len(messages))
        self._prepare_and_apply(messages)

    def _prepare_and_apply(self, messages: list[Any]) -> None:
        try:
            batch = self._planner.plan(messages)
        except TRANSIENT_ERRORS as exc:
            log.error(
                "cannot plan batch, Cassandra unavailable; pausing partitions",
                extra={"fields": {"error": type(exc).__name__, "records": len(messages)}},
            )
            self._pause_for(messages=messages)
            return
        self._held_messages = None
        self._apply(batch)

    def _apply(self, batch: PlannedBatch) -> None:
        begin = time.monotonic()
        try:
            if not batch.dead_letters_sent:
                self._dlq.send(batch.dead_letters)
                batch.dead_letters_sent = True
            self._writer.write(batch.writes, batch.extra)
        except (CassandraUnavailableError, DeadLetterError) as exc:
            log.error(
                "batch not written; pausing partitions",
                extra={"fields": {"error": str(exc), "records": len(batch.next_offsets)}},
            )
            self._pause_for(batch=batch)
            return
        finally:
            self._metrics.apply_latency.observe(time.monotonic() - begin)
        for operation, count in batch.applied_by_operation.items():
            self._metrics.applied.labels(operation=operation).inc(count)
        for letter in batch.dead_letters:
            self._metrics.dead_lettered.labels(reason=letter.reason).inc()
        self._store_and_commit(batch.next_offsets)
        if self._held is batch or self._paused:
            self._held = None
            self._resume()

    def _pause_for(
        self, batch: PlannedBatch | None = None, messages: list[Any] | None = None
    ) -> None:
        """Keep the unwritten work in memory and pause every assigned partition."""
        self._held, self._held_messages = batch, messages
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
        if self._held_messages is not None:
            self._prepare_and_apply(self._held_messages)
        elif self._held is not None:
            self._apply(self._held)

    def _holding(self) -> bool:
        return self._held is not None or self._held_messages is not None

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
        self._commit(asynchronous=True, offsets=offsets)

    def _commit(self, asynchronous: bool, offsets: list[TopicPartition] | None = None) -> None:
        try:
            if offsets is None:
                self._consumer.commit(asynchronous=False)
            elif asynchronous:
                self._consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("commit failed", extra={"fields": {"error": str(exc)}})
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
        if self._held_messages is not None:
            self._held_messages = [
                m for m in self._held_messages if (m.topic(), m.partition()) not in revoked
            ]
        if self._held is not None:
            # The held batch cannot be committed for revoked partitions; its records will be
            # re-read by the new owner from the committed offsets.
            self._held.next_offsets = {
                key: value for key, value in self._held.next_offsets.items() if key not in revoked
            }
        try:
            consumer.commit(asynchronous=False)
            self._mark_committed()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("commit on revoke failed", extra={"fields": {"error": str(exc)}})
        self._assigned -= revoked
        for topic, partition in revoked:
            with contextlib.suppress(KeyError):
                self._metrics.lag.remove(topic, str(partition))
        self._metrics.assigned_partitions.set(len(self._assigned))
        log.info("partitions revoked", extra={"fields": {"partitions": _names(partitions)}})

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        lost = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= lost
        if self._held_messages is not None:
            self._held_messages = [
                m for m in self._held_messages if (m.topic(), m.partition()) not in lost
            ]
        if self._held is not None:
            self._held.next_offsets = {
                k: v for k, v in self._held.next_offsets.items() if k not in lost
            }
        self._metrics.assigned_partitions.set(len(self._assigned))
        log.warning("partitions lost", extra={"fields": {"partitions": _names(partitions)}})

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
        while self._holding() and time.monotonic() < deadline:
            self._retry_held()
            time.sleep(0.05)
        if self._holding():
            log.error("shutting down with an unwritten batch; its offsets are not committed")
        try:
            self._consumer.commit(asynchronous=False)
            self._mark_committed()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("final commit failed", extra={"fields": {"error": str(exc)}})
        self._consumer.close()
        self._dlq.close()


def _is_eof(message: Any) -> bool:
    error = message.error()
    return error is not None and error.code() == KafkaError._PARTITION_EOF


def _names(partitions: list[TopicPartition]) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in partitions]
