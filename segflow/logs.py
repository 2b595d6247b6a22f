"""Structured logging: one JSON object per line on stderr, no user identifiers.

Log lines carry counts, ids of executions/partitions and reasons, never user keys or other
PII; callers pass context through ``extra={"fields": {...}}`` so it lands as JSON keys.
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
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(fields)
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key != "fields" and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def configure_logging(settings: LogSettings) -> None:
    """Install the process-wide handler once; noisy driver loggers are kept at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    for noisy in ("cassandra", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
