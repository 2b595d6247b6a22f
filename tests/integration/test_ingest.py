"""The ingestion API on the real stack, driven by the seeds' own curl commands.

The app is ``segflow serve``'s composed one (``http_api.app``), served by uvicorn on a real
socket; requests are made with ``curl`` exactly as the seeds write them (placeholders filled
in), the real consumer applies what was produced, and the outcome is read back with
``segflow members`` and from the Kafka topic.
"""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaException
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.routing import Route

from http_api.app import build_app, ingest_context
from http_api.export.auth import ApiKeys
from http_api.export.jobs import utc_now
from http_api.export.metrics import ExportMetrics
from http_api.export.routes import ExportApi
from http_api.export.worker import ExportService
from http_api.ingest.metrics import IngestMetrics
from http_api.ingest.pipeline import IngestPipeline
from segflow.contract.codec import decode
from segflow.db.executions import ExecutionStore, Status
from segflow.db.registry import SegmentRegistry
from segflow.settings import (
    ApiKeyGrant,
    CassandraSettings,
    KafkaSettings,
    ServeOptions,
    ServeSettings,
)
from tests.support.cli_env import segflow_env
from tests.support.consumer_harness import (
    consume_settings,
    read_topic,
    running_consumer,
    topic_size,
    wait_landed,
    wait_until,
)
from tests.support.export_server import call, serving_app

pytestmark = pytest.mark.integration

KEY = "key-datamart-1"  # ingest: datamart 1, network 7, Segmenter
OTHER_KEY = "key-datamart-2"  # ingest: datamart 2, network 8
EXPORT_KEY = "key-export-only"
GRANTS = [
    ApiKeyGrant(
        key=SecretStr(KEY),
        permissions=["ingest", "export"],
        datamarts=["1"],
        networks=["7"],
        segmenter=True,
    ),
    ApiKeyGrant(key=SecretStr(OTHER_KEY), permissions=["ingest"], datamarts=["2"], networks=["8"]),
]

# Seed 000/001 (mediarithmics), verbatim but for the host and the placeholders.
SEED_CREATE_IMPORT = """curl -X POST \\
  https://api.mediarithmics.com/v1/datamarts/<DATAMART_ID>/document_imports \\
  -H 'Authorization: <YOUR_API_TOKEN>' \\
  -H 'Content-Type: application/json' \\
  -d '{
	"document_type": "USER_SEGMENT",
	"mime_type": "APPLICATION_X_NDJSON",
	"encoding": "utf-8",
	"name": "<YOUR_DOCUMENT_IMPORT_NAME>"
}'"""
SEED_CREATE_EXECUTION = """curl -X POST \\
  https://api.mediarithmics.com/v1/datamarts/<DATAMART_ID>/document_imports/<DOCUMENT_IMPORT_ID>/executions \\
  -H 'Authorization: <API_TOKEN>' \\
  -H 'Content-Type: application/x-ndjson' \\
  -d '{ 
        "operation": "UPDATE",
        "expiration_duration": <INTEGER>,
        "compartment_id": "<COMPARTMENT_ID>", 
        "user_account_id": "<USER_ACCOUNT_ID>",
        "segment_id": "<SEGMENT_ID>"
      }'"""  # noqa: E501, W291 - the seed's own text


