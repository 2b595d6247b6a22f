"""Command ids and versions: deterministic, so re-reading a file changes nothing in effect.

Versions are the Cassandra write timestamps of the consumer (µs). They are derived from the
execution, never from the wall clock at read time, so producing the same execution twice
gives byte-identical commands:

* mediarithmics: ``created_at_us + line`` (the execution's created time seeds its versions).
* Village: ``status_change_timestamp * 1_000_000 + line``; without a timestamp,
  ``created_at_us + line`` (Village's own rule: the time the data was received).
* Segmenter: one document = one replace; all its records share ``created_at_us + 1`` and the
  consumer clears the segment's feed layer at ``version - 1 = created_at_us``.

The line number makes versions of one file distinct and ordered like the file, so later lines
win over earlier ones about the same user and segment. Consequence to know: a file of N lines
spans N µs of versions; commands of a second execution created less than N µs later may
interleave with the first file's last lines.

Command id = first 128 bits of BLAKE2b over (content SHA-256, created_at_us, position), as 32
hex chars: stable for one execution, distinct across executions of the same content (a
``--new-execution`` re-run gets new versions, so it gets new ids too).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import BinaryIO

US_PER_S = 1_000_000
US_PER_MS = 1_000
MS_PER_MINUTE = 60_000
# 9999-12-31T23:59:59Z: no real timestamp is later, and every bound below fits an int64 µs.
MAX_TIMESTAMP_S = 253_402_300_799
MAX_TIMESTAMP_MS = MAX_TIMESTAMP_S * 1000 + 999
# The last µs of year 9999. A version is a write timestamp *and* a time (event day, updated_at):
# beyond this no ``datetime`` exists, so the contract refuses larger versions (``invalid``,
# naming ``version``) and the readers refuse lines that would produce one.
MAX_VERSION = MAX_TIMESTAMP_S * US_PER_S + 999_999
MAX_LONG = (1 << 63) - 1
COMMAND_ID_HEX_CHARS = 32

_SHA256_HEX = frozenset("0123456789abcdef")


class CommandIds:
    """Ids and versions of one execution (one file content, one created time)."""

    __slots__ = ("_base", "content_sha256", "created_at_us")

    def __init__(self, content_sha256: str, created_at_us: int) -> None:
        if len(content_sha256) != 64 or not _SHA256_HEX.issuperset(content_sha256):
            raise ValueError("content_sha256 must be 64 lowercase hex characters")
        if not 0 < created_at_us <= MAX_TIMESTAMP_S * US_PER_S:
            raise ValueError("created_at_us must be a positive µs timestamp before year 10000")
        self.content_sha256 = content_sha256
        self.created_at_us = created_at_us
        self._base = hashlib.blake2b(
            f"segflow-command/1\x00{content_sha256}\x00{created_at_us}\x00".encode(),
            digest_size=COMMAND_ID_HEX_CHARS // 2,
        )

    def hasher(self) -> hashlib.blake2b:
        """The execution's BLAKE2b state, for hot loops that inline ``command_id``.

        ``copy()``, ``update(b"%d" % position)``, ``hexdigest()`` equals
        ``command_id(position)``; it saves a function call per line.
        """
        return self._base

    def command_id(self, position: int) -> str:
        """The id of the command read at ``position`` (line, or Segmenter position)."""
        digest = self._base.copy()
        digest.update(b"%d" % position)
        return digest.hexdigest()

    def line_version(self, line: int) -> int:
        """mediarithmics (and Village without timestamp): ``created_at_us + line``."""
        return self.created_at_us + line

    def replace_version(self) -> int:
        """The version shared by every record of a Segmenter document's replace."""
        return self.created_at_us + 1


def village_version(status_change_timestamp_s: int, line: int) -> int:
    """Village with a timestamp: ``seconds * 1_000_000 + line``."""
    return status_change_timestamp_s * US_PER_S + line


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()
US_PER_DAY = 86_400 * US_PER_S


def version_datetime(version_us: int) -> datetime:
    """The UTC time of a version (µs), exact: integer arithmetic, no float rounding.

    ``datetime.fromtimestamp(v / 1e6)`` rounds the last µs of year 9999 up into year 10000 and
    raises; this is defined for every version in ``0..MAX_VERSION``.
    """
    return _EPOCH + timedelta(microseconds=version_us)


def datetime_version(moment: datetime) -> int:
    """The version (µs since the epoch) of an aware time, exact: the inverse of
    ``version_datetime`` (``timestamp() * 1e6`` is 32 µs coarse near year 9999)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def version_day(version_us: int) -> date:
    """The UTC day of a version (µs), exact for every version in ``0..MAX_VERSION``."""
    return date.fromordinal(_EPOCH_ORDINAL + version_us // US_PER_DAY)


def ms_datetime(ms: int) -> datetime:
    """The UTC time of a millisecond timestamp (expiries), exact for ``0..MAX_TIMESTAMP_MS``."""
    return _EPOCH + timedelta(milliseconds=ms)


def sha256_of_stream(stream: BinaryIO, chunk_size: int = 1 << 20) -> str:
    """SHA-256 (hex) of a binary stream's remaining bytes, read in bounded chunks.

    The uploader hashes the file *as stored* (compressed bytes for ``.gz``): the hash names
    the execution, so the same upload is recognised whatever the reader later does.
    """
    digest = hashlib.sha256()
    while chunk := stream.read(chunk_size):
        digest.update(chunk)
    return digest.hexdigest()
