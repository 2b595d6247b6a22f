"""Export jobs persisted in Cassandra: creation, ownership, outcome (``V009``).

A job is one row of ``export_jobs_by_key``, in its API key's partition, so a request's
admission reads that key's jobs and nothing else. Two bucketed indexes find jobs without
reading every job:

* ``export_job_queue``: one row per *open* job (PENDING or RUNNING) in the hour bucket of its
  ``created_at``; workers read the buckets of the poll-URL window and claim from them. A job
  leaves the queue when it ends (READY, FAILED) or is withdrawn.
* ``export_job_expiry``: one row per job in the hour bucket of its ``expires_at``; the janitor
  reads the buckets that have elapsed and deletes those jobs with their files.

Ownership changes are lightweight transactions on the job row, so exactly one worker runs a
job at a time: ``claim`` takes a queued job (or one whose worker stopped renewing its lease),
``renew`` extends the lease and tells a worker that lost it, ``finish``/``release``/``fail``
only apply while the caller still owns the job. Every write carries a TTL one day past the
job's expiry, so rows never outlive a stopped janitor. The partition-size arithmetic is in
schemas/README.md, "Partition sizes".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.query import BatchStatement, BatchType

from segflow.db.session import aware

ROW_GRACE = timedelta(days=1)
BUCKET_S = 3600  # one index partition per hour of created_at / expires_at
LEGACY_SCOPE = "all"  # the single partition of V004's export_jobs
Clock = Callable[[], datetime]

COLUMNS = (
    "export_id, key_id, request, status, created_at, expires_at, attempts, owner, lease_until, "
    "started_at, finished_at, profiles, file_bytes, json_bytes, error"
)


def utc_now() -> datetime:
    """The real clock (tests inject their own)."""
    return datetime.now(tz=UTC)


def bucket_of(moment: datetime) -> int:
    """The hour bucket of a time: whole hours since the epoch."""
    return int(moment.timestamp()) // BUCKET_S


def bucket_range(first: datetime, last: datetime) -> list[int]:
    """Every hour bucket from ``first``'s to ``last``'s, both included."""
    return list(range(bucket_of(first), bucket_of(last) + 1))


class JobStatus(StrEnum):
    """PENDING -> RUNNING -> READY | FAILED (RUNNING -> PENDING again on retry/shutdown)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    READY = "READY"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class ExportJob:
    """One row of export_jobs_by_key."""

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


@dataclass(frozen=True, slots=True)
class JobRef:
    """One index row: enough to read the job (its key) and to delete the row again."""

    key_id: str
    export_id: str
    at: datetime  # created_at (queue) or expires_at (expiry index)


@dataclass(slots=True)
class LegacyRound:
    """What one ``adopt_legacy`` round did with V004 rows (export ids)."""

    adopted: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)


