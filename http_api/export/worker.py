"""Background export workers: claim queued jobs, build their files, clean up expired ones.

A job is never built in a request thread. Each worker thread reads the queue of open jobs
(``export_job_queue``, bucketed by hour: see ``BucketSweep``), claims a queued job (or one
whose worker stopped renewing its lease) with a lightweight transaction, builds the file
while renewing the lease, and marks it READY. What happens to a job whose
worker stops (documented in the README):

* clean shutdown (SIGTERM): the build is abandoned and the job queued again, no attempt lost;
* crash (SIGKILL, OOM, node loss): once the lease lapses (at once when the same host restarts
  the process) the job is built again, up to ``max_attempts`` runs in all, then FAILED (503);
* an error while building: retried the same way, then FAILED with the error.

The janitor (worker 0) deletes expired jobs with their files (``export_job_expiry``), adopts
jobs left in V004's ``export_jobs``, and deletes temporary files older than a lease that no
live build owns.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from http_api.export.build import ExportAborted, ExportBuilder
from http_api.export.file_writer import JsonObjectWriter
from http_api.export.jobs import (
    ROW_GRACE,
    Clock,
    ExportJob,
    ExportJobStore,
    JobStatus,
    bucket_of,
    bucket_range,
)
from http_api.export.metrics import ExportMetrics
from http_api.export.request import ExportSpec
from http_api.export.sweep import BucketSweep
from segflow.pids import pid_alive
from segflow.settings import ServeOptions

log = logging.getLogger(__name__)
JANITOR_EVERY_S = 30.0
STALE_ENTRY = timedelta(minutes=1)
FILE_SUFFIX = ".json.gz"


def export_file(export_dir: Path, export_id: str) -> Path:
    """Where a finished export lives (gzip; identity downloads decompress on the fly)."""
    return export_dir / f"{export_id}{FILE_SUFFIX}"


class ExportService:
    """Owns the job store, the builder and the worker threads of one ``segflow serve``."""

    def __init__(
        self, session: Any, options: ServeOptions, metrics: ExportMetrics, clock: Clock
    ) -> None:
        self.options = options
        self.metrics = metrics
        self.clock = clock
        self.store = ExportJobStore(session)
        self.export_dir = options.export_dir
        self.export_dir.mkdir(parents=True, exist_ok=True)
        self._builder = ExportBuilder(session, options.page_size, self.export_dir)
        self._host = socket.gethostname()
        self._token = uuid.uuid4().hex[:12]
        self.owner = f"{self._host}:{os.getpid()}:{self._token}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_janitor = 0.0
        self._claim_lock = threading.Lock()
        self._sweep = BucketSweep(options.poll_url_ttl_s, JANITOR_EVERY_S)
        self._expired_through: int | None = None  # expiry buckets up to this one are clean

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start ``options.workers`` threads (0: this replica only answers HTTP)."""
        for index in range(self.options.workers):
            thread = threading.Thread(
                target=self._run, args=(index,), name=f"segflow-export-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask workers to stop; running builds are abandoned and their jobs queued again."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def alive(self) -> bool:
        """Every started worker thread still runs (liveness)."""
        return all(thread.is_alive() for thread in self._threads) or self._stop.is_set()

    # -- one scan --------------------------------------------------------------------------

    def run_once(self, janitor: bool = True) -> bool:
        """One scan: janitor (if due), then claim and build at most one job. True = built.

        The scan reads the queue's buckets (``BucketSweep``: the current hour and the ones
        last seen non-empty; the whole window every ``JANITOR_EVERY_S``) and the open jobs
        they list, never every job.
        """
        now = self.clock()
        buckets, full = self._sweep.plan(now, time.monotonic())
        jobs = self.open_jobs(buckets, full)
        if janitor and time.monotonic() - self._last_janitor >= JANITOR_EVERY_S:
            self._last_janitor = time.monotonic()
            self.clean_up(jobs if full else None)
        now = self.clock()
        self.metrics.jobs_queued.set(sum(1 for job in jobs if job.status == JobStatus.PENDING))
        for job in sorted(jobs, key=lambda j: j.created_at):
            if self._stop.is_set():
                return False
            if job.expires_at <= now:
                continue
            if job.status == JobStatus.RUNNING and self._abandoned(job, now):
                if job.attempts >= self.options.max_attempts:
                    if self.store.fail(job, now, _interrupted(job, self.options.max_attempts)):
                        self.metrics.jobs_finished.labels("failed").inc()
                        log.warning(
                            "export job failed: worker stopped",
                            extra={"fields": {"export_id": job.export_id}},
                        )
                    continue
            elif job.status != JobStatus.PENDING:
                continue
            with self._claim_lock:
                claimed = self.store.claim(job, self.owner, now, self.options.lease_s)
            if claimed:
                self._build(job)
                return True
        return False

    def open_jobs(self, buckets: list[int] | None = None, full: bool = True) -> list[ExportJob]:
        """The open jobs the queue lists in ``buckets`` (default: the whole window).

        Entries whose job ended (the dequeue after READY/FAILED did not happen) or vanished
        are removed on the way; a vanished one only once it is older than ``STALE_ENTRY``,
        since a reader may see a fresh job's queue entry before its row.
        """
        now = self.clock()
        if buckets is None:
            buckets = self._sweep.window(now)
        queued = self.store.queued(buckets)
        self._sweep.seen({bucket: len(refs) for bucket, refs in queued.items()}, full)
        jobs: list[ExportJob] = []
        for ref, job in self.store.jobs(ref for refs in queued.values() for ref in refs):
            if job is not None and job.open:
                jobs.append(job)
            elif job is not None or ref.at < now - STALE_ENTRY:
                self.store.dequeue(ref)
        return jobs

    def clean_up(self, jobs: list[ExportJob] | None = None) -> None:
        """Delete expired jobs and their files; then stray files.

        ``jobs``: the open jobs of a full sweep, when the caller already has them. Expired
        jobs come from the expiry index (at start the buckets of the last ``ROW_GRACE``, while
        rows still exist; then the hours not cleaned yet), jobs of V004's table are adopted
        (``adopt_legacy``), and files are judged by name and age: a build's temporary file is
        stray once older than a lease unless its job runs under a live lease; a finished file
        older than the poll-URL TTL belongs to an expired job whatever the tables say.
        """
        now = self.clock()
        jobs = self.open_jobs() if jobs is None else jobs
        # An expiry entry is written into a future hour (expires_at > now), so an hour that
        # has elapsed and been cleaned gets no new entries: read it once, not every round
        # (its tombstones would be read again and again).
        buckets = bucket_range(now - ROW_GRACE, now)
        if self._expired_through is not None:
            buckets = [bucket for bucket in buckets if bucket > self._expired_through]
        for ref in self.store.expired(buckets, now):
            self._delete_file(ref.export_id)
            job = self.store.get(ref.key_id, ref.export_id)
            if job is None:
                self.store.unindex_expiry(ref)
            else:
                self.store.delete(job)
            log.info("export expired", extra={"fields": {"export_id": ref.export_id}})
        self._expired_through = bucket_of(now) - 1
        legacy = self.store.adopt_legacy(now)
        for export_id in legacy.expired:
            self._delete_file(export_id)
        # A build in progress may spill and write for far longer than a lease: its files are
        # its own as long as its lease is alive (renewed by time, see LeaseKeeper).
        building = {
            job.export_id
            for job in jobs
            if job.status == JobStatus.RUNNING
            and job.lease_until is not None
            and job.lease_until > now
        } | set(legacy.running)
        temp_cutoff = time.time() - self.options.lease_s
        file_cutoff = temp_cutoff - self.options.poll_url_ttl_s
        for path in self.export_dir.iterdir():
            export_id = path.name.split(".", 1)[0]
            if export_id in building:
                continue
            finished = path.name == f"{export_id}{FILE_SUFFIX}"
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                continue
            if mtime < (file_cutoff if finished else temp_cutoff) and path.is_file():
                path.unlink(missing_ok=True)

    def _delete_file(self, export_id: str) -> None:
        path = export_file(self.export_dir, export_id)
        if path.exists():
            path.unlink(missing_ok=True)
            self.metrics.files_deleted.inc()

    # -- internals -------------------------------------------------------------------------

    def _run(self, index: int) -> None:
        while not self._stop.is_set():
            try:
                built = self.run_once(janitor=index == 0)
            except Exception:
                log.exception("export worker scan failed; retrying")
                built = False
            if not built:
                self._stop.wait(self.options.scan_interval_s)

    def _abandoned(self, job: ExportJob, now: Any) -> bool:
        if job.owner is None or job.lease_until is None or job.lease_until <= now:
            return True
        host, pid, token = [*job.owner.split(":"), "", "", ""][:3]
        if host != self._host or token == self._token:
            return False
        return int(pid or 0) == os.getpid() or not pid_alive(int(pid or 0))

    def _build(self, job: ExportJob) -> None:
        spec = ExportSpec.from_json(job.request)
        started = time.monotonic()
        attempt = job.attempts + 1
        fields = {"export_id": job.export_id, "attempt": attempt}
        log.info("export job started", extra={"fields": fields})
        self.metrics.jobs_running.inc()

        lease = LeaseKeeper(self.store, job, self.owner, self.clock, self.options.lease_s)

        def checkpoint(count: int) -> None:
            if self._stop.is_set():
                raise ExportAborted("shutdown")
            if lease.lost:
                raise ExportAborted("lease lost")

        target = export_file(self.export_dir, job.export_id)
        self._remove_leftovers(job.export_id)
        try:
            with lease, JsonObjectWriter(target, compress=True, tmp_tag=self._token) as writer:
                profiles = self._builder.build(
                    spec, writer, self.clock(), checkpoint, f"{job.export_id}.{self._token}"
                )
                stats = writer.commit()
        except ExportAborted as exc:
            if str(exc) == "shutdown":
                self.store.release(job, self.owner, self.clock(), job.attempts, None)
            log.warning("export job abandoned", extra={"fields": {**fields, "why": str(exc)}})
            return
        except Exception as exc:
            self._failed(job, attempt, exc)
            return
        finally:
            self.metrics.jobs_running.dec()
        elapsed = time.monotonic() - started
        finished = self.store.finish(
            job, self.owner, self.clock(), profiles, stats.file_bytes, stats.json_bytes
        )
        self.metrics.job_duration.observe(elapsed)
        self.metrics.profiles.inc(profiles)
        self.metrics.bytes.inc(stats.file_bytes)
        self.metrics.jobs_finished.labels("ready").inc()
        log.info(
            "export job ready",
            extra={
                "fields": {
                    **fields,
                    "profiles": profiles,
                    "file_bytes": stats.file_bytes,
                    "json_bytes": stats.json_bytes,
                    "seconds": round(elapsed, 3),
                    "recorded": finished,
                }
            },
        )

    def _remove_leftovers(self, export_id: str) -> None:
        """Temporary files of earlier attempts: this worker owns the job now, so they are dead
        (a still-running former owner loses at its next lease renewal and aborts)."""
        for path in self.export_dir.glob(f"{export_id}.*"):
            if path.name.endswith((".tmp", ".sqlite")) and self._token not in path.name:
                path.unlink(missing_ok=True)

    def _failed(self, job: ExportJob, attempt: int, exc: Exception) -> None:
        # The exception's text can name hosts, paths and queries: it goes to the log under an
        # incident id; the job (what /status and the 503 show) gets the id and a generic reason.
        incident = uuid.uuid4().hex[:12]
        error = f"the export could not be built (incident {incident})"
        fields = {
            "export_id": job.export_id,
            "attempt": attempt,
            "incident": incident,
            "error": f"{type(exc).__name__}: {exc}"[:2000],
        }
        now = self.clock()
        if attempt < self.options.max_attempts:
            self.store.release(job, self.owner, now, attempt, error)
            self.metrics.jobs_finished.labels("retried").inc()
            log.warning("export job failed; queued again", extra={"fields": fields})
            return
        running = dataclasses.replace(job, status=JobStatus.RUNNING, attempts=attempt)
        self.store.fail(running, now, error)
        self.metrics.jobs_finished.labels("failed").inc()
        log.error("export job failed", extra={"fields": fields})


class LeaseKeeper:
    """Renews a running job's lease every ``lease_s / 3`` from its own thread, by time.

    A build renewing only from its progress checkpoints let the lease lapse whenever rows
    were sparse or Cassandra slow, and another worker then took the job over. ``lost`` turns
    true once a renewal is refused (another worker owns the job); the build's next checkpoint
    then aborts it. A renewal that fails (Cassandra unavailable) is retried at the next tick.
    """

    def __init__(
        self, store: ExportJobStore, job: ExportJob, owner: str, clock: Clock, lease_s: float
    ) -> None:
        self._store, self._job, self._owner, self._clock = store, job, owner, clock
        self._lease_s = lease_s
        self._done = threading.Event()
        self.lost = False
        self.renewals = 0
        self._thread = threading.Thread(
            target=self._run, name=f"segflow-lease-{job.export_id[:8]}", daemon=True
        )

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join(max(5.0, self._lease_s))

    def _run(self) -> None:
        while not self._done.wait(self._lease_s / 3):
            try:
                if not self._store.renew(self._job, self._owner, self._clock(), self._lease_s):
                    self.lost = True
                    return
                self.renewals += 1
            except Exception:
                log.warning(
                    "export lease not renewed; retrying",
                    extra={"fields": {"export_id": self._job.export_id}},
                    exc_info=True,
                )


def _interrupted(job: ExportJob, max_attempts: int) -> str:
    return (
        f"interrupted: the worker building this export stopped "
        f"(attempt {job.attempts} of {max_attempts}); request a new export"
    )
