"""Ctrl-C during an upload, taken at a safe point.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be; inside
confluent-kafka's ``produce()`` that surfaced as ``TypeError: expected header key to be
unicode string`` (exit 1 instead of 130) and could leave one enqueued record uncounted. While
the upload loop runs, SIGINT only sets a flag; the loop checks it between records and stops
there, so the execution's count matches what was enqueued. A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any


class DeferredInterrupt:
    """Context manager: SIGINT -> ``requested`` (main thread only; elsewhere a no-op)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
