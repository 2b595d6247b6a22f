"""API keys: configured values and mounted secret files, checked in constant time.

Keys are never logged or stored: a job records ``key_id`` (a short SHA-256 prefix), enough
to enforce per-key limits and to refuse a poll from another key.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from pathlib import Path

from pydantic import SecretStr


def key_id(key: str) -> str:
    """Stable, non-reversible id of a key (16 hex chars of its SHA-256)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class ApiKeys:
    """The accepted keys; a key directory is re-read when it changes (secret rotation)."""

    def __init__(self, keys: list[SecretStr], key_dir: Path | None) -> None:
        self._static = [_digest(k.get_secret_value()) for k in keys if k.get_secret_value()]
        self._dir = key_dir
        self._dir_stamp: float | None = None
        self._dir_keys: list[tuple[bytes, str]] = []
        self._lock = threading.Lock()

    def count(self) -> int:
        """How many keys are accepted right now."""
        return len(self._static) + len(self._from_dir())

    def identify(self, presented: str | None) -> str | None:
        """The key id of ``presented`` if it is an accepted key, else None.

        Every accepted key is compared (no early exit) on fixed-length digests, so the time
        taken does not reveal which key or how much of it matched.
        """
        if not presented:
            return None
        digest, _ = _digest(presented)
        found: str | None = None
        for candidate, candidate_id in self._static + self._from_dir():
            if hmac.compare_digest(digest, candidate):
                found = candidate_id
        return found

    def _from_dir(self) -> list[tuple[bytes, str]]:
        if self._dir is None:
            return []
        try:
            stamp = max(
                [self._dir.stat().st_mtime] + [p.stat().st_mtime for p in self._dir.iterdir()]
            )
        except OSError:
            return []
        with self._lock:
            if stamp != self._dir_stamp:
                self._dir_keys = _read_dir(self._dir)
                self._dir_stamp = stamp
            return self._dir_keys


def _read_dir(directory: Path) -> list[tuple[bytes, str]]:
    """One key per regular file (Kubernetes' ``..data`` links and dotfiles skipped)."""
    keys: list[tuple[bytes, str]] = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        value = path.read_text(encoding="utf-8").strip()
        if value:
            keys.append(_digest(value))
    return keys


def _digest(key: str) -> tuple[bytes, str]:
    return hashlib.sha256(key.encode()).digest(), key_id(key)