class ExportJobStore:
    """Prepared statements over export_jobs_by_key and its two bucketed indexes."""

    def __init__(self, session: Any) -> None:
        self._session = session
        prepare = session.prepare
        self._insert = prepare(
            "INSERT INTO {ks}.export_jobs_by_key (key_id, export_id, request, status, "
            "created_at, expires_at, attempts) VALUES (?, ?, ?, ?, ?, ?, 0) USING TTL ?"
        )
        self._enqueue = prepare(
            "INSERT INTO {ks}.export_job_queue (bucket, created_at, export_id, key_id) "
            "VALUES (?, ?, ?, ?) USING TTL ?"
        )
        self._dequeue = prepare(
            "DELETE FROM {ks}.export_job_queue WHERE bucket = ? AND created_at = ? "
            "AND export_id = ?"
        )
        self._index_expiry = prepare(
            "INSERT INTO {ks}.export_job_expiry (bucket, expires_at, export_id, key_id) "
            "VALUES (?, ?, ?, ?) USING TTL ?"
        )
        self._unindex_expiry = prepare(
            "DELETE FROM {ks}.export_job_expiry WHERE bucket = ? AND expires_at = ? "
            "AND export_id = ?"
        )
        self._get = prepare(
            f"SELECT {COLUMNS} FROM {{ks}}.export_jobs_by_key WHERE key_id = ? AND export_id = ?"
        )
        self._of_key = prepare(f"SELECT {COLUMNS} FROM {{ks}}.export_jobs_by_key WHERE key_id = ?")
        self._queue = prepare(
            "SELECT key_id, export_id, created_at FROM {ks}.export_job_queue WHERE bucket = ?"
        )
        self._expiring = prepare(
            "SELECT key_id, export_id, expires_at FROM {ks}.export_job_expiry "
            "WHERE bucket = ? AND expires_at <= ?"
        )
        where = "WHERE key_id = ? AND export_id = ?"
        self._claim = prepare(
            "UPDATE {ks}.export_jobs_by_key USING TTL ? SET status = 'RUNNING', owner = ?, "
            f"lease_until = ?, attempts = ?, started_at = ? {where} IF status = ? AND attempts = ?"
        )
        self._renew = prepare(
            "UPDATE {ks}.export_jobs_by_key USING TTL ? SET lease_until = ? "
            f"{where} IF status = 'RUNNING' AND owner = ?"
        )
        self._finish = prepare(
            "UPDATE {ks}.export_jobs_by_key USING TTL ? SET status = 'READY', finished_at = ?, "
            "profiles = ?, file_bytes = ?, json_bytes = ?, lease_until = null "
            f"{where} IF status = 'RUNNING' AND owner = ?"
        )
        self._release = prepare(
            "UPDATE {ks}.export_jobs_by_key USING TTL ? SET status = 'PENDING', attempts = ?, "
            f"owner = null, lease_until = null, error = ? {where} "
            "IF status = 'RUNNING' AND owner = ?"
        )
        self._fail = prepare(
            "UPDATE {ks}.export_jobs_by_key USING TTL ? SET status = 'FAILED', finished_at = ?, "
            f"error = ?, lease_until = null {where} IF status = ? AND attempts = ?"
        )
        self._delete = prepare(f"DELETE FROM {{ks}}.export_jobs_by_key {where}")
        # Admission counts what was queued before it (see V006): both at LOCAL_QUORUM, so the
        # count sees every job queued before the version it read, on any replica.
        for statement in (self._insert, self._of_key):
            statement.consistency_level = ConsistencyLevel.LOCAL_QUORUM
        self._key_version = prepare("SELECT version FROM {ks}.export_key_locks WHERE key_id = ?")
        self._key_first = prepare(
            "INSERT INTO {ks}.export_key_locks (key_id, version) VALUES (?, 1) IF NOT EXISTS"
        )
        self._key_bump = prepare(
            "UPDATE {ks}.export_key_locks SET version = ? WHERE key_id = ? IF version = ?"
        )
        self._legacy_all = prepare(
            f"SELECT {COLUMNS} FROM {{ks}}.export_jobs WHERE scope = ? LIMIT 1000"
        )
        self._legacy_delete = prepare(
            "DELETE FROM {ks}.export_jobs WHERE scope = ? AND export_id = ? "
            "IF status = ? AND attempts = ?"
        )
        self._copy = prepare(
            f"INSERT INTO {{ks}}.export_jobs_by_key ({COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
        )

    # -- admission -------------------------------------------------------------------------

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
    ) -> ExportJob:
        """Queue a new job: its row, its queue entry and its expiry entry, in one logged batch
        (all three or none, whatever fails midway). Returns the job as written."""
        ttl = _ttl(expires_at, now)
        batch = BatchStatement(
            batch_type=BatchType.LOGGED, consistency_level=ConsistencyLevel.LOCAL_QUORUM
        )
        batch.add(
            self._insert,
            (key_id, export_id, request, JobStatus.PENDING.value, now, expires_at, ttl),
        )
        batch.add(self._enqueue, (bucket_of(now), now, export_id, key_id, ttl))
        batch.add(self._index_expiry, (bucket_of(expires_at), expires_at, export_id, key_id, ttl))
        self._session.execute(batch)
        return ExportJob(
            export_id=export_id,
            key_id=key_id,
            request=request,
            status=JobStatus.PENDING,
            created_at=now,
            expires_at=expires_at,
            attempts=0,
            owner=None,
            lease_until=None,
            started_at=None,
            finished_at=None,
            profiles=None,
            file_bytes=None,
            json_bytes=None,
            error=None,
        )

    def of_key(self, key_id: str) -> list[ExportJob]:
        """Every job of one API key not yet deleted (one partition; admission counts it)."""
        return [_job(row) for row in self._session.execute(self._of_key, (key_id,))]

    # -- reads -----------------------------------------------------------------------------

    def get(self, key_id: str, export_id: str) -> ExportJob | None:
        """One job, or None when unknown (or deleted by the janitor)."""
        row = self._session.execute(self._get, (key_id, export_id)).one()
        return None if row is None else _job(row)

    def queued(self, buckets: Iterable[int]) -> dict[int, list[JobRef]]:
        """The queue entries (open jobs) of each bucket, read concurrently."""
        futures = {b: self._session.execute_async(self._queue, (b,)) for b in buckets}
        return {
            bucket: [JobRef(r.key_id, r.export_id, aware(r.created_at)) for r in future.result()]
            for bucket, future in futures.items()
        }

    def jobs(self, refs: Iterable[JobRef]) -> list[tuple[JobRef, ExportJob | None]]:
        """The jobs behind index entries, read concurrently (None: the job row is gone)."""
        futures = [
            (ref, self._session.execute_async(self._get, (ref.key_id, ref.export_id)))
            for ref in refs
        ]
        found: list[tuple[JobRef, ExportJob | None]] = []
        for ref, future in futures:
            row = future.result().one()
            found.append((ref, None if row is None else _job(row)))
        return found

    def expired(self, buckets: Iterable[int], now: datetime) -> list[JobRef]:
        """Expiry entries of ``buckets`` whose time has come."""
        futures = [self._session.execute_async(self._expiring, (b, now)) for b in buckets]
        return [
            JobRef(row.key_id, row.export_id, aware(row.expires_at))
            for future in futures
            for row in future.result()
        ]

    # -- ownership -------------------------------------------------------------------------

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
                job.key_id,
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
                job.key_id,
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
        """Mark READY with the file's figures; the job leaves the queue."""
        done = self._applied(
            self._finish,
            (
                _ttl(job.expires_at, now),
                now,
                profiles,
                file_bytes,
                json_bytes,
                job.key_id,
                job.export_id,
                owner,
            ),
        )
        if done:
            self.dequeue(job)
        return done

    def release(
        self, job: ExportJob, owner: str, now: datetime, attempts: int, error: str | None
    ) -> bool:
        """Queue the job again (retry after an error, or a clean shutdown mid-build); its
        queue entry stays where it is."""
        return self._applied(
            self._release,
            (_ttl(job.expires_at, now), attempts, error, job.key_id, job.export_id, owner),
        )

    def fail(self, job: ExportJob, now: datetime, error: str) -> bool:
        """Mark FAILED if the job is still as it was read (status and attempts)."""
        done = self._applied(
            self._fail,
            (
                _ttl(job.expires_at, now),
                now,
                error,
                job.key_id,
                job.export_id,
                job.status.value,
                job.attempts,
            ),
        )
        if done:
            self.dequeue(job)
        return done

    def dequeue(self, job: ExportJob | JobRef) -> None:
        """Remove a job's queue entry (it ended, or the entry outlived its job)."""
        created = job.created_at if isinstance(job, ExportJob) else job.at
        self._session.execute(self._dequeue, (bucket_of(created), created, job.export_id))

    def delete(self, job: ExportJob) -> None:
        """Forget a job and its index entries (its file is deleted first by the janitor)."""
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        batch.add(self._delete, (job.key_id, job.export_id))
        batch.add(self._dequeue, (bucket_of(job.created_at), job.created_at, job.export_id))
        batch.add(self._unindex_expiry, (bucket_of(job.expires_at), job.expires_at, job.export_id))
        self._session.execute(batch)

    def unindex_expiry(self, ref: JobRef) -> None:
        """Remove an expiry entry whose job row is already gone."""
        self._session.execute(self._unindex_expiry, (bucket_of(ref.at), ref.at, ref.export_id))

    # -- V004 rows -------------------------------------------------------------------------

    def adopt_legacy(self, now: datetime) -> LegacyRound:
        """Move jobs of V004's single-partition ``export_jobs`` into the V009 tables.

        Jobs queued before the upgrade (or by a replica not upgraded yet) are copied with
        their state, then removed from the old partition only if unchanged since they were
        read; a job whose old row moved on meanwhile (an old replica claimed or finished it)
        is withdrawn again and adopted at a later round. Jobs running under a live lease are
        left to their worker until they end; expired ones are only removed (the caller
        deletes their files).
        """
        found = LegacyRound()
        for row in self._session.execute(self._legacy_all, (LEGACY_SCOPE,)):
            job = _job(row)
            if job.status == JobStatus.RUNNING and (job.lease_until or now) > now:
                found.running.append(job.export_id)
                continue
            live = job.expires_at > now
            if live:
                self._copy_in(job, now)
            values = (LEGACY_SCOPE, job.export_id, job.status.value, job.attempts)
            if self._applied(self._legacy_delete, values):
                (found.adopted if live else found.expired).append(job.export_id)
            elif live:
                self.delete(job)
        return found

    def _copy_in(self, job: ExportJob, now: datetime) -> None:
        ttl = _ttl(job.expires_at, now)
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        batch.add(
            self._copy,
            (
                job.export_id,
                job.key_id,
                job.request,
                job.status.value,
                job.created_at,
                job.expires_at,
                job.attempts,
                job.owner,
                job.lease_until,
                job.started_at,
                job.finished_at,
                job.profiles,
                job.file_bytes,
                job.json_bytes,
                job.error,
                ttl,
            ),
        )
        if job.open:
            batch.add(
                self._enqueue,
                (bucket_of(job.created_at), job.created_at, job.export_id, job.key_id, ttl),
            )
        batch.add(
            self._index_expiry,
            (bucket_of(job.expires_at), job.expires_at, job.export_id, job.key_id, ttl),
        )
        self._session.execute(batch)

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
