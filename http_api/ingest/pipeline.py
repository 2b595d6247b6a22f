"""One ingestion request as an execution, through the uploader's own code path.

Every ingestion route ends here: an execution row (``segflow.db.executions``, so it shows in
``segflow executions``), ``producer_tools.upload.run_upload`` with the format's reader over the
request body (same validation, command ids, versions, sequence headers), and a
``CommandSink`` on the process's one shared producer (acks=all, idempotent). The answer is
built only after this request's own records were acknowledged; a record that is not
acknowledged within ``serve.delivery_timeout_s`` makes the request fail as unavailable (503),
never succeed.

HTTP bodies cannot be hashed before they are read, so an HTTP execution's command ids are
seeded by a random request id (recorded as its ``content_sha256``) instead of the content:
each request (or group of concurrent Village POSTs, ``batching.py``) is its own execution,
and a repeated identical request is applied again (a Village ``add`` after a ``block`` must
take effect), never deduplicated.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from confluent_kafka import Producer

from http_api.ingest.metrics import IngestMetrics
from http_api.ingest.retention import SUFFIX, ErrorFileRetention
from producer_tools.interrupts import DeferredInterrupt
from producer_tools.kafka_sink import CommandSink, producer_config
from producer_tools.readers.base import Reader, ReaderLimits
from producer_tools.upload import (
    ErrorBudget,
    ExecutionCanceledError,
    InputBrokenError,
    MaxErrorsExceededError,
    RejectsFile,
    finish,
    run_upload,
)
from segflow.contract.errors import RecordError
from segflow.contract.records import CommandRecord
from segflow.db.executions import Execution, ExecutionStore, Status
from segflow.settings import KafkaSettings, ServeOptions, UploadOptions

Admit = Callable[[int, CommandRecord], RecordError | None]


class FirstRejects(RejectsFile):
    """The rejects file of an HTTP execution, remembering the first error for the answer."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.first: RecordError | None = None

    def write(self, error: RecordError) -> None:
        """Append one rejected line; keep the first one."""
        if self.first is None and not error.notice:  # a notice's record was produced
            self.first = error
        super().write(error)


class LineRejects(FirstRejects):
    """Also keeps each line's first error: the lines of a grouped execution are separate
    requests, each answered with its own error (bounded: a group is ``village_batch_max``
    lines)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.by_line: dict[int, RecordError] = {}

    def write(self, error: RecordError) -> None:
        """Append one rejected line; keep it by line."""
        if not error.notice:
            self.by_line.setdefault(error.line, error)
        super().write(error)


@dataclass
class Outcome:
    """What one ingestion did: the execution as saved, and why it did not succeed."""

    execution: Execution
    first_reject: RecordError | None
    kafka_unavailable: bool = False
    body_too_large: bool = False
    body_incomplete: bool = False

    @property
    def ok(self) -> bool:
        """Every record read was produced and acknowledged."""
        return self.execution.status is Status.SUCCEEDED


class SharedProducer:
    """The process's one librdkafka producer (created on first use: the export routes need
    no Kafka, so ``segflow serve`` starts and serves them while Kafka is down)."""

    def __init__(self, kafka: KafkaSettings, upload: UploadOptions, options: ServeOptions) -> None:
        self.kafka = kafka
        self.upload = upload
        self.topic = upload.topic or kafka.commands_topic
        self._timeout_s = options.delivery_timeout_s
        self._linger_ms = options.linger_ms
        self._producer: Producer | None = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def sink(self) -> CommandSink:
        """A sink counting one request's deliveries on the shared producer."""
        with self._lock:
            if self._producer is None:
                config: dict[str, Any] = producer_config(self.kafka, self.upload)
                config["message.timeout.ms"] = int(self._timeout_s * 1000)
                config["linger.ms"] = self._linger_ms
                self._producer = Producer(config)
                self._poller = threading.Thread(
                    target=self._poll, args=(self._producer,), name="ingest-producer-poll",
                    daemon=True,
                )  # fmt: skip
                self._poller.start()
        return CommandSink(self.kafka, self.upload, self.topic, self._producer)

    def _poll(self, producer: Producer) -> None:
        """Serve every request's delivery reports in one thread (requests just wait)."""
        while not self._stop.is_set():
            producer.poll(0.1)

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush what is still queued (shutdown) and stop the poller."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout_s)
        if self._producer is not None:
            self._producer.flush(timeout_s)


