"""Structured logging on stderr: text on a terminal, one JSON object per line otherwise.

Log lines carry counts, ids of executions/partitions and reasons, never user keys or other
PII; callers pass context through ``extra={"fields": {...}}`` so it lands as JSON keys (or as
``key=value`` pairs in text). librdkafka's own lines arrive here too (``segflow.kafka_logging``).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from segflow.settings import LogSettings

# "color_message": uvicorn's ANSI-coloured copy of msg, noise in JSON.
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "color_message",
}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    fields = getattr(record, "fields", None)
    if isinstance(fields, dict):
        payload.update(fields)
    for key, value in record.__dict__.items():
        if key not in _RESERVED and key != "fields" and not key.startswith("_"):
            payload[key] = value
    return payload


class JsonFormatter(logging.Formatter):
    """Render a record as a single JSON line with stable keys (ts, level, logger, msg, ...)."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update(_fields(record))
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger message key=value ...`` for people at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{key}={value}" for key, value in _fields(record).items())
        if not extra:
            return line
        head, sep, tail = line.partition("\n")  # keep a traceback below the fields
        return f"{head} {extra}{sep}{tail}"


def resolved_format(settings: LogSettings) -> str:
    """``json`` or ``text``: ``auto`` is text when stderr is a terminal."""
    if settings.format != "auto":
        return settings.format
    try:
        return "text" if sys.stderr.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


def configure_logging(settings: LogSettings) -> None:
    """Install the process-wide handler; noisy driver loggers are kept at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if resolved_format(settings) == "json" else TextFormatter()
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    for noisy in ("cassandra", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
