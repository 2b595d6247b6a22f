"""Is Cassandra answering? A cheap, rate-limited check for readiness endpoints.

The consumer's ``/readyz`` and the export API's readiness both ask it on every probe; it
queries at most every few seconds so that a busy probe never loads the node.
"""

from __future__ import annotations

import time
from typing import Any


class CassandraProbe:
    """``SELECT release_version`` at most every few seconds, for readiness."""

    def __init__(self, session: Any, every_s: float = 5.0) -> None:
        self._session = session
        self._every = every_s
        self._checked = 0.0
        self._ok = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._checked >= self._every:
            self._checked = now
            try:
                self._session.execute("SELECT release_version FROM system.local", timeout=2)
                self._ok = True
            except Exception:
                self._ok = False
        return self._ok
