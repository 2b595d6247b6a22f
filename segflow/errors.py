"""Exit codes and the error type every command turns into one clear line on stderr."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, documented in the README."""

    OK = 0
    FAILED = 1
    USAGE = 2
    KAFKA_UNREACHABLE = 3
    INTERRUPTED = 130


class SegflowError(Exception):
    """An expected failure: reported as one line (no traceback) with its exit code."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code
