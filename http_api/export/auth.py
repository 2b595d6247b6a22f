"""API keys: configured values and mounted secret files, checked in constant time.

Keys are never logged or stored: a job records ``key_id`` (a short SHA-256 prefix), enough
to enforce per-key limits and to refuse a poll from another key.

One store serves the export and the ingestion routes. Each key carries a ``Grant``: its
permissions (``ingest``, ``export``) and the tenants it is bound to (mediarithmics datamart
ids, Village network ids, Segmenter). Plain keys (``serve.api_keys``, a key file holding
just the key) are export-only; ``serve.api_key_grants`` and key files holding a JSON object
``{"key": ..., "permissions": [...], "datamarts": [...], "networks": [...]}`` bind the rest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr, ValidationError

from segflow.settings import ApiKeyGrant

log = logging.getLogger(__name__)
ANY_TENANT = "*"


def key_id(key: str) -> str:
    """Stable, non-reversible id of a key (16 hex chars of its SHA-256)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Grant:
    """What one key may do, and for which tenants."""

    key_id: str
    permissions: frozenset[str]
    datamarts: frozenset[str] = frozenset()
    networks: frozenset[str] = frozenset()
    segmenter: bool = False

    def allows(self, permission: str) -> bool:
        """Whether the key has ``permission`` (``ingest`` / ``export``)."""
        return permission in self.permissions

    def datamart(self, datamart_id: str) -> bool:
        """Whether the key is bound to this mediarithmics datamart."""
        return ANY_TENANT in self.datamarts or datamart_id in self.datamarts

    def network(self, network_id: str) -> bool:
        """Whether the key is bound to this Village network."""
        return ANY_TENANT in self.networks or network_id in self.networks


EXPORT_ONLY = frozenset({"export"})


def grant_of(spec: ApiKeyGrant) -> tuple[bytes, Grant]:
    """The digest and grant of one configured key."""
    value = spec.key.get_secret_value()
    return _digest_bytes(value), Grant(
        key_id(value),
        frozenset(spec.permissions),
        frozenset(spec.datamarts),
        frozenset(spec.networks),
        spec.segmenter,
    )


class ApiKeys:
    """The accepted keys; a key directory is re-read when it changes (secret rotation)."""

    def __init__(
        self,
        keys: list[SecretStr],
        key_dir: Path | None,
        grants: Sequence[ApiKeyGrant] = (),
    ) -> None:
        self._static = [_plain(k.get_secret_value()) for k in keys if k.get_secret_value()]
        self._static += [grant_of(spec) for spec in grants if spec.key.get_secret_value()]
        self._dir = key_dir
        self._dir_stamp: float | None = None
        self._dir_keys: list[tuple[bytes, Grant]] = []
        self._lock = threading.Lock()

    def count(self) -> int:
        """How many keys are accepted right now."""
        return len(self._static) + len(self._from_dir())

    def identify(self, presented: str | None) -> str | None:
        """The key id of ``presented`` if it is an accepted key with export permission."""
        grant = self.grant(presented)
        return grant.key_id if grant is not None and grant.allows("export") else None

    def grant(self, presented: str | None) -> Grant | None:
        """The grant of ``presented`` if it is an accepted key, else None.

        Every accepted key is compared (no early exit) on fixed-length digests, so the time
        taken does not reveal which key or how much of it matched.
        """
        if not presented:
            return None
        digest = _digest_bytes(presented)
        found: Grant | None = None
        for candidate, grant in self._static + self._from_dir():
            if hmac.compare_digest(digest, candidate):
                found = grant
        return found

    def _from_dir(self) -> list[tuple[bytes, Grant]]:
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


def _read_dir(directory: Path) -> list[tuple[bytes, Grant]]:
    """One key per regular file (Kubernetes' ``..data`` links and dotfiles skipped).

    A file holds the bare key (export-only) or a JSON object of ``serve.api_key_grants``'s
    shape; a file that is not valid is skipped and logged by name, never by content.
    """
    keys: list[tuple[bytes, Grant]] = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        value = path.read_text(encoding="utf-8").strip()
        if not value:
            continue
        if value.startswith("{"):
            try:
                keys.append(grant_of(ApiKeyGrant.model_validate(json.loads(value))))
            except (ValueError, ValidationError):
                log.warning("invalid API key file skipped", extra={"fields": {"file": path.name}})
            continue
        keys.append(_plain(value))
    return keys


def _digest_bytes(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _plain(key: str) -> tuple[bytes, Grant]:
    return _digest_bytes(key), Grant(key_id(key), EXPORT_ONLY)
