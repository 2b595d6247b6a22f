"""Retention of ingestion executions' error files (``serve.ingest_errors_retention_days``).

Every execution with a rejected line leaves ``<ingest_dir>/<execution id>.rejects.ndjson``;
without a limit the volume only grows (a busy Village integration sending bad lines writes a
file per group). Files whose last write is older than the retention are deleted, at most once
per ``every_s`` and only by a process that is ingesting (the check runs when an execution is
created), so an idle replica does no scanning. Replicas share the directory: a file another
replica deleted first is not an error. ``GET .../errors`` of an execution whose file expired
answers 410, not an empty file that would claim no line was rejected.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

SUFFIX = ".rejects.ndjson"


class ErrorFileRetention:
    """Deletes error files older than ``days`` (0 = keep them forever)."""

    def __init__(
        self,
        directory: Path,
        days: float,
        every_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
        on_deleted: Callable[[int], None] | None = None,
    ) -> None:
        self.directory = directory
        self.days = days
        self.every_s = every_s
        self._clock = clock
        self._on_deleted = on_deleted
        self._next = 0.0
        self._lock = threading.Lock()

    def maybe_prune(self) -> int:
        """Prune when the last pass is ``every_s`` old; returns the files deleted."""
        if self.days <= 0:
            return 0
        with self._lock:
            now = self._clock()
            if now < self._next:
                return 0
            self._next = now + self.every_s
        return self.prune(now)

    def prune(self, now: float | None = None) -> int:
        """Delete every error file last written before ``now - days``."""
        cutoff = (self._clock() if now is None else now) - self.days * 86400
        deleted = 0
        with contextlib.suppress(FileNotFoundError):
            for path in self.directory.iterdir():
                if not path.name.endswith(SUFFIX):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        deleted += 1
        if deleted and self._on_deleted is not None:
            self._on_deleted(deleted)
        return deleted
