"""The dead-letter topic: records that can never be applied, with the reason, never lost.

A dead-lettered record keeps its original key, value and headers; ``dlq.*`` headers say why
(``reason`` is a short code such as ``undecodable``, ``unknown_schema``, ``invalid`` or
``unknown_segment``, ``error`` the detail) and where it came from (original topic,
partition, offset, execution id; for ``unknown_schema`` the writer schema fingerprint).
``segflow dlq`` reads them back and replays letters once their cause is fixed. The
consumer only stores an offset after the dead-letter write is acknowledged, so a poison
record is neither lost nor able to block its partition.

Three things would otherwise turn one poison record into a crash loop or a stuck partition:

- **Too large.** A value near the size limit fits the commands topic but not once the
  ``dlq.*`` headers are added (librdkafka raises ``MSG_SIZE_TOO_LARGE``, or the broker refuses
  it). Such a letter is sent again with its value dropped and ``dlq.value.dropped`` holding
  the original value's size; key and original headers stay, so it can still be traced.
- **Fatal producer error.** An idempotent producer that hits a fatal error (e.g. an epoch or
  sequence inconsistency) refuses every later record for good. The sink then builds a new
  producer and sends the whole batch again (the consumer stored no offset for it yet), so no
  dead letter is lost; duplicates in the dead-letter topic are possible, losses are not.
- **Personal data.** ``dlq.error`` must never quote a user key (README: no user identifiers in
  dead-letter error texts), whatever contract rule produced the text: ``scrub_error`` removes
  the record's key and every quoted literal except segment references and enum symbols.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from segflow.kafka_produce import Headers, produce_waiting
from segflow.settings import KafkaSettings

log = logging.getLogger(__name__)

ERROR_HEADER_MAX_BYTES = 4096
# The headers a dead letter gets on top of the original ones (``segflow dlq`` reads them and
# strips every ``dlq.*`` header again when it replays a letter).
DLQ_PREFIX = "dlq."
REASON = "dlq.reason"
ERROR = "dlq.error"
ORIGINAL_TOPIC = "dlq.original.topic"
ORIGINAL_PARTITION = "dlq.original.partition"
ORIGINAL_OFFSET = "dlq.original.offset"
EXECUTION_ID = "dlq.execution_id"
SCHEMA_FINGERPRINT = "dlq.schema.fingerprint"
VALUE_DROPPED = "dlq.value.dropped"
REDACTED = "<redacted>"
# A fatal producer is replaced at most this many times per batch before the batch is reported
# as not sent (the loop then holds it and retries later, like any other dead-letter failure).
FATAL_RECOVERIES_PER_SEND = 3

# Python-repr'd literals ('...' or "...", with backslash escapes) and what may stay visible:
# segment references (``segment 'x'``, ``segment technical name 'x'``) and enum symbols.
_QUOTED = re.compile(r"""(?<!\w)(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")
# An opening quote whose literal was cut off (texts are bounded): everything after it goes.
_UNTERMINATED = re.compile(r"""(?<!\w)['"].*""", re.DOTALL)
_KEPT_AFTER = re.compile(r"segment (?:technical name )?$")
_ENUM_SYMBOL = re.compile(r"[A-Z][A-Z0-9_]*")
_KEY_TOKEN = re.compile(r"(?i)\b(?:email_hash|email|user_agent|user_id|account):\S+")


def scrub_error(error: str, key: bytes | None) -> str:
    """``error`` without any user key: the record's key, key-like tokens, quoted literals."""
    key_text = key.decode("utf-8", "replace") if key else ""

    def plain(text: str) -> str:
        if len(key_text) >= 3:
            text = text.replace(key_text, REDACTED)
        return _KEY_TOKEN.sub(REDACTED, text)

    pieces: list[str] = []
    last = 0
    for match in _QUOTED.finditer(error):
        literal = match.group()
        keep = _ENUM_SYMBOL.fullmatch(literal[1:-1]) is not None or (
            _KEPT_AFTER.search(error, 0, match.start()) is not None
            and _KEY_TOKEN.search(literal) is None
        )
        pieces.append(plain(error[last : match.start()]))
        pieces.append(literal if keep else f"{literal[0]}{REDACTED}{literal[0]}")
        last = match.end()
    tail = error[last:]
    cut = _UNTERMINATED.search(tail)
    if cut is not None:
        tail = tail[: cut.start()] + REDACTED
    pieces.append(plain(tail))
    return "".join(pieces)


@dataclass(frozen=True)
class DeadLetter:
    """One record to dead-letter."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    error: str
    execution_id: str | None
    original_headers: list[tuple[str, bytes]]
    # ``unknown_schema`` letters: the writer schema fingerprint the record named (0x + hex).
    schema_fingerprint: str | None = None


class DeadLetterError(RuntimeError):
    """The dead-letter topic did not acknowledge every record."""


class _FatalProducerError(RuntimeError):
    """The producer hit a fatal error: it must be replaced before anything else is sent."""


def headers_of(letter: DeadLetter, value_dropped: bool = False) -> Headers:
    """The dead letter's headers: the original ones, then the ``dlq.*`` ones."""
    error = scrub_error(letter.error, letter.key).encode()[:ERROR_HEADER_MAX_BYTES]
    headers: Headers = [
        *letter.original_headers,
        (REASON, letter.reason.encode()),
        (ERROR, error),
        (ORIGINAL_TOPIC, letter.topic.encode()),
        (ORIGINAL_PARTITION, str(letter.partition).encode()),
        (ORIGINAL_OFFSET, str(letter.offset).encode()),
    ]
    if letter.execution_id:
        headers.append((EXECUTION_ID, letter.execution_id.encode()))
    if letter.schema_fingerprint:
        headers.append((SCHEMA_FINGERPRINT, letter.schema_fingerprint.encode()))
    if value_dropped:
        headers.append((VALUE_DROPPED, str(len(letter.value or b"")).encode()))
    return headers


def _is_fatal(err: KafkaError) -> bool:
    return bool(err.fatal()) or err.code() == KafkaError._FATAL


def _too_large(err: KafkaError) -> bool:
    return err.code() == KafkaError.MSG_SIZE_TOO_LARGE


class DeadLetterSink:
    """An idempotent producer writing to the dead-letter topic, flushed per batch."""

    def __init__(self, settings: KafkaSettings, flush_timeout_s: float = 30.0) -> None:
        self._settings = settings
        self._topic = settings.dead_letter_topic
        self._timeout = flush_timeout_s
        self.recreated = 0
        self._producer = self._new_producer()

    def _new_producer(self) -> Producer:
        return Producer(
            {
                **self._settings.client_config(),
                "enable.idempotence": True,
                "acks": "all",
                "compression.type": "zstd",
                "linger.ms": 5,
            }
        )

    def send(self, letters: list[DeadLetter]) -> None:
        """Produce and wait for every acknowledgement; raise ``DeadLetterError`` otherwise."""
        if not letters:
            return
        for _ in range(FATAL_RECOVERIES_PER_SEND + 1):
            try:
                self._send_once(letters)
                return
            except _FatalProducerError as exc:
                self._replace_producer(str(exc))
        raise DeadLetterError(
            f"dead-letter topic {self._topic}: producer fatal again after "
            f"{FATAL_RECOVERIES_PER_SEND} new producers"
        )

    def _send_once(self, letters: list[DeadLetter]) -> None:
        errors: list[KafkaError] = []
        oversized: list[DeadLetter] = []

        def on_delivery_of(letter: DeadLetter, dropped: bool) -> Any:
            def on_delivery(err: KafkaError | None, _msg: Any) -> None:
                if err is None:
                    return
                if _too_large(err) and not dropped:
                    oversized.append(letter)  # the broker's limit: send it again smaller
                else:
                    errors.append(err)

            return on_delivery

        def produce(letter: DeadLetter, dropped: bool) -> None:
            value = None if dropped else letter.value
            try:
                produce_waiting(
                    self._producer,
                    self._topic,
                    letter.key,
                    value,
                    headers_of(letter, dropped),
                    on_delivery_of(letter, dropped),
                    0.1,
                )
            except KafkaException as exc:
                err = exc.args[0]
                if _is_fatal(err):
                    raise _FatalProducerError(err.str()) from None
                if _too_large(err) and not dropped:
                    produce(letter, dropped=True)
                    return
                errors.append(err)

        try:
            for letter in letters:
                produce(letter, dropped=False)
            remaining = self._producer.flush(self._timeout)
            for letter in oversized:
                produce(letter, dropped=True)
            if oversized:
                remaining = self._producer.flush(self._timeout)
        except KafkaException as exc:  # poll/flush surface a fatal error as an exception
            if not _is_fatal(exc.args[0]):
                raise DeadLetterError(f"dead-letter topic {self._topic}: {exc}") from None
            raise _FatalProducerError(exc.args[0].str()) from None
        if any(_is_fatal(err) for err in errors):
            raise _FatalProducerError(next(e for e in errors if _is_fatal(e)).str())
        if remaining or errors:
            detail = errors[0].str() if errors else f"{remaining} not acknowledged"
            raise DeadLetterError(f"dead-letter topic {self._topic}: {detail}")

    def _replace_producer(self, reason: str) -> None:
        log.error(
            "dead-letter producer hit a fatal error; replacing it and sending the batch again",
            extra={"fields": {"error": reason, "topic": self._topic}},
        )
        old = self._producer
        # Purging drops what the fatal producer still holds; the batch is re-sent in full.
        with contextlib.suppress(KafkaException):
            old.purge()
        with contextlib.suppress(KafkaException):
            old.flush(0)
        self._producer = self._new_producer()
        self.recreated += 1

    def close(self) -> None:
        """Flush anything left."""
        self._producer.flush(self._timeout)