@dataclass
class Ingest:
    """The served app and what tests need around it."""

    url: str
    kafka: KafkaSettings
    cassandra: CassandraSettings
    store: ExecutionStore
    registry: SegmentRegistry
    env: dict[str, str]
    app: Starlette
    pipeline: IngestPipeline

    def curl(self, text: str, **placeholders: str) -> tuple[int, bytes]:
        """Run a seed's curl command (``\\``-continued lines) against this server."""
        command = text.replace("https://api.mediarithmics.com", self.url)
        for name, value in placeholders.items():
            command = command.replace(f"<{name}>", value)
        assert "<" not in command, command
        args = shlex.split(command.replace("\\\n", " "))
        return run_curl(args[1:])

    def members(self, segment: str) -> set[str]:
        listed = subprocess.run(
            [sys.executable, "-m", "segflow.cli", "members", segment, "--format", "ndjson"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        return {json.loads(line)["user_key"] for line in listed.stdout.splitlines()}


def run_curl(args: list[str]) -> tuple[int, bytes]:
    """``curl ARGS``: (status, body)."""
    done = subprocess.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
        capture_output=True,
        timeout=120,
        check=True,
    )
    body, _, status = done.stdout.rpartition(b"\n")
    return int(status), body


def serve_settings(
    kafka: KafkaSettings, cassandra: CassandraSettings, tmp_path: Path, **options: Any
) -> ServeSettings:
    serve = ServeOptions(
        api_keys=[SecretStr(EXPORT_KEY)],
        api_key_grants=GRANTS,
        export_dir=tmp_path / "exports",
        ingest_dir=tmp_path / "ingest",
        workers=0,
        **options,
    )
    return ServeSettings(kafka=kafka, cassandra=cassandra, serve=serve)


@pytest.fixture
def app_factory(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    cassandra_session: Any,
    tmp_path: Path,
) -> Iterator[Callable[..., Ingest]]:
    contexts: list[Any] = []

    def make(kafka: KafkaSettings | None = None, **options: Any) -> Ingest:
        settings = serve_settings(
            kafka or kafka_settings, cassandra_settings, tmp_path / uuid.uuid4().hex[:6], **options
        )
        opts = settings.serve
        keys = ApiKeys(opts.api_keys, None, opts.api_key_grants)
        metrics = ExportMetrics()  # one registry for both APIs, as in ``serve``
        ctx = ingest_context(cassandra_session, keys, settings, IngestMetrics(metrics.registry))
        service = ExportService(cassandra_session, opts, metrics, utc_now)
        export = ExportApi(service, keys, ctx.registry, lambda: True)
        app = build_app(export, ctx, settings)
        context = serving_app(app)
        url = context.__enter__()
        contexts.append((context, ctx))
        return Ingest(
            url,
            settings.kafka,
            cassandra_settings,
            ctx.pipeline.store,
            ctx.registry,
            segflow_env(settings.kafka, cassandra_settings),
            app,
            ctx.pipeline,
        )

    yield make
    for context, ctx in contexts:
        context.__exit__(None, None, None)
        ctx.pipeline.producer.close()


@pytest.fixture
def ingest(app_factory: Callable[..., Ingest]) -> Ingest:
    return app_factory()


def commands(ingest: Ingest, expected: int) -> list[dict[str, Any]]:
    """Every command on the test's topic, decoded."""
    found = read_topic(ingest.kafka, ingest.kafka.commands_topic, expected)
    return [dict(decode(message.value())) for message in found]


def test_mediarithmics_seed_curls_import_execute_status_then_the_member_is_found(
    ingest: Ingest, unique_name: Callable[[str], str]
) -> None:
    segment = unique_name("seg")
    ingest.registry.create(segment)
    status, body = ingest.curl(
        SEED_CREATE_IMPORT,
        DATAMART_ID="1",
        YOUR_API_TOKEN=KEY,
        YOUR_DOCUMENT_IMPORT_NAME="crm-nightly",
    )
    assert status == 200, body
    created = orjson.loads(body)
    assert created["status"] == "ok"
    assert created["data"]["mime_type"] == "APPLICATION_X_NDJSON"
    import_id = created["data"]["id"]

    with running_consumer(consume_settings(ingest.kafka, ingest.cassandra)):
        status, body = ingest.curl(
            SEED_CREATE_EXECUTION,
            DATAMART_ID="1",
            DOCUMENT_IMPORT_ID=import_id,
            API_TOKEN=KEY,
            INTEGER="0",
            COMPARTMENT_ID="1000",
            USER_ACCOUNT_ID="acc-42",
            SEGMENT_ID=segment,
        )
        assert status == 200, body
        execution = orjson.loads(body)["data"]
        assert execution["status"] == "SUCCEEDED"
        assert execution["result"]["commands_produced"] == 1
        wait_landed(ingest.store, execution["id"], 1)

    base = f"{ingest.url}/v1/datamarts/1/document_imports/{import_id}"
    status, body = run_curl([f"{base}/executions/{execution['id']}", "-H", f"Authorization: {KEY}"])
    assert status == 200
    shown = orjson.loads(body)["data"]
    assert shown["result"]["commands_applied"] == 1
    assert shown["rejected_lines"] == []
    status, body = run_curl([f"{base}/executions", "-H", f"Authorization: {KEY}"])
    assert [e["id"] for e in orjson.loads(body)["data"]] == [execution["id"]]
    status, body = run_curl([base, "-H", f"Authorization: {KEY}"])
    assert orjson.loads(body)["data"]["name"] == "crm-nightly"
    # The same execution model as the CLI's.
    stored = ingest.store.get(execution["id"])
    assert stored is not None
    assert stored.status is Status.SUCCEEDED
    assert ingest.members(segment) == {"account:1000:acc-42"}


def test_rejected_lines_are_listed_with_reasons_and_downloadable(
    ingest: Ingest, unique_name: Callable[[str], str]
) -> None:
    status, body = run_curl(
        [
            f"{ingest.url}/v1/datamarts/1/document_imports",
            "-H",
            f"Authorization: {KEY}",
            "-d",
            '{"document_type": "USER_SEGMENT", "mime_type": "TEXT_CSV", "encoding": "utf-8",'
            ' "name": "csv"}',
        ]
    )
    assert status == 200, body
    import_id = orjson.loads(body)["data"]["id"]
    base = f"{ingest.url}/v1/datamarts/1/document_imports/{import_id}"
    csv = (
        "operation,compartment_id,user_account_id,segment_id,expiration_duration\n"
        "UPDATE,1000,acc-1,s1,0\n"
        "UPSERT,1000,acc-2,s1,0\n"
        "UPDATE,1000,acc-3,s1,minutes\n"
    )
    status, body = run_curl(
        [
            f"{base}/executions",
            "-H",
            f"Authorization: {KEY}",
            "-H",
            "Content-Type: application/x-ndjson",
            "--data-binary",
            csv,
        ]
    )
    assert status == 415, body  # a CSV import takes text/csv bodies
    status, body = run_curl(
        [
            f"{base}/executions",
            "-H",
            f"Authorization: {KEY}",
            "-H",
            "Content-Type: text/csv",
            "--data-binary",
            csv,
        ]
    )
    assert status == 200, body
    execution = orjson.loads(body)["data"]
    assert execution["result"]["lines_rejected"] == 2
    assert execution["result"]["commands_produced"] == 1
    rejected = execution["rejected_lines"]
    assert [(r["line"], r["field"]) for r in rejected] == [
        (3, "operation"),
        (4, "expiration_duration"),
    ]
    status, body = run_curl(
        [f"{ingest.url}{execution['error_file_uri']}", "-H", f"Authorization: {KEY}"]
    )
    assert status == 200
    assert [orjson.loads(line) for line in body.splitlines()] == rejected
    assert len(commands(ingest, 1)) == 1
    # Past serve.ingest_errors_retention_days (30) the file is pruned: 410, not an empty file.
    assert ingest.pipeline.retention.prune(time.time() + 31 * 86400) >= 1
    status, body = run_curl(
        [f"{ingest.url}{execution['error_file_uri']}", "-H", f"Authorization: {KEY}"]
    )
    assert status == 410, body
    assert orjson.loads(body)["error_code"] == "GONE"


def test_village_add_block_reset_and_an_unknown_segment_is_refused(
    ingest: Ingest, unique_name: Callable[[str], str]
) -> None:
    segment = str(uuid.uuid4().int % 10**9)
    ingest.registry.create(segment)
    url = f"{ingest.url}/networks/7/segments"

    def post(body: dict[str, Any], key: str = KEY) -> tuple[int, Any]:
        status, raw = run_curl(
            [url, "-X", "POST", "-H", f"Authorization: {key}", "-H",
             "Content-Type: application/json", "-d", json.dumps(body)]
        )  # fmt: skip
        return status, orjson.loads(raw)

    user = "Jane.Doe@Example.com"
    with running_consumer(consume_settings(ingest.kafka, ingest.cassandra)):
        status, reply = post({"user": user, "segment_id": int(segment), "user_status": "add"})
        assert status == 200, reply
        wait_landed(ingest.store, reply["execution_id"], 1)
        assert ingest.members(segment) == {"email:jane.doe@example.com"}

        status, reply = post({"user": user, "segment_id": int(segment), "user_status": "block"})
        assert status == 200, reply
        wait_landed(ingest.store, reply["execution_id"], 1)
        assert ingest.members(segment) == set()

        status, reply = post({"user": user, "segment_id": segment, "user_status": "reset"})
        assert status == 200, reply
        wait_landed(ingest.store, reply["execution_id"], 1)
        assert ingest.members(segment) == set()  # no override and no feed membership

    produced = topic_size(ingest.kafka, ingest.kafka.commands_topic)
    status, reply = post({"user": user, "segment_id": 999_999_999_1, "user_status": "add"})
    assert status == 422
    assert reply["field"] == "segment_id"
    assert "create the segment" in reply["error"]
    status, reply = post({"user": user, "segment_id": int(segment), "user_status": "promote"})
    assert status == 400
    assert reply["field"] == "user_status"
    status, reply = post({"segment_id": int(segment), "user_status": "add"})
    assert (status, reply["field"]) == (400, "user")
    assert topic_size(ingest.kafka, ingest.kafka.commands_topic) == produced


def test_concurrent_village_posts_share_executions_and_each_gets_its_own_answer(
    app_factory: Callable[..., Ingest],
) -> None:
    """Group commit: one slot, so POSTs arriving while a group runs form the next one; a bad
    line of a group is that request's 4xx only, every other command is durable and lands."""
    ingest = app_factory(village_batches_in_flight=1, max_concurrent_per_key=64)
    segment = str(uuid.uuid4().int % 10**9)
    ingest.registry.create(segment)
    bodies: list[dict[str, Any]] = [
        {"user": f"u-{i}", "segment_id": int(segment), "user_status": "add"} for i in range(24)
    ]
    bodies[5]["segment_id"] = 999_999_999_7  # unknown segment
    bodies[11]["user_status"] = "promote"  # field error
    produced = -1

    def measured() -> bool:  # the test's topic is new: its leaders may not be elected yet
        nonlocal produced
        try:
            produced = topic_size(ingest.kafka, ingest.kafka.commands_topic)
        except KafkaException:
            return False
        return True

    wait_until(measured, 30, "the new topic's partitions to have leaders")

    def post(body: dict[str, Any]) -> tuple[int, Any]:
        reply = call("POST", f"{ingest.url}/networks/7/segments", None, body,
                     headers={"Authorization": KEY})  # fmt: skip
        return reply.status, reply.json()

    with ThreadPoolExecutor(len(bodies)) as pool:
        replies = list(pool.map(post, bodies))
    assert (replies[5][0], replies[5][1]["field"]) == (422, "segment_id")
    assert (replies[11][0], replies[11][1]["field"]) == (400, "user_status")
    ok = [reply for i, (status, reply) in enumerate(replies) if i not in (5, 11)]
    assert all(status == 200 for i, (status, _) in enumerate(replies) if i not in (5, 11))
    assert len({(r["execution_id"], r["line"]) for r in ok}) == len(ok)
    groups = {r["execution_id"] for r in ok}
    assert len(groups) < len(ok), "no two concurrent POSTs were grouped"
    # Each grouped execution counts its own lines, rejected ones included.
    executions = [ingest.store.get(eid) for eid in groups]
    read = 0
    for execution in executions:
        assert execution is not None
        assert execution.status is Status.SUCCEEDED
        read += execution.lines_read
    assert 22 <= read <= 24
    assert topic_size(ingest.kafka, ingest.kafka.commands_topic) == produced + 22
    with running_consumer(consume_settings(ingest.kafka, ingest.cassandra)):
        for execution in executions:
            assert execution is not None
            wait_landed(ingest.store, execution.execution_id, execution.commands_produced)
    assert ingest.members(segment) == {f"user_id:u-{i}" for i in range(24) if i not in (5, 11)}
    # /metrics: counted by route template and status, no tenant, segment or user in a label.
    scraped = call("GET", f"{ingest.url}/metrics").body.decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
    }
    route = (("method", "POST"), ("route", "/networks/{network_id}/segments"))

    def requests(status: str) -> float:
        return samples[("segflow_ingest_http_requests_total", (*route, ("status", status)))]

    assert (requests("200"), requests("400"), requests("422")) == (22, 1, 1)
    assert samples[("segflow_ingest_records_produced_total", (("format", "village"),))] == 22
    assert samples[("segflow_ingest_http_request_duration_seconds_count", route)] == 24
    assert samples[("segflow_ingest_body_bytes_total", route)] == sum(
        len(orjson.dumps(body)) for body in bodies
    )
    groups_run = samples[("segflow_ingest_village_group_size_count", ())]
    assert len(groups) <= groups_run < 24
    labels = {
        value for name, pairs in samples if name.startswith("segflow_ingest") for _, value in pairs
    }
    assert not {segment, "7", "u-1"} & labels


