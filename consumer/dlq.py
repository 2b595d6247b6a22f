"""Read the dead-letter topic back: summarise it (``inspect``) and re-drive letters (``replay``).

A dead letter is the original record (key, value, headers) plus the ``dlq.*`` headers the
consumer adds (``consumer.dead_letter``). Once the cause is fixed — the segment created, the
writer schema added to ``consumer.writer_schema_dir`` — ``replay`` sends the chosen letters
back to the commands topic exactly as they were first produced: original key and value,
original headers, every ``dlq.*`` header removed.

Why replaying twice changes nothing:

- **Downstream.** A replayed command keeps its version (the Cassandra write timestamp) and its
  command id, so applying it again writes the same cells; a newer command that landed since
  still wins. Its ``segflow.execution_id`` / ``segflow.seq`` headers move it from the
  execution's dead-lettered set to its applied set (sets, so counts stay exact).
- **In the tool.** A read covers the topic as it was when the command started (up to each
  partition's high watermark then): letters the running consumer writes meanwhile — a replayed
  record whose cause is not fixed yet comes back — are never read in the same run, so a replay
  cannot loop. The same record dead-lettered several times (a consumer restart between the
  dead-letter write and the commit, an earlier replay) is sent once per run.

Nothing here prints a user key: samples carry positions, reason, execution and the error text
scrubbed once more with the letter's own key (``scrub_error``), never the key or value.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from consumer.dead_letter import (
    DLQ_PREFIX,
    ERROR,
    EXECUTION_ID,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TOPIC,
    REASON,
    SCHEMA_FINGERPRINT,
    VALUE_DROPPED,
    scrub_error,
)
from segflow.errors import ExitCode, SegflowError
from segflow.kafka_errors import KafkaUnreachableError, TopicMissingError
from segflow.kafka_produce import Headers, produce_waiting
from segflow.settings import DeadLetterOptions, KafkaSettings

SAMPLE_ERROR_CHARS = 200
_BUCKET_FORMATS = {"minute": "%Y-%m-%dT%H:%MZ", "hour": "%Y-%m-%dT%H:00Z", "day": "%Y-%m-%d"}


@dataclass(frozen=True, slots=True)
class Letter:
    """One record of the dead-letter topic, with its ``dlq.*`` headers read."""

    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @classmethod
    def of(cls, message: Any) -> Letter:
        """From a confluent-kafka message of the dead-letter topic."""
        kind, stamp = message.timestamp()
        headers = [(name, value or b"") for name, value in message.headers() or []]
        return cls(
            partition=message.partition(),
            offset=message.offset(),
            timestamp_ms=stamp if kind and stamp >= 0 else None,
            key=message.key(),
            value=message.value(),
            headers=headers,
        )

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` as text (None when absent or empty)."""
        found = None
        for key, value in self.headers:
            if key == name and value:
                found = value.decode("utf-8", "replace")
        return found

    @property
    def reason(self) -> str:
        return self.header(REASON) or "unknown"

    @property
    def execution_id(self) -> str | None:
        return self.header(EXECUTION_ID)

    @property
    def value_dropped(self) -> bool:
        return self.header(VALUE_DROPPED) is not None

    def replay_headers(self) -> list[tuple[str, bytes]]:
        """The original record's headers: every ``dlq.*`` one removed, order kept."""
        return [(name, value) for name, value in self.headers if not name.startswith(DLQ_PREFIX)]

    def digest(self) -> bytes:
        """Identity of the original record (key + value + original headers)."""
        blake = hashlib.blake2b(digest_size=16)
        for part in (self.key or b"", self.value or b""):
            blake.update(len(part).to_bytes(8, "little"))
            blake.update(part)
        for name, value in self.replay_headers():
            blake.update(name.encode() + b"\0" + value + b"\0")
        return blake.digest()

    def sample(self) -> dict[str, Any]:
        """A one-line description without key, value or any user key in the error text."""
        error = scrub_error(self.header(ERROR) or "", self.key)
        if len(error) > SAMPLE_ERROR_CHARS:
            error = error[:SAMPLE_ERROR_CHARS] + "..."
        return {
            "partition": self.partition,
            "offset": self.offset,
            "time": iso_time(self.timestamp_ms),
            "reason": self.reason,
            "execution_id": self.execution_id,
            "original": {
                "topic": self.header(ORIGINAL_TOPIC),
                "partition": _int(self.header(ORIGINAL_PARTITION)),
                "offset": _int(self.header(ORIGINAL_OFFSET)),
            },
            "schema_fingerprint": self.header(SCHEMA_FINGERPRINT),
            "value_dropped": self.value_dropped,
            "error": error,
        }


