"""Execute a batch's planned writes as grouped, pipelined, bounded Cassandra requests.

- **Grouped**: the statements are bound, then grouped into UNLOGGED batches
  (``consumer.grouping``; mode ``REPLICA_SET``, ``PARTITION_KEY`` or ``DISABLED``). Every
  statement carries its own write timestamp and TTL, so a batch is exactly its statements and
  is retried whole.
- **Pipelined**: ``submit`` starts the requests (at most ``max_in_flight`` outstanding, driver
  futures chained on the driver's I/O thread) and returns at once, so the loop polls and plans
  the next batch meanwhile; ``WriteJob.wait`` collects the outcome.
- **Two phases**: the records' writes first, the execution-progress marks (``extra``) only once
  every write is acknowledged, so progress never counts a record whose writes did not land.
- **Errors**: transient ones (timeouts, unavailable replicas, no reachable host, overload) are
  retried with backoff; permanent ones (``InvalidRequest``, values the driver cannot bind) are
  not: a grouped batch rejected permanently is split into single statements to find the
  culprit, and the statements still rejected alone are reported in ``WriteOutcome.rejected``
  so the loop can dead-letter the records they belong to. Errors no record can cause
  (authorisation, schema, protocol) raise ``PermanentWriteError``.
- **Bounded**: a job stops starting requests at ``deadline_s`` after submission and then
  reports what is unwritten as ``CassandraUnavailableError``; requests already sent end within
  the driver's request timeout. ``ConsumeSettings`` checks that deadline + request timeout
  stays below ``max.poll.interval.ms`` and the liveness window.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cassandra import (
    AuthenticationFailed,
    DriverException,
    FunctionFailure,
    InvalidRequest,
    RequestValidationException,
)
from cassandra import protocol as cql_protocol
from cassandra.cluster import NoHostAvailable
from cassandra.query import BatchStatement, BatchType

from consumer.batch import Write
from consumer.grouping import StatementGrouper
from consumer.metrics import ConsumerMetrics
from consumer.statements import Stmt

log = logging.getLogger(__name__)

# Errors that mean "Cassandra is not answering right now" while planning (registry lookups):
# the consumer holds the records and retries.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (DriverException, NoHostAvailable)

# Permanent and caused by what a record holds: the same values can never be written.
RECORD_ERRORS: tuple[type[BaseException], ...] = (
    InvalidRequest,
    FunctionFailure,
    TypeError,
    ValueError,
    OverflowError,
    struct.error,
)
# Permanent and caused by no record: credentials, grants, schema, protocol.
SETUP_ERRORS: tuple[type[BaseException], ...] = (
    RequestValidationException,
    cql_protocol.RequestValidationException,
    cql_protocol.ProtocolException,
    AuthenticationFailed,
)


def error_kind(error: BaseException) -> str:
    """``record``, ``setup`` (both permanent) or ``transient`` (retry it)."""
    if isinstance(error, RECORD_ERRORS):
        return "record"
    if isinstance(error, SETUP_ERRORS):
        return "setup"
    return "transient"


class _GroupedBatchWarnings(logging.Filter):
    """Drops the node's "Unlogged batch covering N partitions" warning for our own batches.

    ``REPLICA_SET`` batches span many partitions by design (same replicas, so no extra hop);
    the node warns past ``unlogged_batch_across_partitions_warn_threshold`` (10) and the
    driver logs each warning, which would be one log line per request. Every other server
    warning (batch size, tombstones) still gets through.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.args
            and isinstance(record.args, tuple)
            and str(record.args[0]).startswith("Unlogged batch covering")
        )


_DRIVER_PROTOCOL_LOG = logging.getLogger("cassandra.protocol")


def quiet_grouped_batch_warnings() -> None:
    """Install the filter once on the driver's protocol logger."""
    if not any(isinstance(f, _GroupedBatchWarnings) for f in _DRIVER_PROTOCOL_LOG.filters):
        _DRIVER_PROTOCOL_LOG.addFilter(_GroupedBatchWarnings())


