"""Export jobs persisted in Cassandra (``export_jobs``): creation, ownership, outcome.

Ownership changes are lightweight transactions, so exactly one worker runs a job at a time:
``claim`` takes a queued job (or one whose worker stopped renewing its lease), ``renew``
extends the lease and tells a worker that lost it, ``finish``/``release``/``fail`` only apply
while the caller still owns the job. Every write carries a TTL one day past the job's
expiry, so rows never outlive a stopped janitor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from cassandra import ConsistencyLevel

from segflow.db.session import aware

SCOPE = "all"
ROW_GRACE = timedelta(days=1)
Clock = Callable[[], datetime]

COLUMNS = (
    "export_id, key_id, request, status, created_at, expires_at, attempts, owner, lease_until, "
    "started_at, finished_at, profiles, file_bytes, json_bytes, error"
)


def utc_now() -> datetime:
    """The real clock (tests inject their own)."""
    return datetime.now(tz=UTC)


class JobStatus(StrEnum):
    """PENDING -> RUNNING -> READY | FAILED (RUNNING -> PENDING again on retry/shutdown)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    READY = "READY"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class ExportJob:
    """One row of export_jobs."""

    export_id: str
    key_id: str
    request: str
    status: JobStatus
    created_at: datetime
    expires_at: datetime
    attempts: int
    owner: str | None
    lease_until: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    profiles: int | None
    file_bytes: int | None
    json_bytes: int | None
    error: str | None

    @property
    def open(self) -> bool:
        """Queued or running: counts against the pending-exports limit."""
        return self.status in (JobStatus.PENDING, JobStatus.RUNNING)