def sample_line(sample: dict[str, Any]) -> str:
    """``sample`` as one line of text."""
    original = sample["original"]
    parts = [
        f"{sample['partition']}@{sample['offset']}",
        sample["time"] or "-",
        sample["reason"],
        f"execution={sample['execution_id'] or '-'}",
        f"from={original['topic']}/{original['partition']}@{original['offset']}",
    ]
    if sample["schema_fingerprint"]:
        parts.append(f"fingerprint={sample['schema_fingerprint']}")
    if sample["value_dropped"]:
        parts.append("value-dropped")
    return " ".join(parts) + f": {sample['error']}"


def iso_time(timestamp_ms: int | None) -> str | None:
    if timestamp_ms is None:
        return None
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """Which letters a command works on (``DeadLetterOptions``)."""

    reasons: frozenset[str] = frozenset()
    execution_id: str | None = None
    partition: int | None = None
    from_offset: int | None = None
    to_offset: int | None = None

    @classmethod
    def of(cls, options: DeadLetterOptions) -> LetterFilter:
        if (
            options.from_offset is not None
            and options.to_offset is not None
            and options.from_offset > options.to_offset
        ):
            raise SegflowError(
                f"--from-offset {options.from_offset} is after --to-offset {options.to_offset}",
                ExitCode.USAGE,
            )
        return cls(
            frozenset(options.reason),
            options.execution_id,
            options.partition,
            options.from_offset,
            options.to_offset,
        )

    def span(self, partition: int, low: int, high: int) -> tuple[int, int]:
        """The offsets ``[start, end)`` of ``partition`` to read, given its watermarks."""
        if self.partition is not None and partition != self.partition:
            return (low, low)
        start = max(low, self.from_offset or 0)
        end = high if self.to_offset is None else min(high, self.to_offset + 1)
        return (start, max(start, end))

    def matches(self, letter: Letter) -> bool:
        """The header filters (the offset ones are applied by ``span``)."""
        if self.reasons and letter.reason not in self.reasons:
            return False
        return self.execution_id is None or letter.execution_id == self.execution_id


@dataclass
class Inspection:
    """Counts by reason, execution and time bucket, and a few samples per reason."""

    bucket: str = "hour"
    samples_per_reason: int = 3
    total: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_execution: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    by_time: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    samples: defaultdict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    first_ms: int | None = None
    last_ms: int | None = None

    def add(self, letter: Letter) -> None:
        reason = letter.reason
        self.total += 1
        self.by_reason[reason] += 1
        self.by_execution[letter.execution_id or "-"][reason] += 1
        stamp = letter.timestamp_ms
        if stamp is not None:
            when = datetime.fromtimestamp(stamp / 1000, UTC).strftime(_BUCKET_FORMATS[self.bucket])
            self.by_time[when][reason] += 1
            self.first_ms = stamp if self.first_ms is None else min(self.first_ms, stamp)
            self.last_ms = stamp if self.last_ms is None else max(self.last_ms, stamp)
        if len(self.samples[reason]) < self.samples_per_reason:
            self.samples[reason].append(letter.sample())

    def document(self) -> dict[str, Any]:
        """The inspection as plain data (``--output json``)."""
        return {
            "total": self.total,
            "first": iso_time(self.first_ms),
            "last": iso_time(self.last_ms),
            "by_reason": dict(self.by_reason.most_common()),
            "by_execution": {
                execution: dict(counts.most_common())
                for execution, counts in sorted(
                    self.by_execution.items(), key=lambda item: -sum(item[1].values())
                )
            },
            "time_bucket": self.bucket,
            "by_time": {when: dict(counts) for when, counts in sorted(self.by_time.items())},
            "samples": dict(self.samples),
        }


@dataclass
class ReplayReport:
    """What a replay did: how many letters matched, were sent, or were skipped and why."""

    matched: int = 0
    sent: int = 0
    duplicates: int = 0
    value_dropped: int = 0
    sent_by_reason: Counter[str] = field(default_factory=Counter)
    dry_run: bool = False

    def document(self, topic: str) -> dict[str, Any]:
        return {
            "topic": topic,
            "dry_run": self.dry_run,
            "matched": self.matched,
            "sent": self.sent,
            "sent_by_reason": dict(self.sent_by_reason.most_common()),
            "skipped_duplicates": self.duplicates,
            "skipped_value_dropped": self.value_dropped,
        }