class CassandraUnavailableError(RuntimeError):
    """Writes kept failing transiently until the attempts or the deadline ran out."""


class PermanentWriteError(RuntimeError):
    """Cassandra refuses writes for a reason no record is to blame for (grants, schema)."""


@dataclass
class WriteOutcome:
    """What a job wrote: indices (into its ``writes``) refused permanently, and why."""

    rejected: dict[int, str] = field(default_factory=dict)


@dataclass
class _Request:
    statement: Any
    members: list[int]


class _Round:
    """One pass over a list of requests with at most ``concurrency`` outstanding.

    Completions arrive on the driver's I/O thread and start the next request there (as the
    driver's own ``execute_concurrent`` does). A request that fails synchronously calls back
    in the launching thread; the per-thread ``launching`` flag turns that recursion into the
    outer loop's next iteration.
    """

    def __init__(
        self, session: Any, requests: list[_Request], concurrency: int, deadline: float
    ) -> None:
        self.requests = requests
        self.errors: list[BaseException | None] = [None] * len(requests)
        self.finished = [False] * len(requests)
        self._session = session
        self._concurrency = concurrency
        self._deadline = deadline
        self._next = 0
        self._outstanding = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self.done = threading.Event()
        # Called (on whichever thread finished the round, usually the driver's I/O thread)
        # once every request has an outcome; set before ``start``.
        self.on_done: Callable[[_Round], None] | None = None
        # Called with the statement count of each acknowledged request, before ``on_done``
        # (so the write metrics are counted before the chained progress marks land).
        self.on_written: Callable[[int], None] | None = None
        self._ended = not requests
        if not requests:
            self.done.set()

    def start(self) -> None:
        self._launch()

    def _launch(self) -> None:
        if getattr(self._local, "launching", False):
            return
        self._local.launching = True
        try:
            while True:
                with self._lock:
                    if self._next >= len(self.requests) or time.monotonic() >= self._deadline:
                        finished = self._outstanding == 0 and not self._ended
                        self._ended = self._ended or finished
                        break
                    if self._outstanding >= self._concurrency:
                        return
                    index = self._next
                    self._next += 1
                    self._outstanding += 1
                try:
                    future = self._session.execute_async(self.requests[index].statement)
                except Exception as exc:  # e.g. NoHostAvailable raised before sending
                    self._finish(index, exc)
                    continue
                future.add_callbacks(
                    self._finish, self._finish, callback_args=(index,), errback_args=(index,)
                )
        finally:
            self._local.launching = False
        if finished:
            if self.on_done is not None:
                self.on_done(self)
            self.done.set()

    def _finish(self, *args: Any) -> None:
        # callback(result, index) and errback(exception, index): the index is the last arg.
        index = args[-1]
        outcome = args[0] if len(args) > 1 else None
        with self._lock:
            self._outstanding -= 1
            self.finished[index] = True
            if isinstance(outcome, BaseException):
                self.errors[index] = outcome
        if self.on_written is not None and not isinstance(outcome, BaseException):
            self.on_written(len(self.requests[index].members))
        self._launch()


@dataclass
class PreparedWrites:
    """A batch's statements bound and grouped into requests, ready to send.

    Built while the previous batch's writes are in flight (binding and grouping are about a
    third of the consumer's CPU), sent by ``CassandraWriter.start``. Bound statements and
    batches can be sent again as they are, so a held batch keeps them for its retries.
    """

    bounds: list[Any]
    rejected: dict[int, str]
    requests: list[_Request]
    extra_bounds: list[Any]
    extra_requests: list[_Request]


