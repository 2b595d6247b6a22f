"""Export jobs live in bounded partitions and nothing reads them all (issue 13, V009).

Read back from Cassandra: a job is a row of its API key's partition, the queue lists only
open jobs, in the bucket of their creation hour, and the expiry index every job in the bucket
of its expiry hour. Then, among a busy day's 2,000 finished jobs of 40 other keys, a POST
reads only its own key's rows and a worker finds its job reading a handful of rows and (once
the first sweep is done) at most four queue buckets: the statements each of them sent are
recorded by a session wrapper around the real driver session. Jobs left in V004's single
partition are adopted by the janitor and built.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from http_api.export.jobs import ExportJobStore, JobStatus, bucket_of
from http_api.export.worker import export_file
from tests.integration.test_export import KEY_ID, Api, api_factory

pytestmark = pytest.mark.integration
__all__ = ["api_factory"]
BODY = {"attributes": ["email"]}
_TABLE = re.compile(r"FROM\s+\S+?\.(\w+)", re.IGNORECASE)


@dataclass
class Read:
    """One SELECT as sent: its table, its bound values and the rows that came back."""

    table: str
    values: tuple[Any, ...]
    rows: int


@dataclass
class CountingSession:
    """The real session, recording every SELECT the export code sends and its row count."""

    inner: Any
    reads: list[Read] = field(default_factory=list)

    def prepare(self, query: str) -> Any:
        return self.inner.prepare(query)

    def execute(self, query: Any, parameters: Any = None, **kwargs: Any) -> Any:
        result = self.inner.execute(query, parameters, **kwargs)
        self._record(query, parameters, result)
        return result

    def execute_async(self, query: Any, parameters: Any = None, **kwargs: Any) -> Any:
        session = self

        class Future:
            def __init__(self, inner: Any) -> None:
                self._inner = inner

            def result(self) -> Any:
                result = self._inner.result()
                session._record(query, parameters, result)
                return result

        return Future(self.inner.execute_async(query, parameters, **kwargs))

    def _record(self, query: Any, parameters: Any, result: Any) -> None:
        text = query if isinstance(query, str) else getattr(query, "query_string", None)
        text = text or getattr(getattr(query, "prepared_statement", None), "query_string", "")
        if not str(text).lstrip().upper().startswith("SELECT"):
            return
        match = _TABLE.search(str(text))
        # A bound statement carries its values serialized (text: UTF-8 bytes).
        raw = parameters or getattr(query, "values", ()) or ()
        values = tuple(v.decode() if isinstance(v, bytes) else v for v in raw)
        self.reads.append(Read(match.group(1) if match else "?", values, len(result.current_rows)))

    def take(self) -> list[Read]:
        reads, self.reads = self.reads, []
        return reads


def _rows(session: Any, cql: str, *values: Any) -> list[Any]:
    return list(session.execute(session.prepare(cql), values))


def _queue_ids(session: Any, bucket: int) -> set[str]:
    rows = _rows(session, "SELECT export_id FROM {ks}.export_job_queue WHERE bucket = ?", bucket)
    return {row.export_id for row in rows}


def test_jobs_land_in_their_keys_partition_and_leave_the_queue_when_they_end(
    api_factory: Callable[..., Api], cassandra_session: Any
) -> None:
    api = api_factory()
    session, now = cassandra_session, api.clock()
    ids = []
    for _ in range(3):
        reply = api.post(BODY)
        assert reply.status == 201, reply.body
        ids.append(reply.json()["export_id"])
        api.clock.advance(seconds=1)
    in_partition = _rows(
        session, "SELECT export_id, status FROM {ks}.export_jobs_by_key WHERE key_id = ?", KEY_ID
    )
    assert {row.export_id for row in in_partition} == set(ids)
    assert {row.status for row in in_partition} == {"PENDING"}
    assert set(ids) <= _queue_ids(session, bucket_of(now))
    expiry = bucket_of(now + timedelta(seconds=api.service.options.poll_url_ttl_s))
    expiring = _rows(
        session, "SELECT export_id FROM {ks}.export_job_expiry WHERE bucket = ?", expiry
    )
    assert set(ids) <= {row.export_id for row in expiring}
    legacy = _rows(session, "SELECT export_id FROM {ks}.export_jobs WHERE scope = 'all'")
    assert not set(ids) & {row.export_id for row in legacy}

    assert api.service.run_once(janitor=False)  # the oldest job is built...
    assert ids[0] not in _queue_ids(session, bucket_of(now))  # ...and leaves the queue
    assert set(ids[1:]) <= _queue_ids(session, bucket_of(now))
    store = api.service.store
    ready = store.get(KEY_ID, ids[0])
    assert ready is not None
    assert ready.status == JobStatus.READY
    # An entry that outlived its job's end (the dequeue after READY was lost) is removed by
    # the next scan instead of being read forever.
    session.execute(
        session.prepare(
            "INSERT INTO {ks}.export_job_queue (bucket, created_at, export_id, key_id) "
            "VALUES (?, ?, ?, ?)"
        ),
        (bucket_of(ready.created_at), ready.created_at, ready.export_id, KEY_ID),
    )
    assert api.service.run_once(janitor=False)
    assert not {ids[0], ids[1]} & _queue_ids(session, bucket_of(now))


def _busy_day(session: Any, now: Any, keys: int, per_key: int) -> None:
    """``keys * per_key`` finished jobs of other keys, created over the last day, as V009
    leaves them: job rows and expiry entries, no queue entries."""
    job = session.prepare(
        "INSERT INTO {ks}.export_jobs_by_key (key_id, export_id, request, status, created_at, "
        "expires_at, attempts, finished_at, profiles) VALUES (?, ?, '{}', 'READY', ?, ?, 1, ?, "
        "0) USING TTL 7200"
    )
    index = session.prepare(
        "INSERT INTO {ks}.export_job_expiry (bucket, expires_at, export_id, key_id) "
        "VALUES (?, ?, ?, ?) USING TTL 7200"
    )
    futures = []
    for k in range(keys):
        for j in range(per_key):
            created = now - timedelta(minutes=(k * per_key + j) % 1400)
            expires = created + timedelta(days=1)
            export_id, key = uuid.uuid4().hex, f"busy-{k:03d}"
            futures.append(session.execute_async(job, (key, export_id, created, expires, created)))
            futures.append(
                session.execute_async(index, (bucket_of(expires), expires, export_id, key))
            )
            if len(futures) >= 256:
                for future in futures:
                    future.result()
                futures.clear()
    for future in futures:
        future.result()


def test_a_post_and_a_worker_read_bounded_rows_among_a_busy_days_jobs(
    api_factory: Callable[..., Api], cassandra_session: Any
) -> None:
    api = api_factory()
    now = api.clock()
    _busy_day(cassandra_session, now, keys=40, per_key=50)
    counting = CountingSession(cassandra_session)
    store = ExportJobStore(counting)
    # A job of another key, running under a live lease, queued 7 hours ago.
    old = store.create(
        uuid.uuid4().hex, "busy-old", "{}", now - timedelta(hours=7), now + timedelta(hours=17)
    )
    assert store.claim(old, "elsewhere:1:alive", now, 3600)
    api.service.store = store
    try:
        counting.take()
        first = api.post(BODY)
        assert first.status == 201, first.body
        admission = counting.take()
        assert {r.table for r in admission} <= {"export_jobs_by_key", "export_key_locks"}
        assert all(r.values[:1] == (KEY_ID,) for r in admission), admission
        assert sum(r.rows for r in admission) <= 2  # its own key's 0 jobs (+ the lock row)

        assert api.service.run_once(janitor=False)  # the first scan sweeps the window
        sweep = counting.take()
        assert sum(r.rows for r in sweep) <= 6, sweep  # 2 queue entries, 2 jobs (+ build)
        built = store.get(KEY_ID, first.json()["export_id"])
        assert built is not None
        assert built.status == JobStatus.READY

        second = api.post(BODY)
        assert second.status == 201, second.body
        counting.take()
        assert api.service.run_once(janitor=False)
        scan = counting.take()
        buckets = {r.values[0] for r in scan if r.table == "export_job_queue"}
        current = bucket_of(api.clock())
        assert buckets == {current - 1, current, current + 1, bucket_of(old.created_at)}
        assert sum(r.rows for r in scan if r.table != "export_job_queue") <= 4
        job_reads = [r for r in scan if r.table == "export_jobs_by_key"]
        assert {r.values[0] for r in job_reads} <= {KEY_ID, "busy-old"}

        api.service.clean_up()  # the janitor: the elapsed expiry hours, nothing expired yet
        janitor = counting.take()
        assert sum(r.rows for r in janitor if r.table == "export_job_expiry") == 0
        assert sum(r.rows for r in janitor) <= 6, janitor
        api.service.clean_up()  # elapsed hours were cleaned: only the current one again
        again = [r for r in counting.take() if r.table == "export_job_expiry"]
        assert {r.values[0] for r in again} == {bucket_of(api.clock())}
    finally:
        running = store.get("busy-old", old.export_id)
        if running is not None:
            store.delete(running)


def test_jobs_left_in_the_v004_partition_are_adopted_and_built(
    api_factory: Callable[..., Api], cassandra_session: Any
) -> None:
    api = api_factory()
    session, now = cassandra_session, api.clock()
    insert = session.prepare(
        "INSERT INTO {ks}.export_jobs (scope, export_id, key_id, request, status, created_at, "
        "expires_at, attempts, owner, lease_until) VALUES ('all', ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    request = '{"segment_filter":null,"attributes":["email"],"tags":[],"events":[],'
    request += '"start_at":null,"end_at":null}'
    day = timedelta(days=1)
    pending, running, expired = (uuid.uuid4().hex for _ in range(3))
    session.execute(insert, (pending, KEY_ID, request, "PENDING", now, now + day, 0, None, None))
    session.execute(
        insert,
        (running, KEY_ID, request, "RUNNING", now, now + day, 1, "old:1:x", now + day),
    )
    session.execute(
        insert, (expired, KEY_ID, request, "READY", now - 2 * day, now - day, 1, None, None)
    )
    stale_file = export_file(api.export_dir, expired)
    stale_file.write_bytes(b"old")
    try:
        api.service.clean_up()
        left = _rows(session, "SELECT export_id FROM {ks}.export_jobs WHERE scope = 'all'")
        assert {row.export_id for row in left} & {pending, running, expired} == {running}
        assert not stale_file.exists()
        adopted = api.service.store.get(KEY_ID, pending)
        assert adopted is not None
        assert adopted.status == JobStatus.PENDING
        assert pending in _queue_ids(session, bucket_of(now))
        assert api.service.run_once(janitor=False)
        assert api.get(f"/v1/exports/{pending}").status == 200
        assert api.service.store.get(KEY_ID, running) is None  # its old worker still owns it
    finally:
        session.execute(
            session.prepare("DELETE FROM {ks}.export_jobs WHERE scope = 'all' AND export_id IN ?"),
            ([pending, running, expired],),
        )