SEGMENTER_DOC = {
    "id": "<SEGMENT>",
    "name": "Loyalty",
    "description": "from the CRM",
    "broadcastMediumId": "email",
    "segmentType": "static",
    "persons": [
        {
            "substitutionTags": [{"tag": "city", "value": "Lyon"}],
            "externalId": "p-1",
            "firstName": "Ana",
            "lastName": "B",
            "phone": "+33100000000",
            "email": "ana@example.com",
        },
        {"externalId": "p-2", "firstName": "Bo"},
    ],
}


def test_segmenter_replace_then_empty_persons_clears_with_the_exact_seed_body(
    ingest: Ingest, unique_name: Callable[[str], str]
) -> None:
    segment = unique_name("segmenter")
    document = json.loads(json.dumps(SEGMENTER_DOC).replace("<SEGMENT>", segment))
    url = f"{ingest.url}/segments/{segment}"

    def put(body: Any) -> tuple[int, bytes]:
        return run_curl(
            [url, "-X", "PUT", "-H", f"x-api-key: {KEY}", "-H",
             "Content-Type: application/json", "-d", json.dumps(body)]
        )  # fmt: skip

    with running_consumer(consume_settings(ingest.kafka, ingest.cassandra)):
        status, body = put(document)
        assert (status, body) == (200, b'{"data": {"isUpdated": true}, "errorMessage": ""}')
        latest = ingest.store.recent(5)[0]
        wait_landed(ingest.store, latest.execution_id, 4)
        assert ingest.members(segment) == {"user_id:p-1", "user_id:p-2"}

        status, body = put({**document, "persons": []})
        assert (status, body) == (200, b'{"data": {"isUpdated": true}, "errorMessage": ""}')
        cleared = ingest.store.recent(5)[0]
        wait_landed(ingest.store, cleared.execution_id, 2)
        assert ingest.members(segment) == set()

        status, body = put(
            {key: v for key, v in document.items() if key != "persons"} | {"name": "Renamed"}
        )
        assert status == 200, body
        wait_landed(ingest.store, ingest.store.recent(5)[0].execution_id, 1)
    found = ingest.registry.get(segment, fresh=True)
    assert found is not None
    assert found.name == "Renamed"
    assert ingest.members(segment) == set()

    status, body = put({**document, "persons": [{"firstName": "no id"}]})
    assert status == 400
    failure = orjson.loads(body)
    assert failure["success"] is False
    assert failure["message"] == "Bad Request"
    assert "persons[0].externalId" in failure["error"]