def read_letters(kafka: KafkaSettings, letters: LetterFilter, timeout_s: float) -> Iterator[Letter]:
    """Every letter of the dead-letter topic in ``letters``' offset spans, up to the high
    watermarks taken when the read starts; header filters are the caller's.

    Raises ``TopicMissingError`` / ``KafkaUnreachableError`` (exit 3), or ``SegflowError``
    when the topic sends nothing for ``timeout_s`` before the end is reached.
    """
    topic = kafka.dead_letter_topic
    consumer = Consumer(
        {
            **kafka.client_config(),
            # Never joins the group (partitions are assigned) and never commits: read-only.
            "group.id": f"segflow-dlq-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        ends = _assign(consumer, kafka, letters)
        deadline = time.monotonic() + timeout_s
        while ends:
            message = consumer.poll(0.5)
            if message is None:
                if time.monotonic() > deadline:
                    raise SegflowError(
                        f"dead-letter topic {topic}: nothing received for {timeout_s:g} s with "
                        f"{len(ends)} partition(s) not read to the end (dlq.read_timeout_s)"
                    )
                continue
            deadline = time.monotonic() + timeout_s
            error = message.error()
            partition = int(message.partition() or 0)
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ends.pop(partition, None)
                    continue
                raise SegflowError(f"dead-letter topic {topic}: {error.str()}")
            end = ends.get(partition)
            if end is None:
                continue
            offset = int(message.offset() or 0)
            if offset + 1 >= end:
                ends.pop(partition)
            if offset < end:
                yield Letter.of(message)
    finally:
        consumer.close()


def _assign(consumer: Consumer, kafka: KafkaSettings, letters: LetterFilter) -> dict[int, int]:
    """Assign every partition's span; returns partition -> end offset (exclusive)."""
    topic = kafka.dead_letter_topic
    try:
        metadata = consumer.list_topics(topic, timeout=kafka.probe_timeout_s)
    except KafkaException as exc:
        raise KafkaUnreachableError(kafka.bootstrap_servers, exc.args[0].str()) from None
    described = metadata.topics.get(topic)
    if described is None or described.error is not None or not described.partitions:
        raise TopicMissingError(topic)
    if letters.partition is not None and letters.partition not in described.partitions:
        raise SegflowError(
            f"dead-letter topic {topic} has no partition {letters.partition} "
            f"(it has {len(described.partitions)})"
        )
    assignment: list[TopicPartition] = []
    ends: dict[int, int] = {}
    for partition in sorted(described.partitions):
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=kafka.probe_timeout_s
        )
        start, end = letters.span(partition, low, high)
        if start < end:
            assignment.append(TopicPartition(topic, partition, start))
            ends[partition] = end
    if assignment:
        consumer.assign(assignment)
    return ends


def inspect(kafka: KafkaSettings, options: DeadLetterOptions) -> Inspection:
    """Count the chosen letters (``segflow dlq inspect``)."""
    letters = LetterFilter.of(options)
    found = Inspection(options.time_bucket, options.samples)
    for letter in read_letters(kafka, letters, options.read_timeout_s):
        if letters.matches(letter):
            found.add(letter)
    return found


def replay(kafka: KafkaSettings, options: DeadLetterOptions) -> ReplayReport:
    """Send the chosen letters back to the commands topic unchanged (``segflow dlq replay``).

    Letters whose value was dropped (too large for the dead-letter topic) cannot be replayed:
    they are counted, and their file is re-uploaded instead. Raises ``SegflowError`` when the
    commands topic does not acknowledge every record sent (nothing is lost: the letters stay
    in the dead-letter topic, and sending them again is harmless).
    """
    letters = LetterFilter.of(options)
    report = ReplayReport(dry_run=options.dry_run)
    producer = None
    if not options.dry_run:
        producer = Producer(
            {
                **kafka.client_config(),
                "enable.idempotence": True,
                "acks": "all",
                "compression.type": "zstd",
                "linger.ms": 20,
            }
        )
    failures: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            failures.append(err)

    seen: set[bytes] = set()
    for letter in read_letters(kafka, letters, options.read_timeout_s):
        if not letters.matches(letter):
            continue
        report.matched += 1
        if letter.value_dropped:
            report.value_dropped += 1
            continue
        digest = letter.digest()
        if digest in seen:
            report.duplicates += 1
            continue
        seen.add(digest)
        if producer is not None:
            headers: Headers = [*letter.replay_headers()]
            produce_waiting(
                producer, kafka.commands_topic, letter.key, letter.value, headers, on_delivery
            )
        report.sent += 1
        report.sent_by_reason[letter.reason] += 1
    if producer is not None:
        remaining = producer.flush(60.0)
        if remaining or failures:
            detail = failures[0].str() if failures else f"{remaining} not acknowledged"
            raise SegflowError(
                f"commands topic {kafka.commands_topic}: {detail} "
                f"({report.sent - remaining - len(failures)} of {report.sent} acknowledged; "
                "replaying again is safe)"
            )
    return report