class WriteJob:
    """One batch's writes, submitted; ``wait`` finishes it (retries included).

    The progress marks (``extra``) start on the driver's I/O thread as soon as the last write
    is acknowledged, when no write failed: they need not wait for the loop to come back from
    planning the next batch. After a failure ``wait`` retries the writes first, as before.
    """

    def __init__(self, writer: CassandraWriter, prepared: PreparedWrites) -> None:
        self._writer = writer
        self._prepared = prepared
        self._outcome = WriteOutcome(dict(prepared.rejected))
        self._deadline = time.monotonic() + writer.deadline_s
        self._lock = threading.Lock()
        self._extra_round: _Round | None = None
        self._round = writer.start_round(prepared.requests, self._deadline, self._chain_extra)

    def _chain_extra(self, first: _Round) -> None:
        if self._outcome.rejected or not all(first.finished) or any(first.errors):
            return  # ``wait`` retries or reports first
        self._start_extra()

    def _start_extra(self) -> _Round:
        with self._lock:
            if self._extra_round is None:
                self._extra_round = self._writer.start_round(
                    self._prepared.extra_requests, self._deadline
                )
            return self._extra_round

    def wait(self) -> WriteOutcome:
        """Block until written; raises ``CassandraUnavailableError``/``PermanentWriteError``."""
        writer = self._writer
        self._finish_phase(self._round, self._prepared.bounds)
        if self._outcome.rejected:
            return self._outcome  # progress marks are left to the loop's per-record pass
        extra = self._start_extra()
        before = dict(self._outcome.rejected)
        self._finish_phase(extra, self._prepared.extra_bounds)
        if self._outcome.rejected != before:
            writer.metrics.unattributed_write_errors.inc()
            raise PermanentWriteError(
                "Cassandra refused an execution-progress write: "
                + ", ".join(sorted(set(self._outcome.rejected.values())))
            )
        return self._outcome

    def _finish_phase(self, current: _Round, bounds: list[Any]) -> None:
        writer = self._writer
        delay = writer.retry_initial_s
        attempt = 1
        while True:
            writer.wait_round(current)
            retry: list[_Request] = []
            transient = 0
            first_error = ""
            for request, error, finished in zip(
                current.requests, current.errors, current.finished, strict=True
            ):
                if finished and error is None:  # counted by the round (``on_written``)
                    continue
                if not finished:  # never started: the deadline passed
                    retry.append(request)
                    transient += 1
                    continue
                assert error is not None
                kind = error_kind(error)
                first_error = first_error or type(error).__name__
                writer.metrics.write_errors.inc(len(request.members))
                if kind == "setup":
                    writer.metrics.unattributed_write_errors.inc()
                    raise PermanentWriteError(
                        f"Cassandra refuses the consumer's writes: {type(error).__name__}"
                    )
                if kind == "record" and len(request.members) > 1:
                    # Find the culprit: the same statements one by one, without waiting.
                    retry.extend(_Request(bounds[m], [m]) for m in request.members)
                elif kind == "record":
                    self._outcome.rejected[request.members[0]] = type(error).__name__
                    writer.metrics.rejected_writes.inc()
                else:
                    retry.append(request)
                    transient += 1
            if not retry:
                return
            if transient:
                log.warning(
                    "cassandra writes failed",
                    extra={
                        "fields": {
                            "failed": transient,
                            "attempt": attempt,
                            "error": first_error or "deadline",
                        }
                    },
                )
                attempt += 1
                now = time.monotonic()
                if attempt > writer.retry_attempts or now + delay >= self._deadline:
                    raise CassandraUnavailableError(
                        f"{sum(len(r.members) for r in retry)} writes still failing after "
                        f"{attempt - 1} attempts"
                    )
                writer.metrics.retries.inc(transient)
                writer.sleep(delay)
                delay = min(delay * 2, writer.retry_max_s)
            current = writer.start_round(retry, self._deadline)


