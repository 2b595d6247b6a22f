"""The export API and ``segflow export`` on a real Cassandra, fed by the real consumer.

One module-wide segment of 100k members (plus overrides, removals, expiries and a Segmenter
replace that brings profiles) is applied through Kafka and the consumer; every test reads
it back through the export and compares with an independent model of those commands and
with ``segflow members``.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from http_api.export.auth import ApiKeys, key_id
from http_api.export.jobs import ExportJobStore, JobStatus
from http_api.export.metrics import ExportMetrics
from http_api.export.routes import ExportApi
from http_api.export.worker import ExportService, export_file
from segflow.contract.records import CommandRecord
from segflow.db.executions import ExecutionStore
from segflow.db.registry import SegmentRegistry
from segflow.settings import CassandraSettings, ServeOptions
from tests.support.consumer_harness import (
    command,
    consume_settings,
    produce,
    running_consumer,
    unique_topics,
    wait_landed,
    wait_until,
)
from tests.support.endpoints import Endpoints
from tests.support.export_server import FakeClock, Reply, call, serving
from tests.support.prometheus_http import assert_prometheus_endpoints

pytestmark = pytest.mark.integration

MEMBERS = 100_000
PERSONS = 1000
OVERRIDE_ADDS = 150
KEY, OTHER_KEY = "key-one", "key-two"
KEY_ID = key_id(KEY)
DAY_MS = 86_400_000


def user(i: int) -> str:
    return f"user_id:p{i}"


def blocked(i: int) -> bool:
    return i % 7 == 0 and i < 2100


def removed(i: int) -> bool:
    return i % 11 == 3 and i < 2200


def expiry(i: int, now_ms: int) -> int | None:
    if i % 97 == 0:
        return now_ms - DAY_MS
    if i % 5 == 0:
        return now_ms + 30 * DAY_MS
    return None


@dataclass(frozen=True)
class Seeded:
    """The applied data and its expected effective state."""

    segment: str
    persons_segment: str
    now_ms: int
    start_at: datetime
    end_at: datetime
    members: dict[str, dict[str, Any]]  # user key -> expected attributes of segment
    with_events: set[str]  # every user with an event of segment in the window


def _records(
    execution_id: str, segment: str, persons_segment: str, now_ms: int
) -> Iterator[CommandRecord]:
    base = now_ms * 1000 - 3_600_000_000

    def record(op: str, version: int, user_key: str | None, seg: str) -> CommandRecord:
        return command(execution_id, op, version, user_key, [seg])

    for i in range(MEMBERS):
        add = record("FEED_ADD", base + i, user(i), segment)
        add["expires_at_ms"] = expiry(i, now_ms)
        add["data_bag"] = json.dumps({"score": i}) if i % 3 == 0 else None
        yield add
    for i in range(MEMBERS):
        if blocked(i):
            yield record("OVERRIDE_BLOCK", base + MEMBERS + i, user(i), segment)
        if removed(i):
            yield record("FEED_REMOVE", base + MEMBERS + i, user(i), segment)
    for j in range(OVERRIDE_ADDS):
        yield record("OVERRIDE_ADD", base + 2 * MEMBERS + j, f"user_id:o{j}", segment)
    version = base + 3 * MEMBERS
    begin = record("REPLACE_BEGIN", version, None, persons_segment)
    definition = {
        "id": persons_segment,
        "name": "persons",
        "description": None,
        "broadcast_medium_id": None,
        "segment_type": "static",
    }
    begin["segment"] = definition  # type: ignore[typeddict-item]
    yield begin
    for i in range(PERSONS):
        member = record("REPLACE_MEMBER", version, user(i), persons_segment)
        member["person"] = {
            "external_id": f"p{i}",
            "first_name": f"F{i}",
            "last_name": None,
            "email": f"p{i}@example.com",
            "phone": None,
            "substitution_tags": [{"tag": "city", "value": f"C{i % 10}"}],
        }
        yield member
    end = record("REPLACE_END", version, None, persons_segment)
    end["segment"] = definition  # type: ignore[typeddict-item]
    end["member_count"] = PERSONS
    yield end


def _expected(now_ms: int, persons_segment: str) -> dict[str, dict[str, Any]]:
    members: dict[str, dict[str, Any]] = {}
    for i in range(MEMBERS):
        exp = expiry(i, now_ms)
        if blocked(i) or removed(i) or (exp is not None and exp < now_ms):
            continue
        attributes: dict[str, Any] = {
            "membership.via": {"value": "feed"},
            "membership.expires_at": {"value": exp},
        }
        if i % 3 == 0:
            attributes["data_bag.score"] = {"value": i}
        if i < PERSONS:
            attributes["first_name"] = {"value": f"F{i}"}
            attributes["email"] = {"value": f"p{i}@example.com"}
            attributes["substitution.city"] = {"value": f"C{i % 10}"}
            attributes[persons_segment] = {"value": None}
        members[user(i)] = attributes
    for j in range(OVERRIDE_ADDS):
        members[f"user_id:o{j}"] = {
            "membership.via": {"value": "override"},
            "membership.expires_at": {"value": None},
        }
    return members


@pytest.fixture(scope="module")
def seeded(
    endpoints: Endpoints, cassandra_settings: CassandraSettings, cassandra_session: Any
) -> Seeded:
    suffix = uuid.uuid4().hex[:10]
    segment, persons_segment = f"exp-{suffix}", f"exp-persons-{suffix}"
    now_ms = int(time.time() * 1000)
    store = ExecutionStore(cassandra_session)
    execution_id = store.create(
        "export", "seed", "producer", uuid.uuid4().hex, now_ms * 1000
    ).execution_id
    records = list(_records(execution_id, segment, persons_segment, now_ms))
    with unique_topics(endpoints, "test-export") as kafka:
        settings = consume_settings(
            kafka,
            cassandra_settings,
            unknown_segment_policy="create",
            default_bucket_count=64,
            batch_size=1000,
            registry_cache_ttl_s=60.0,  # the harness default (0) re-reads the registry per record
        )
        produce(kafka, enumerate(records), execution_id)
        with running_consumer(settings):
            wait_landed(store, execution_id, len(records), timeout_s=600)
    base_ms = now_ms - 3_600_000
    with_events = {user(i) for i in range(MEMBERS)} | {
        f"user_id:o{j}" for j in range(OVERRIDE_ADDS)
    }
    return Seeded(
        segment=segment,
        persons_segment=persons_segment,
        now_ms=now_ms,
        start_at=datetime.fromtimestamp(base_ms / 1000 - 60, tz=UTC),
        end_at=datetime.fromtimestamp(now_ms / 1000 + 3600, tz=UTC),
        members=_expected(now_ms, persons_segment),
        with_events=with_events,
    )


def serve_env(cassandra: CassandraSettings, export_dir: Path, port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SEGFLOW_")}
    env.update(
        {
            "SEGFLOW_CASSANDRA__CONTACT_POINTS": ",".join(cassandra.contact_points),
            "SEGFLOW_CASSANDRA__PORT": str(cassandra.port),
            "SEGFLOW_CASSANDRA__KEYSPACE": cassandra.keyspace,
            "SEGFLOW_SERVE__API_KEYS": KEY,
            "SEGFLOW_SERVE__PORT": str(port),
            "SEGFLOW_SERVE__EXPORT_DIR": str(export_dir),
            "SEGFLOW_SERVE__SCAN_INTERVAL_S": "0.2",
            "SEGFLOW_LOG__LEVEL": "WARNING",
        }
    )
    return env


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segflow.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_cli_export_of_a_100k_segment_matches_members_and_the_model(
    seeded: Seeded, cassandra_settings: CassandraSettings, tmp_path: Path
) -> None:
    env = serve_env(cassandra_settings, tmp_path, 0)
    out = tmp_path / "segment.json.gz"
    attributes = "membership.via,membership.expires_at,data_bag.score,first_name,email,"
    attributes += "substitution.city"
    exported = run_cli(
        [
            "export",
            seeded.segment,
            "--attributes",
            attributes,
            "--tags",
            seeded.persons_segment,
            "--out",
            str(out),
            "--gzip",
        ],
        env,
    )
    assert exported.returncode == 0, exported.stderr
    listed = run_cli(["members", seeded.segment, "--format", "ndjson"], env)
    assert listed.returncode == 0, listed.stderr
    members = [json.loads(line) for line in listed.stdout.splitlines()]
    data = json.loads(gzip.decompress(out.read_bytes()))

    assert len(data) == len(seeded.members) > 90_000
    assert set(data) == {m["user_key"] for m in members} == set(seeded.members)
    for m in members:
        attributes = data[m["user_key"]]["sections"][seeded.segment]["attributes"]
        assert attributes["membership.via"]["value"] == m["via"]
    for user_key, expected in seeded.members.items():
        assert data[user_key] == {"sections": {seeded.segment: {"attributes": expected}}}


@dataclass
class Api:
    """An in-process export API on a real socket, its service and its clock."""

    url: str
    service: ExportService
    clock: FakeClock
    export_dir: Path

    def post(self, body: Any, key: str | None = KEY) -> Reply:
        return call("POST", f"{self.url}/v1/exports", key, body)

    def get(self, path: str, key: str | None = KEY, **headers: str) -> Reply:
        return call("GET", f"{self.url}{path}", key, headers=headers)


@pytest.fixture
def api_factory(cassandra_session: Any, tmp_path: Path) -> Iterator[Callable[..., Api]]:
    stack: list[Any] = []
    jobs = ExportJobStore(cassandra_session)

    def forget_jobs() -> None:
        """Every test starts and ends with no job of its keys (and none in the queue)."""
        for key in (KEY, OTHER_KEY):
            for job in jobs.of_key(key_id(key)):
                jobs.delete(job)

    forget_jobs()

    def make(**options: Any) -> Api:
        clock = FakeClock()
        settings: dict[str, Any] = {
            "export_dir": tmp_path / uuid.uuid4().hex[:6],
            "workers": 0,  # tests drive jobs with run_once() unless they start workers
            "api_keys": [SecretStr(KEY), SecretStr(OTHER_KEY)],
        }
        opts = ServeOptions(**{**settings, **options})
        service = ExportService(cassandra_session, opts, ExportMetrics(), clock)
        registry = SegmentRegistry(cassandra_session, default_bucket_count=1, cache_ttl_s=0)
        api = ExportApi(service, ApiKeys(opts.api_keys, None), registry, lambda: True)
        context = serving(api)
        url = context.__enter__()
        stack.append(context)
        return Api(url, service, clock, opts.export_dir)

    yield make
    for context in stack:
        context.__exit__(None, None, None)
    forget_jobs()


def _created(reply: Reply) -> str:
    assert reply.status == 201, reply.body
    export_id: str = reply.json()["export_id"]
    return export_id


def test_poll_goes_from_404_to_200_and_both_encodings_hold_the_same_file(
    seeded: Seeded, api_factory: Callable[..., Api]
) -> None:
    api = api_factory()
    reply = api.post(
        {
            "segment_filter": seeded.segment,
            "attributes": ["membership.via"],
            "tags": [seeded.persons_segment],
            "events": ["add", "remove", "block"],
            "start_at": seeded.start_at.isoformat(),
            "end_at": seeded.end_at.isoformat(),
        }
    )
    export_id = _created(reply)
    poll = f"/v1/exports/{export_id}"
    assert reply.json()["poll_url"] == api.url + poll
    pending = api.get(poll)
    assert pending.status == 404
    assert int(pending.headers["retry-after"]) > 0
    assert pending.json()["error"]

    assert api.service.run_once(janitor=False)
    zipped = api.get(poll, **{"Accept-Encoding": "gzip"})
    plain = api.get(poll)
    assert zipped.status == plain.status == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in {k.lower() for k in plain.headers}
    assert gzip.decompress(zipped.body) == plain.body
    assert int(plain.headers["content-length"]) == len(plain.body)
    assert api.get(poll).body == plain.body  # downloadable again

    data = json.loads(plain.body)
    assert set(data) == seeded.with_events
    for user_key, entry in data.items():
        section = entry["sections"][seeded.segment]
        expected = seeded.members.get(user_key)
        if expected is None:
            assert "membership.via" not in section["attributes"]
        else:
            assert section["attributes"]["membership.via"] == expected["membership.via"]
        in_persons = user_key.startswith("user_id:p") and int(user_key[9:]) < PERSONS
        assert (seeded.persons_segment in section["attributes"]) == in_persons
    kinds = {e["typeId"] for e in data[user(3)]["sections"][seeded.segment]["events"]}
    assert kinds == {"add", "remove"}  # removed(3)
    events = data[user(7)]["sections"][seeded.segment]["events"]
    assert [e["typeId"] for e in events] == ["add", "block"]  # blocked(7), version order
    for event in events:
        assert seeded.start_at.timestamp() * 1000 <= event["sourceEventTime"]
        assert event["sourceEventTime"] <= event["createdAt"]
    status = api.get(f"{poll}/status").json()
    assert status["status"] == "READY"
    assert status["profiles"] == len(seeded.with_events)


def test_expired_exports_are_gone_and_their_files_deleted(
    seeded: Seeded, api_factory: Callable[..., Api]
) -> None:
    api = api_factory(poll_url_ttl_s=3600)
    export_id = _created(
        api.post({"segment_filter": seeded.persons_segment, "tags": [seeded.persons_segment]})
    )
    assert api.service.run_once(janitor=False)
    poll = f"/v1/exports/{export_id}"
    ready = api.get(poll)
    assert ready.status == 200
    assert len(json.loads(ready.body)) == PERSONS
    path = export_file(api.export_dir, export_id)
    assert path.exists()

    api.clock.advance(seconds=3599)
    assert api.get(poll).status == 200
    api.clock.advance(seconds=2)
    assert api.get(poll).status == 410
    assert api.get(f"{poll}/status").status == 410
    api.service.clean_up()
    assert not path.exists()
    assert api.service.store.get(KEY_ID, export_id) is None
    assert api.get(poll).status == 410


def test_unknown_ids_and_other_keys_exports_are_410(
    seeded: Seeded, api_factory: Callable[..., Api]
) -> None:
    api = api_factory()
    assert api.get(f"/v1/exports/{uuid.uuid4().hex}").status == 410
    export_id = _created(api.post({"attributes": ["email"], "segment_filter": seeded.segment}))
    assert api.get(f"/v1/exports/{export_id}", key=OTHER_KEY).status == 410
    assert api.get(f"/v1/exports/{export_id}").status == 404


def test_pending_exports_per_key_are_limited(
    seeded: Seeded, api_factory: Callable[..., Api]
) -> None:
    api = api_factory(max_pending_per_key=2)
    body = {"segment_filter": seeded.persons_segment, "attributes": ["email"]}
    _created(api.post(body))
    api.clock.advance(seconds=1)  # workers take the oldest job first
    _created(api.post(body))
    api.clock.advance(seconds=1)
    over = api.post(body)
    assert over.status == 429
    assert "limit 2" in over.json()["error"]
    assert int(over.headers["retry-after"]) > 0
    _created(api.post(body, key=OTHER_KEY))  # the limit is per key
    assert api.service.run_once(janitor=False)  # one finishes -> room for one more
    _created(api.post(body))


def test_keys_are_required_except_on_probes(api_factory: Callable[..., Api]) -> None:
    api = api_factory()
    for key in (None, "wrong", ""):
        for reply in (
            api.post({"attributes": ["email"]}, key=key),
            api.get(f"/v1/exports/{uuid.uuid4().hex}", key=key),
            api.get("/v1/attributes", key=key),
        ):
            assert reply.status == 401
            assert reply.json() == {"error": "missing or invalid x-api-key header", "field": None}
    assert api.get("/healthz", key=None).status == 200
    assert api.get("/readyz", key=None).status == 200
    metrics = api.get("/metrics", key=None)
    assert b'segflow_export_http_requests_total{route="create",status="401"} 3.0' in metrics.body
    assert b"\nsegflow_export_ready 1.0\n" in metrics.body
    text = assert_prometheus_endpoints(api.url)
    assert 'segflow_export_http_request_duration_seconds_count{route="create"} 3.0' in text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "attributes"),
        ({"attributes": [f"data_bag.k{i}" for i in range(76)]}, "attributes"),
        ({"attributes": ["email"], "tags": [f"t{i}" for i in range(26)]}, "tags"),
        ({"attributes": ["nope"]}, "attributes[0]"),
        ({"attributes": ["email"], "tags": ["no-such-segment"]}, "tags[0]"),
        ({"attributes": ["email"], "segment_filter": "no-such-segment"}, "segment_filter"),
        ({"attributes": ["email"], "events": ["add"]}, "start_at"),
        ({"attributes": ["email"], "events": ["click"], "start_at": "2026-01-01"}, "events[0]"),
        (
            {"attributes": ["email"], "start_at": "2026-01-01", "end_at": "2026-04-02"},
            "end_at",
        ),
        ({"attributes": ["email"], "limit": 3}, "limit"),
        (b"not json", None),
    ],
)
def test_invalid_requests_are_400_naming_the_field(
    api_factory: Callable[..., Api], body: Any, field: str | None
) -> None:
    reply = api_factory().post(body)
    assert reply.status == 400
    assert reply.json()["field"] == field
    assert reply.json()["error"]


def test_catalog_endpoints_describe_the_ids(
    seeded: Seeded, api_factory: Callable[..., Api]
) -> None:
    api = api_factory()
    tags = {tag["id"] for tag in api.get("/v1/tags").json()["tags"]}
    assert {seeded.segment, seeded.persons_segment} <= tags
    events = {event["id"] for event in api.get("/v1/events").json()["events"]}
    assert events == {"add", "remove", "block", "reset", "replace"}
    attributes = {a["id"] for a in api.get("/v1/attributes").json()["attributes"]}
    assert {"email", "membership.via", "data_bag.<key>"} <= attributes


def test_a_job_whose_worker_died_is_retried_then_failed(
    seeded: Seeded, api_factory: Callable[..., Api]
) -> None:
    api = api_factory(max_attempts=2, lease_s=5)
    store = api.service.store
    body = {"segment_filter": seeded.persons_segment, "attributes": ["email"]}
    export_id = _created(api.post(body))

    def crash(export_id: str) -> None:
        job = store.get(KEY_ID, export_id)
        assert job is not None
        assert store.claim(job, "elsewhere:1:gone", api.clock(), 5)
        api.clock.advance(seconds=6)  # the lease lapses

    crash(export_id)  # attempt 1 died -> retried by this worker (attempt 2)
    assert api.service.run_once(janitor=False)
    job = store.get(KEY_ID, export_id)
    assert job is not None
    assert (job.status, job.attempts) == (JobStatus.READY, 2)
    assert api.get(f"/v1/exports/{export_id}").status == 200

    failing = _created(api.post(body))
    crash(failing)
    job = store.get(KEY_ID, failing)
    assert job is not None
    assert store.release(job, "elsewhere:1:gone", api.clock(), 1, None)  # back in the queue
    crash(failing)  # attempt 2 died too -> no attempts left
    api.service.run_once(janitor=False)
    reply = api.get(f"/v1/exports/{failing}")
    assert reply.status == 503
    assert "interrupted" in reply.json()["error"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_killed_mid_export_finishes_the_job_after_restart(
    seeded: Seeded, cassandra_settings: CassandraSettings, tmp_path: Path
) -> None:
    port = _free_port()
    env = serve_env(cassandra_settings, tmp_path, port)
    url = f"http://127.0.0.1:{port}"

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "segflow.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def up() -> bool:
            try:
                return call("GET", f"{url}/readyz").status == 200
            except OSError:
                return False

        wait_until(up, 60, "segflow serve answering /readyz")
        return process

    first = start()
    try:
        reply = call(
            "POST",
            f"{url}/v1/exports",
            KEY,
            {
                "segment_filter": seeded.segment,
                "attributes": ["email", "membership.via"],
                "tags": [seeded.segment, seeded.persons_segment],
            },
        )
        export_id = _created(reply)
        status = f"{url}/v1/exports/{export_id}/status"
        wait_until(
            lambda: call("GET", status, KEY).json()["status"] == "RUNNING", 30, "job running"
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert not list(tmp_path.glob("*.json.gz"))  # no torn file in place

    second = start()
    try:
        wait_until(lambda: call("GET", status, KEY).json()["status"] == "READY", 300, "job ready")
        job = call("GET", status, KEY).json()
        assert job["attempts"] == 2
        data = json.loads(call("GET", f"{url}/v1/exports/{export_id}", KEY).body)
        assert set(data) == set(seeded.members)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert not list(tmp_path.glob("*.tmp"))


def test_sigterm_mid_export_queues_the_job_again_without_spending_an_attempt(
    seeded: Seeded, api_factory: Callable[..., Api]
) -> None:
    api = api_factory(workers=1, scan_interval_s=0.1)
    export_id = _created(
        api.post(
            {
                "segment_filter": seeded.segment,
                "attributes": ["email", "membership.via"],
                "tags": [seeded.persons_segment],
            }
        )
    )
    store = api.service.store

    def status() -> JobStatus | None:
        job = store.get(KEY_ID, export_id)
        return None if job is None else job.status

    api.service.start()
    try:
        wait_until(lambda: status() == JobStatus.RUNNING, 30, "job running")
    finally:
        api.service.stop(timeout_s=30)  # what SIGTERM does in `segflow serve`
    job = store.get(KEY_ID, export_id)
    assert job is not None
    assert (job.status, job.attempts, job.owner) == (JobStatus.PENDING, 0, None)
    assert not export_file(api.export_dir, export_id).exists()
    assert not list(api.export_dir.glob("*.tmp"))