class ExportJobStore:
    """Prepared statements over export_jobs."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._insert = session.prepare(
            "INSERT INTO {ks}.export_jobs (scope, export_id, key_id, request, status, "
            "created_at, expires_at, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, 0) USING TTL ?"
        )
        self._get = session.prepare(
            f"SELECT {COLUMNS} FROM {{ks}}.export_jobs WHERE scope = ? AND export_id = ?"
        )
        self._all = session.prepare(f"SELECT {COLUMNS} FROM {{ks}}.export_jobs WHERE scope = ?")
        self._claim = session.prepare(
            "UPDATE {ks}.export_jobs USING TTL ? SET status = 'RUNNING', owner = ?, "
            "lease_until = ?, attempts = ?, started_at = ? WHERE scope = ? AND export_id = ? "
            "IF status = ? AND attempts = ?"
        )
        self._renew = session.prepare(
            "UPDATE {ks}.export_jobs USING TTL ? SET lease_until = ? "
            "WHERE scope = ? AND export_id = ? IF status = 'RUNNING' AND owner = ?"
        )
        self._finish = session.prepare(
            "UPDATE {ks}.export_jobs USING TTL ? SET status = 'READY', finished_at = ?, "
            "profiles = ?, file_bytes = ?, json_bytes = ?, lease_until = null "
            "WHERE scope = ? AND export_id = ? IF status = 'RUNNING' AND owner = ?"
        )
        self._release = session.prepare(
            "UPDATE {ks}.export_jobs USING TTL ? SET status = 'PENDING', attempts = ?, "
            "owner = null, lease_until = null, error = ? "
            "WHERE scope = ? AND export_id = ? IF status = 'RUNNING' AND owner = ?"
        )
        self._fail = session.prepare(
            "UPDATE {ks}.export_jobs USING TTL ? SET status = 'FAILED', finished_at = ?, "
            "error = ?, lease_until = null WHERE scope = ? AND export_id = ? "
            "IF status = ? AND attempts = ?"
        )
        self._delete = session.prepare(
            "DELETE FROM {ks}.export_jobs WHERE scope = ? AND export_id = ?"
        )
        # Admission counts what was queued before it (see V006): both at LOCAL_QUORUM, so the
        # count sees every job queued before the version it read, on any replica.
        for statement in (self._insert, self._all):
            statement.consistency_level = ConsistencyLevel.LOCAL_QUORUM
        self._key_version = session.prepare(
            "SELECT version FROM {ks}.export_key_locks WHERE key_id = ?"
        )
        self._key_first = session.prepare(
            "INSERT INTO {ks}.export_key_locks (key_id, version) VALUES (?, 1) IF NOT EXISTS"
        )
        self._key_bump = session.prepare(
            "UPDATE {ks}.export_key_locks SET version = ? WHERE key_id = ? IF version = ?"
        )

    def key_version(self, key_id: str) -> int | None:
        """The key's admission version (SERIAL: sees every committed bump), None if never."""
        bound = self._key_version.bind((key_id,))
        bound.consistency_level = ConsistencyLevel.SERIAL
        row = self._session.execute(bound).one()
        return None if row is None else int(row.version)

    def bump_key(self, key_id: str, seen: int | None) -> bool:
        """Move the key's version on from ``seen``; False when another request did first."""
        if seen is None:
            return self._applied(self._key_first, (key_id,))
        return self._applied(self._key_bump, (seen + 1, key_id, seen))

    def create(
        self, export_id: str, key_id: str, request: str, now: datetime, expires_at: datetime
    ) -> None:
        """Queue a new job."""
        self._session.execute(
            self._insert,
            (
                SCOPE,
                export_id,
                key_id,
                request,
                JobStatus.PENDING.value,
                now,
                expires_at,
                _ttl(expires_at, now),
            ),
        )

    def get(self, export_id: str) -> ExportJob | None:
        """One job, or None when unknown (or deleted by the janitor)."""
        row = self._session.execute(self._get, (SCOPE, export_id)).one()
        return None if row is None else _job(row)

    def all(self) -> list[ExportJob]:
        """Every job not yet deleted (a small partition: exports of the last day or so)."""
        return [_job(row) for row in self._session.execute(self._all, (SCOPE,))]

    def claim(self, job: ExportJob, owner: str, now: datetime, lease_s: float) -> bool:
        """Take ``job`` as it was read (same status and attempts); counts one attempt."""
        return self._applied(
            self._claim,
            (
                _ttl(job.expires_at, now),
                owner,
                now + timedelta(seconds=lease_s),
                job.attempts + 1,
                now,
                SCOPE,
                job.export_id,
                job.status.value,
                job.attempts,
            ),
        )

    def renew(self, job: ExportJob, owner: str, now: datetime, lease_s: float) -> bool:
        """Extend the lease; False = another worker took the job over."""
        return self._applied(
            self._renew,
            (
                _ttl(job.expires_at, now),
                now + timedelta(seconds=lease_s),
                SCOPE,
                job.export_id,
                owner,
            ),
        )

    def finish(
        self,
        job: ExportJob,
        owner: str,
        now: datetime,
        profiles: int,
        file_bytes: int,
        json_bytes: int,
    ) -> bool:
        """Mark READY with the file's figures."""
        return self._applied(
            self._finish,
            (
                _ttl(job.expires_at, now),
                now,
                profiles,
                file_bytes,
                json_bytes,
                SCOPE,
                job.export_id,
                owner,
            ),
        )

    def release(
        self, job: ExportJob, owner: str, now: datetime, attempts: int, error: str | None
    ) -> bool:
        """Queue the job again (retry after an error, or a clean shutdown mid-build)."""
        return self._applied(
            self._release,
            (_ttl(job.expires_at, now), attempts, error, SCOPE, job.export_id, owner),
        )

    def fail(self, job: ExportJob, now: datetime, error: str) -> bool:
        """Mark FAILED if the job is still as it was read (status and attempts)."""
        return self._applied(
            self._fail,
            (
                _ttl(job.expires_at, now),
                now,
                error,
                SCOPE,
                job.export_id,
                job.status.value,
                job.attempts,
            ),
        )

    def delete(self, export_id: str) -> None:
        """Forget a job (its file is deleted first by the janitor)."""
        self._session.execute(self._delete, (SCOPE, export_id))

    def _applied(self, statement: Any, values: tuple[Any, ...]) -> bool:
        return bool(self._session.execute(statement, values).was_applied)


def _ttl(expires_at: datetime, now: datetime) -> int:
    return max(60, int((expires_at + ROW_GRACE - now).total_seconds()))


def _job(row: Any) -> ExportJob:
    return ExportJob(
        export_id=row.export_id,
        key_id=row.key_id,
        request=row.request,
        status=JobStatus(row.status),
        created_at=aware(row.created_at),
        expires_at=aware(row.expires_at),
        attempts=int(row.attempts or 0),
        owner=row.owner,
        lease_until=aware(row.lease_until),
        started_at=aware(row.started_at),
        finished_at=aware(row.finished_at),
        profiles=row.profiles,
        file_bytes=row.file_bytes,
        json_bytes=row.json_bytes,
        error=row.error,
    )