class CassandraWriter:
    """Binds, groups and executes ``Write`` lists (see the module docstring)."""

    def __init__(
        self,
        session: Any,
        prepared: dict[Stmt, Any],
        metrics: ConsumerMetrics,
        max_in_flight: int,
        retry_initial_s: float,
        retry_max_s: float,
        retry_attempts: int,
        grouper: StatementGrouper | None = None,
        deadline_s: float = 60.0,
        request_timeout_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.session = session
        self.metrics = metrics
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.retry_attempts = retry_attempts
        self.deadline_s = deadline_s
        self.sleep = sleep
        self._prepared = prepared
        self._concurrency = max_in_flight
        self._grouper = grouper or StatementGrouper("DISABLED", 1, 1)
        self._request_timeout_s = request_timeout_s
        self._in_flight_rounds = 0
        self._lock = threading.Lock()
        if self._grouper.mode == "REPLICA_SET":
            quiet_grouped_batch_warnings()

    def prepare(
        self, writes: Sequence[Write], extra: Sequence[tuple[Any, tuple[Any, ...]]] = ()
    ) -> PreparedWrites:
        """Bind and group ``writes`` (and the progress marks ``extra``) without sending."""
        bounds: list[Any] = []
        rejected: dict[int, str] = {}
        prepared = self._prepared
        for index, write in enumerate(writes):
            try:
                bounds.append(prepared[write.stmt].bind(write.values))
            except RECORD_ERRORS as exc:  # a value the column type cannot hold
                bounds.append(None)
                rejected[index] = type(exc).__name__
                self.metrics.rejected_writes.inc()
        extra_bounds = [statement.bind(values) for statement, values in extra]
        return PreparedWrites(
            bounds,
            rejected,
            self.requests(bounds, skip=rejected),
            extra_bounds,
            self.requests(extra_bounds),
        )

    def start(self, prepared: PreparedWrites) -> WriteJob:
        """Start sending prepared writes (not awaited: ``WriteJob.wait``)."""
        return WriteJob(self, prepared)

    def submit(
        self, writes: Sequence[Write], extra: Sequence[tuple[Any, tuple[Any, ...]]] = ()
    ) -> WriteJob:
        """Bind and start sending ``writes``; ``extra`` (progress) follows once they landed."""
        return self.start(self.prepare(writes, extra))

    def write(
        self, writes: Sequence[Write], extra: Sequence[tuple[Any, tuple[Any, ...]]] = ()
    ) -> WriteOutcome:
        """``submit`` and ``wait``: every write and then ``extra``, or an exception."""
        return self.submit(writes, extra).wait()

    def requests(self, bounds: Sequence[Any], skip: dict[int, str] | None = None) -> list[_Request]:
        """The requests sending ``bounds``: grouped UNLOGGED batches or single statements."""
        indices = [i for i in range(len(bounds)) if not skip or i not in skip]
        live = [bounds[i] for i in indices]
        out: list[_Request] = []
        for group in self._grouper.group(live):
            members = [indices[g] for g in group]
            if len(members) == 1:
                out.append(_Request(bounds[members[0]], members))
                continue
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for member in members:
                batch.add(bounds[member])
            batch.is_idempotent = True
            out.append(_Request(batch, members))
        return out

    def start_round(
        self,
        requests: list[_Request],
        deadline: float,
        on_done: Callable[[_Round], None] | None = None,
    ) -> _Round:
        """Start sending ``requests`` (at most ``max_in_flight`` outstanding)."""
        current = _Round(self.session, requests, self._concurrency, deadline)
        current.on_done = on_done
        current.on_written = self.metrics.cassandra_writes.inc
        with self._lock:
            self._in_flight_rounds += 1
        self.metrics.in_flight.set(min(len(requests), self._concurrency))
        self.metrics.grouped_requests.inc(len(requests))
        current.start()
        return current

    def wait_round(self, current: _Round) -> None:
        """Wait for a round; past its deadline, requests already sent get one timeout more."""
        remaining = current._deadline - time.monotonic()
        current.done.wait(max(remaining, 0) + self._request_timeout_s + 5.0)
        with self._lock:
            self._in_flight_rounds -= 1
            if self._in_flight_rounds == 0:
                self.metrics.in_flight.set(0)
