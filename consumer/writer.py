"""Execute planned writes concurrently, retrying idempotent statements with backoff.

All consumer statements are idempotent (fixed timestamps), so a failed or timed-out write is
simply re-sent. After ``retry_attempts`` rounds the batch is reported as not written; the
consumer then pauses its partitions and tries again later, committing nothing meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from cassandra import DriverException
from cassandra.cluster import NoHostAvailable
from cassandra.concurrent import execute_concurrent
from cassandra.query import UNSET_VALUE

from consumer.batch import UNSET, Write
from consumer.metrics import ConsumerMetrics
from consumer.statements import Stmt

log = logging.getLogger(__name__)

# Errors that mean "Cassandra is not answering right now" (timeouts, unavailable replicas, no
# reachable host), as opposed to bugs: the consumer holds its batch and retries on these.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (DriverException, NoHostAvailable)


class CassandraUnavailableError(RuntimeError):
    """Writes kept failing after every retry; nothing may be committed for them."""


class CassandraWriter:
    """Applies ``Write`` lists with at most ``max_in_flight`` statements outstanding."""

    def __init__(
        self,
        session: Any,
        prepared: dict[Stmt, Any],
        metrics: ConsumerMetrics,
        max_in_flight: int,
        retry_initial_s: float,
        retry_max_s: float,
        retry_attempts: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._session = session
        self._prepared = prepared
        self._metrics = metrics
        self._concurrency = max_in_flight
        self._initial = retry_initial_s
        self._max = retry_max_s
        self._attempts = retry_attempts
        self._sleep = sleep

    def write(
        self, writes: Sequence[Write], extra: Sequence[tuple[Any, tuple[Any, ...]]] = ()
    ) -> None:
        """Execute every write (and ``extra`` prepared statements with their values).

        Raises ``CassandraUnavailableError`` if some still fail after the last attempt.
        """
        pending = [
            (self._prepared[w.stmt], tuple(UNSET_VALUE if v is UNSET else v for v in w.values))
            for w in writes
        ]
        pending.extend(extra)
        delay = self._initial
        for attempt in range(1, self._attempts + 1):
            if not pending:
                return
            self._metrics.in_flight.set(min(len(pending), self._concurrency))
            try:
                results = execute_concurrent(
                    self._session,
                    pending,
                    concurrency=self._concurrency,
                    raise_on_first_error=False,
                )
            finally:
                self._metrics.in_flight.set(0)
            failed = [item for item, (ok, _result) in zip(pending, results, strict=True) if not ok]
            self._metrics.cassandra_writes.inc(len(pending) - len(failed))
            if not failed:
                return
            first_error = next(result for ok, result in results if not ok)
            self._metrics.write_errors.inc(len(failed))
            log.warning(
                "cassandra writes failed",
                extra={
                    "fields": {
                        "failed": len(failed),
                        "attempt": attempt,
                        "error": type(first_error).__name__,
                    }
                },
            )
            pending = failed
            if attempt < self._attempts:
                self._metrics.retries.inc(len(failed))
                self._sleep(delay)
                delay = min(delay * 2, self._max)
        raise CassandraUnavailableError(
            f"{len(pending)} writes still failing after {self._attempts} attempts"
        )
