"""librdkafka's own logs and errors through Python logging: structured and rate-limited.

Left alone, librdkafka prints its log lines raw on stderr (``%3|1700000000.123|FAIL|...``):
with the brokers down that is about 20 lines a second, which breaks a JSON log stream and
buries segflow's one-line error. confluent-kafka's ``logger`` setting hands every line to a
Python object instead, and ``error_cb`` every client error; ``client_log_hooks`` gives both to
every client segflow builds (``KafkaSettings.client_config``), so producers, consumers and
admin clients all log the same way:

- each line becomes a record of the ``kafka.librdkafka`` logger with ``facility`` and
  ``client`` fields (JSON logs stay one valid object per line);
- the same message (digits ignored, so "after 0ms" and "after 3ms" are one message) passes at
  most once per ``interval_s``; the next one that passes carries ``suppressed``: how many were
  dropped in between;
- an error that means the brokers cannot be reached says "Kafka unreachable at <servers>".

librdkafka queues its log lines until the client is polled (``poll``, ``consume``, ``flush``),
so they appear at the caller's next poll, never from a librdkafka thread.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from segflow.kafka_errors import is_unreachable_error

LIBRDKAFKA_LOGGER = "kafka.librdkafka"
CLIENT_ERROR_LOGGER = "kafka.client"
_DIGITS = re.compile(r"\d+")
_THREAD_PREFIX = re.compile(r"^\[thrd:[^\]]*\]:\s*")


class RateLimiter:
    """Admits one event per key per interval and counts the ones it held back."""

    def __init__(
        self,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1024,
    ) -> None:
        self._interval = interval_s
        self._clock = clock
        self._max_keys = max_keys
        self._last: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def admit(self, key: Hashable) -> int | None:
        """``None`` to drop the event; otherwise how many of this key were dropped before."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._held[key] = self._held.get(key, 0) + 1
                return None
            if last is None and len(self._last) >= self._max_keys:
                self._forget_oldest()
            self._last[key] = now
            return self._held.pop(key, 0)

    def _forget_oldest(self) -> None:
        oldest = min(self._last, key=self._last.__getitem__)
        del self._last[oldest]
        self._held.pop(oldest, None)


class _RateLimitedReport:
    """What both hooks share: the servers they name, their rate limit, their logger."""

    default_logger: str

    def __init__(
        self,
        bootstrap_servers: str,
        interval_s: float,
        target: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._servers = bootstrap_servers
        self._limiter = RateLimiter(interval_s, clock)
        self._target = target or logging.getLogger(self.default_logger)


class LibrdkafkaLogger(_RateLimitedReport):
    """The ``logger`` of a librdkafka client (confluent-kafka calls its ``log`` method)."""

    default_logger = LIBRDKAFKA_LOGGER

    def log(self, level: int, msg: str, *args: Any) -> None:
        """One librdkafka line: ``log(level, "%s [%s] %s", facility, client_name, text)``."""
        if len(args) == 3:
            facility, client, text = (str(arg) for arg in args)
        else:
            facility, client, text = "", "", msg % args if args else msg
        if not self._target.isEnabledFor(level):
            return
        text = _THREAD_PREFIX.sub("", text)
        suppressed = self._limiter.admit((level, facility, _DIGITS.sub("#", text)))
        if suppressed is None:
            return
        fields: dict[str, Any] = {
            "facility": facility,
            "client": client,
            "bootstrap_servers": self._servers,
        }
        if suppressed:
            fields["suppressed"] = suppressed
        self._target.log(level, text, extra={"fields": fields})


class KafkaErrorReporter(_RateLimitedReport):
    """The ``error_cb`` of a librdkafka client: one rate-limited record per kind of error."""

    default_logger = CLIENT_ERROR_LOGGER

    def __call__(self, error: Any) -> None:
        """Report ``error`` (a ``KafkaError``) unless the same kind was reported just now."""
        fatal = bool(error.fatal()) if hasattr(error, "fatal") else False
        suppressed = self._limiter.admit((error.code(), fatal))
        if suppressed is None:
            return
        if is_unreachable_error(error):
            message = f"Kafka unreachable at {self._servers}: {error.str()}"
        else:
            message = f"Kafka client error: {error.str()}"
        fields: dict[str, Any] = {"error": error.name(), "bootstrap_servers": self._servers}
        if suppressed:
            fields["suppressed"] = suppressed
        if fatal:
            fields["fatal"] = True
        self._target.log(
            logging.ERROR if fatal else logging.WARNING, message, extra={"fields": fields}
        )


def client_log_hooks(bootstrap_servers: str, interval_s: float) -> dict[str, Any]:
    """The ``logger`` and ``error_cb`` entries of a librdkafka client configuration."""
    return {
        "logger": LibrdkafkaLogger(bootstrap_servers, interval_s),
        "error_cb": KafkaErrorReporter(bootstrap_servers, interval_s),
    }