def test_a_cut_off_segmenter_body_never_produces_replace_end(
    ingest: Ingest, unique_name: Callable[[str], str]
) -> None:
    segment = unique_name("cut")
    # Big enough that the first half fills every read buffer between socket and parser.
    persons = ",".join(json.dumps({"externalId": f"p-{i}"}) for i in range(100_000))
    body = f'{{"id": "{segment}", "persons": [{persons}]}}'.encode()
    host, port = ingest.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as conn:
        conn.sendall(
            f"PUT /segments/{segment} HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        conn.sendall(body[: len(body) // 2])
        # Cut only once the server streamed the first half into Kafka.
        wait_until(
            lambda: topic_size(ingest.kafka, ingest.kafka.commands_topic) > 1,
            60,
            "the first half to be produced",
        )

    # The server saw the disconnect: the execution ends FAILED, never SUCCEEDED.
    def ended() -> bool:
        latest = [e for e in ingest.store.recent(10) if e.import_name == f"segmenter:{segment}"]
        return bool(latest) and latest[0].status is Status.FAILED

    wait_until(ended, 60, "the cut-off execution to fail")
    produced = topic_size(ingest.kafka, ingest.kafka.commands_topic)
    assert produced > 1  # BEGIN and the members read before the cut
    operations = [c["operation"] for c in commands(ingest, produced)]
    assert "REPLACE_BEGIN" in operations
    assert "REPLACE_END" not in operations


def test_keys_are_bound_to_tenants_and_permissions(ingest: Ingest) -> None:
    body = '{"document_type": "USER_SEGMENT", "mime_type": "APPLICATION_X_NDJSON"}'
    imports = f"{ingest.url}/v1/datamarts/1/document_imports"
    assert run_curl([imports, "-d", body])[0] == 401
    assert run_curl([imports, "-H", "Authorization: wrong", "-d", body])[0] == 401
    assert run_curl([imports, "-H", f"Authorization: {EXPORT_KEY}", "-d", body])[0] == 403
    status, reply = run_curl([imports, "-H", f"Authorization: {OTHER_KEY}", "-d", body])
    assert status == 403
    assert orjson.loads(reply)["status"] == "error"
    assert run_curl([imports, "-H", f"Authorization: Bearer {KEY}", "-d", body])[0] == 200
    village = f"{ingest.url}/networks/7/segments"
    assert run_curl([village, "-H", f"Authorization: {OTHER_KEY}", "-d", "{}"])[0] == 403
    segmenter = f"{ingest.url}/segments/s"
    assert run_curl([segmenter, "-X", "PUT", "-H", f"x-api-key: {OTHER_KEY}", "-d", "{}"])[0] == 403
    # Export routes take export keys only.
    assert run_curl([f"{ingest.url}/v1/tags", "-H", f"x-api-key: {OTHER_KEY}"])[0] == 401
    assert run_curl([f"{ingest.url}/v1/tags", "-H", f"x-api-key: {EXPORT_KEY}"])[0] == 200
    assert run_curl([f"{ingest.url}/v1/tags", "-H", f"x-api-key: {KEY}"])[0] == 200
    # An import of datamart 1 is not visible under datamart 2, even to a datamart-2 key.
    status, reply = run_curl([imports, "-H", f"Authorization: {KEY}", "-d", body])
    import_id = orjson.loads(reply)["data"]["id"]
    other = f"{ingest.url}/v1/datamarts/2/document_imports/{import_id}"
    assert run_curl([other, "-H", f"Authorization: {OTHER_KEY}"])[0] == 404


def _segmenter_head(segment: str, length: int) -> bytes:
    return (
        f"PUT /segments/{segment} HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _answer(conn: socket.socket) -> bytes:
    conn.settimeout(60)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_no_key_is_401_and_a_declared_oversize_body_413_before_any_body_byte(
    app_factory: Callable[..., Ingest],
) -> None:
    ingest = app_factory(max_stream_body_bytes=64 << 10)
    host, port = ingest.url.removeprefix("http://").split(":")
    for key_header, expected in ((b"", b"401"), (f"x-api-key: {KEY}\r\n".encode(), b"413")):
        with socket.create_connection((host, int(port))) as conn:
            # 10 GB announced, not one byte sent: the answer must come anyway.
            conn.sendall(
                b"PUT /segments/s HTTP/1.1\r\nHost: x\r\n" + key_header
                + b"Content-Length: 10000000000\r\n\r\n"
            )  # fmt: skip
            assert _answer(conn).split(b" ")[1] == expected


def test_a_streamed_body_over_the_cap_is_413_and_replaces_nothing(
    app_factory: Callable[..., Ingest], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    ingest = app_factory(max_stream_body_bytes=256 << 10)
    segment = unique_name("big")
    persons = ",".join(json.dumps({"externalId": f"p-{i}"}) for i in range(50_000))
    big = tmp_path / "big.json"
    big.write_text(f'{{"id": "{segment}", "persons": [{persons}]}}')
    status, body = run_curl(
        [f"{ingest.url}/segments/{segment}", "-X", "PUT", "-H", f"x-api-key: {KEY}",
         "-H", "Transfer-Encoding: chunked", "--data-binary", f"@{big}"]
    )  # fmt: skip
    assert status == 413, body
    assert orjson.loads(body)["success"] is False
    produced = topic_size(ingest.kafka, ingest.kafka.commands_topic)
    operations = [c["operation"] for c in commands(ingest, produced)]
    assert "REPLACE_END" not in operations


def test_per_key_concurrency_is_429_with_retry_after(
    app_factory: Callable[..., Ingest], unique_name: Callable[[str], str]
) -> None:
    ingest = app_factory(max_concurrent_per_key=1, busy_retry_after_s=3)
    segment = unique_name("busy")
    persons = ",".join(json.dumps({"externalId": f"p-{i}"}) for i in range(100_000))
    body = f'{{"id": "{segment}", "persons": [{persons}]}}'.encode()
    host, port = ingest.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as conn:
        conn.sendall(_segmenter_head(segment, len(body)))
        conn.sendall(body[: len(body) // 2])
        wait_until(
            lambda: topic_size(ingest.kafka, ingest.kafka.commands_topic) > 1,
            60,
            "the first request to be streaming",
        )
        busy = call("PUT", f"{ingest.url}/segments/{segment}", KEY, {"id": segment})
        assert busy.status == 429
        assert {k.lower(): v for k, v in busy.headers.items()}["retry-after"] == "3"
        # Another key is not held back by this one.
        other = call("POST", f"{ingest.url}/networks/8/segments", None, {},
                     headers={"Authorization": OTHER_KEY})  # fmt: skip
        assert other.status == 400
        conn.sendall(body[len(body) // 2 :])
        assert _answer(conn).split(b" ")[1] == b"200"
    assert call("PUT", f"{ingest.url}/segments/{segment}", KEY, {"id": segment}).status == 200


def test_kafka_unavailable_is_503_with_retry_after_never_200(
    app_factory: Callable[..., Ingest], kafka_settings: KafkaSettings
) -> None:
    dead = kafka_settings.model_copy(update={"bootstrap_servers": "127.0.0.1:9"})
    ingest = app_factory(kafka=dead, delivery_timeout_s=2, unavailable_retry_after_s=7)
    segment = str(uuid.uuid4().int % 10**9)
    ingest.registry.create(segment)
    reply = call(
        "POST",
        f"{ingest.url}/networks/7/segments",
        None,
        {"user": "u-1", "segment_id": int(segment), "user_status": "add"},
        headers={"Authorization": KEY},
    )
    assert reply.status == 503, reply.body
    assert {k.lower(): v for k, v in reply.headers.items()}["retry-after"] == "7"
    failed = [e for e in ingest.store.recent(20) if e.import_name == "village:network:7"]
    assert failed[0].status is Status.FAILED
    seg = call("PUT", f"{ingest.url}/segments/s", KEY, {"id": "s", "persons": []})
    assert seg.status == 503
    assert orjson.loads(seg.body)["success"] is False


def test_openapi_describes_every_route_and_is_a_valid_document(ingest: Ingest) -> None:
    reply = call("GET", f"{ingest.url}/openapi.json")
    assert reply.status == 200
    document = reply.json()
    validate(document)
    described = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item
    }
    served = {
        (route.path, method)
        for route in ingest.app.routes
        if isinstance(route, Route)
        for method in (route.methods or {"GET"}) - {"HEAD"}
    }
    assert served <= described, served - described
    assert described <= served, described - served


def _ndjson_lines(segment: str, count: int) -> bytes:
    return b"".join(
        orjson.dumps(
            {
                "operation": "UPDATE",
                "expiration_duration": 0,
                "compartment_id": "1",
                "user_account_id": f"a-{i}",
                "segment_id": segment,
            }
        )
        + b"\n"
        for i in range(count)
    )


def test_a_running_execution_is_canceled_by_the_cancel_action(
    ingest: Ingest, unique_name: Callable[[str], str]
) -> None:
    status, reply = run_curl(
        [f"{ingest.url}/v1/datamarts/1/document_imports", "-H", f"Authorization: {KEY}",
         "-d", '{"document_type": "USER_SEGMENT", "mime_type": "APPLICATION_X_NDJSON"}']
    )  # fmt: skip
    import_id = orjson.loads(reply)["data"]["id"]
    base = f"/v1/datamarts/1/document_imports/{import_id}/executions"
    body = _ndjson_lines(unique_name("seg"), 60_000)
    host, port = ingest.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as conn:
        conn.sendall(
            f"POST {base} HTTP/1.1\r\nHost: x\r\nAuthorization: {KEY}\r\n"
            f"Content-Type: application/x-ndjson\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        conn.sendall(body[: len(body) // 2])
        wait_until(
            lambda: topic_size(ingest.kafka, ingest.kafka.commands_topic) > 0,
            60,
            "the execution to be producing",
        )
        listed = orjson.loads(run_curl([f"{ingest.url}{base}", "-H", f"Authorization: {KEY}"])[1])
        (running,) = listed["data"]
        assert running["status"] == "RUNNING"
        status, reply = run_curl(
            [f"{ingest.url}{base}/{running['id']}/action", "-H", f"Authorization: {KEY}",
             "-d", '{"action": "CANCEL"}']
        )  # fmt: skip
        assert status == 200, reply
        conn.sendall(body[len(body) // 2 :])
        answer = _answer(conn)
        assert answer.split(b" ")[1] == b"200"
    final = ingest.store.get(running["id"])
    assert final is not None
    assert final.status is Status.CANCELED
    assert final.commands_produced < 60_000
    again = run_curl(
        [f"{ingest.url}{base}/{running['id']}/action", "-H", f"Authorization: {KEY}",
         "-d", '{"action": "CANCEL"}']
    )  # fmt: skip
    assert again[0] == 409


def test_sigterm_lets_a_streaming_request_finish_and_refuses_new_ones(
    kafka_settings: KafkaSettings,
    cassandra_settings: CassandraSettings,
    tmp_path: Path,
    unique_name: Callable[[str], str],
) -> None:
    import signal

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = segflow_env(
        kafka_settings,
        cassandra_settings,
        SEGFLOW_SERVE__PORT=str(port),
        SEGFLOW_SERVE__API_KEY_GRANTS=json.dumps(
            [{"key": KEY, "permissions": ["ingest"], "segmenter": True}]
        ),
        SEGFLOW_SERVE__EXPORT_DIR=str(tmp_path / "exports"),
        SEGFLOW_SERVE__INGEST_DIR=str(tmp_path / "ingest"),
        SEGFLOW_SERVE__WORKERS="0",
        SEGFLOW_LOG__LEVEL="WARNING",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "segflow.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return call("GET", f"{url}/healthz").status == 200
        except OSError:
            return False

    try:
        wait_until(up, 60, "segflow serve answering /healthz")
        segment = unique_name("term")
        persons = ",".join(json.dumps({"externalId": f"p-{i}"}) for i in range(100_000))
        body = f'{{"id": "{segment}", "persons": [{persons}]}}'.encode()
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(_segmenter_head(segment, len(body)))
            conn.sendall(body[: len(body) // 2])
            wait_until(
                lambda: topic_size(kafka_settings, kafka_settings.commands_topic) > 1,
                60,
                "the request to be streaming",
            )
            server.send_signal(signal.SIGTERM)
            wait_until(lambda: not up(), 30, "the server to stop accepting")
            conn.sendall(body[len(body) // 2 :])
            assert _answer(conn).split(b" ")[1] == b"200"
        assert server.wait(60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    produced = topic_size(kafka_settings, kafka_settings.commands_topic)
    assert produced == 100_002
    operations = [dict(decode(m.value()))["operation"] for m in
                  read_topic(kafka_settings, kafka_settings.commands_topic, produced)]  # fmt: skip
    assert operations.count("REPLACE_END") == 1