class IngestPipeline:
    """Runs an ingestion: execution, reader, producer, final status."""

    def __init__(
        self,
        store: ExecutionStore,
        producer: SharedProducer,
        options: ServeOptions,
        metrics: IngestMetrics | None = None,
    ) -> None:
        self.store = store
        self.producer = producer
        self.options = options
        self.metrics = metrics or IngestMetrics()
        self.retention = ErrorFileRetention(
            options.ingest_errors_dir,
            options.ingest_errors_retention_days,
            on_deleted=self.metrics.error_files_expired.inc,
        )

    def rejects_path(self, execution_id: str) -> Path:
        """Where an execution's rejected lines (its error file) are written."""
        return self.options.ingest_errors_dir / f"{execution_id}{SUFFIX}"

    def new_execution(
        self, import_name: str, file_name: str, fmt: str, created_at_us: int | None = None
    ) -> Execution:
        """Record a PENDING execution seeded by a fresh request id (module docstring).

        ``created_at_us`` (default: now) seeds the versions of time-less records.
        """
        self.retention.maybe_prune()
        seed = hashlib.sha256(b"http-request:" + uuid.uuid4().bytes).hexdigest()
        created = time.time_ns() // 1000 if created_at_us is None else created_at_us
        return self.store.create(import_name, file_name, fmt, seed, created)

    def run(
        self,
        execution: Execution,
        source: BinaryIO,
        budget: ErrorBudget,
        admit: Admit | None = None,
        on_read: Callable[[], None] | None = None,
        cancel: CancelWatch | None = None,
        rejects: FirstRejects | None = None,
    ) -> Outcome:
        """Read ``source`` as ``execution.format``, produce, wait for the acks, save the end.

        ``on_read`` runs once the reader stopped, before the wait for acknowledgements (the
        body is drained there, so a 413 is told apart from a rejected line). With ``cancel``
        (long executions) the execution is RUNNING with its counters saved every few
        seconds, and a cancel request stops it between two records. ``rejects``: where the
        rejected lines go (default: the execution's error file, first error kept).
        """
        store = None
        if cancel is not None:
            store = self.store
            store.start(execution)
        if rejects is None:
            rejects = FirstRejects(self.rejects_path(execution.execution_id))
        sink = self.producer.sink()
        status, error = Status.SUCCEEDED, None
        outcome = Outcome(execution, None)
        try:
            run_upload(
                source,
                execution.format,
                execution,
                sink,
                store,
                rejects,
                budget,
                False,
                ReaderLimits(),
                _no_progress,
                cancel,
                admit=admit,
            )
        except (MaxErrorsExceededError, InputBrokenError) as exc:
            status, error = Status.FAILED, str(exc)
        except OSError as exc:  # the body failed before its first byte (client gone, cap)
            status, error = Status.FAILED, str(exc)
        except KeyboardInterrupt:  # raised by run_upload once ``cancel`` was requested
            status, error = Status.CANCELED, "canceled by a cancel request"
        except ExecutionCanceledError as exc:  # canceled elsewhere (CLI, another replica)
            status, error = Status.CANCELED, str(exc)
        except Exception as exc:  # e.g. the registry unreachable: never leave it RUNNING
            sink.wait_acknowledged(self.options.delivery_timeout_s, polled_elsewhere=True)
            with contextlib.suppress(Exception):
                finish(
                    self.store, execution, Status.FAILED, f"internal error: {type(exc).__name__}"
                )
            raise
        finally:
            rejects.close()
            if on_read is not None:
                on_read()
        outcome.first_reject = rejects.first
        unacked = sink.wait_acknowledged(self.options.delivery_timeout_s, polled_elsewhere=True)
        if sink.failed or unacked:
            outcome.kafka_unavailable = True
            status = Status.FAILED
            error = (
                f"{sink.failed} record(s) not delivered ({sink.first_error or 'timed out'}), "
                f"{unacked} unacknowledged"
            )
        self.metrics.records_produced.labels(execution.format).inc(sink.delivered)
        if rejects.count:
            self.metrics.lines_rejected.labels(execution.format).inc(rejects.count)
        finish(self.store, execution, status, error)
        return outcome


class CancelWatch(DeferredInterrupt):
    """A cancel request for a running HTTP execution: ``run_upload`` checks ``requested``
    between records, as it does for Ctrl-C (no signal handler is installed here)."""

    def cancel(self) -> None:
        """Stop the execution at the next record."""
        self.requested = True


def _no_progress(reader: Reader, execution: Execution, rejects: RejectsFile) -> None:
    """HTTP executions report their counts in the answer and on GET, not on a terminal."""
