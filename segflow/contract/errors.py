"""The error types of the contract: why a record could not be decoded, encoded or read.

They are values the uploader and the consumer act on (dead-letter reason, rejects file line),
so each carries a machine-readable reason next to its message rather than only prose.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from segflow.errors import SegflowError

# A rejected line is echoed back to the user; an unbounded raw line would make the rejects
# file (and any log) as large as the bad input, so it is cut here.
RAW_PREVIEW_CHARS = 1000


class ContractError(SegflowError):
    """Base of every error raised by ``segflow.contract``."""


class DecodeReason(StrEnum):
    """Why bytes from the topic are not a segment command (the dead-letter ``reason``)."""

    BAD_MAGIC = "bad_magic"
    UNKNOWN_FINGERPRINT = "unknown_fingerprint"
    TRUNCATED = "truncated"
    INVALID_BODY = "invalid_body"
    TRAILING_BYTES = "trailing_bytes"


class DecodeError(ContractError):
    """A record value that is not a single-object-encoded segment command."""

    def __init__(self, reason: DecodeReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class EncodeError(ContractError):
    """A record that does not fit the current schema (a bug in whoever built it)."""


class SchemaEvolutionError(ContractError):
    """A schema kept in ``schemas/`` that the current reader schema cannot read, or a clash."""


def preview(raw: str | bytes | None, limit: int = RAW_PREVIEW_CHARS) -> str | None:
    """A printable, bounded excerpt of a raw input line for error reports."""
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else raw
    if len(text) > limit:
        return text[:limit] + f"...[{len(text) - limit} more chars]"
    return text


@dataclass(frozen=True, slots=True)
class RecordError:
    """One rejected input record: where it was, which field, why, and what it looked like.

    ``line`` is the 1-based line of the record (mediarithmics, Village; a CSV record spanning
    several lines is reported at its first line) or the Segmenter position (k = persons[k-1]).
    ``field`` is None when the record as a whole is wrong (unparsable line, truncated file).
    ``fatal`` marks errors after which the reader stopped (corrupt gzip, broken JSON document,
    decompressed-size cap): the rest of the file was not read. ``notice`` marks a record that
    was produced all the same, whose effect the user should know (an expiry already passed:
    a removal); it is written to the rejects file but is not a rejected line.
    """

    file: str
    line: int
    field: str | None
    reason: str
    raw: str | None = None
    fatal: bool = False
    notice: bool = False

    def to_reject(self) -> dict[str, Any]:
        """The rejects-file object: ``{line, field, reason, raw}`` (plus ``fatal`` or
        ``notice`` when set)."""
        out: dict[str, Any] = {
            "line": self.line,
            "field": self.field,
            "reason": self.reason,
            "raw": self.raw,
        }
        if self.fatal:
            out["fatal"] = True
        if self.notice:
            out["notice"] = True
        return out

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"
