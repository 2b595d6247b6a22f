"""HTTP ingestion throughput, measured side by side in one run on the same broker.

Run (stack up, keyspace migrated, topics created; the stack's env exported)::

    eval "$(segflow stack env)"; python -m bench.bench_ingest --requests 4000 --lines 200000

* Village ``POST /networks/{id}/segments`` per second with HTTP/1.1 keep-alive over 32 and 64
  concurrent connections (an asyncio load script: raw keep-alive sockets, no client library
  overhead to speak of), p50/p99 latency;
* (a) the HTTP ceiling: a no-op POST on the same server stack (same uvicorn, same guard:
  key, tenant, concurrency), reading the same body and answering at once;
* (b) the bare produce loop: the same Village commands, pre-encoded, produced by one
  confluent-kafka producer with the uploader's settings (acks=all) and flushed;
* an execution body (``--lines`` mediarithmics NDJSON lines) streamed to
  ``POST .../executions`` against ``segflow upload`` of the same file;
* the server's RSS while a ``--big-mb`` (1024) MB body streams through one execution
  (chunked, sampled every 0.5 s): it must stay flat, whatever the body size.

Village POSTs of one network waiting together share one execution (group commit,
``http_api/ingest/batching.py``); the no-op row is measured before and after each Village row
and averaged, since the load of a shared machine drifts between rows.

The server runs in its own process (``segflow serve``'s app plus the no-op route), so the
load script does not share its interpreter. Goals (issue 15): Village >= 0.5 x (a);
execution >= 0.7 x ``segflow upload``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench.child_stats import cpu_model

KEY = "bench-key"
GRANTS = [
    {
        "key": KEY,
        "permissions": ["ingest"],
        "datamarts": ["1"],
        "networks": ["7"],
        "segmenter": True,
    }
]
SEGMENT = "4242"


def serve_child(port: int) -> None:
    """The server process: the real app plus ``POST /bench/noop`` behind the same guard."""
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from http_api.app import build_app, ingest_context
    from http_api.export.auth import ApiKeys, Grant
    from http_api.export.jobs import utc_now
    from http_api.export.metrics import ExportMetrics
    from http_api.export.routes import ExportApi
    from http_api.export.worker import ExportService
    from http_api.ingest.body import read_small
    from http_api.ingest.guard import Route as Guarded
    from http_api.ingest.guard import village_error
    from segflow.db.session import connect
    from segflow.settings import ServeSettings

    settings = ServeSettings()
    opts = settings.serve
    cluster, session = connect(settings.cassandra, settings.cassandra.keyspace)
    keys = ApiKeys([], None, opts.api_key_grants)
    ctx = ingest_context(session, keys, settings)
    export = ExportApi(
        ExportService(session, opts, ExportMetrics(), utc_now), keys, ctx.registry, lambda: True
    )
    app = build_app(export, ctx, settings)
    noop = Guarded("noop", village_error, lambda request, grant: True, 1 << 20)

    async def handler(request: Request, grant: Grant) -> Response:
        await read_small(request, 1 << 20)
        return Response(b'{"success": true}', media_type="application/json")

    endpoint = ctx.guard.wrap(noop, handler, "POST", "/bench/noop")
    app.router.routes.append(Route("/bench/noop", endpoint, methods=["POST"]))
    try:
        uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
            )
        ).run()
    finally:
        cluster.shutdown()


async def _client(host: str, port: int, requests: list[bytes], latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for request in requests:
            begin = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected answer: {head[:80]!r}")
            latencies.append(time.perf_counter() - begin)
    finally:
        writer.close()


def load(port: int, path: str, bodies: list[bytes], connections: int) -> tuple[float, float, float]:
    """POST every body over ``connections`` keep-alive connections: (req/s, p50 ms, p99 ms)."""
    requests = [
        (
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    ]
    latencies: list[float] = []

    async def run() -> None:
        await asyncio.gather(
            *(
                _client("127.0.0.1", port, requests[i::connections], latencies)
                for i in range(connections)
            )
        )

    begin = time.perf_counter()
    asyncio.run(run())
    seconds = time.perf_counter() - begin
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    return len(bodies) / seconds, p50, p99


def village_bodies(count: int) -> list[bytes]:
    return [
        json.dumps(
            {"user": f"user-{i}@example.com", "segment_id": int(SEGMENT), "user_status": "add"}
        ).encode()
        for i in range(count)
    ]


def bare_produce(bodies: list[bytes]) -> float:
    """(b): the same commands, read and encoded beforehand, produced and flushed: records/s."""
    import io

    from confluent_kafka import Producer

    from producer_tools.kafka_sink import producer_config
    from producer_tools.readers.base import ReadContext
    from producer_tools.readers.registry import make_reader
    from segflow.contract.codec import default_codec
    from segflow.contract.errors import RecordError
    from segflow.contract.routing import message_key
    from segflow.settings import ServeSettings

    settings = ServeSettings()
    kafka = settings.kafka
    ctx = ReadContext("bench", "0" * 64, time.time_ns() // 1000, "bench")
    encode = default_codec().encode
    records = []
    for _, item in make_reader("village", ctx).read(io.BytesIO(b"\n".join(bodies))):
        assert not isinstance(item, RecordError), item
        records.append((message_key(item), encode(item)))
    producer = Producer(producer_config(kafka, settings.upload))
    producer.produce(kafka.commands_topic, value=records[0][1], key=records[0][0])
    assert producer.flush(60) == 0  # connected before the clock starts, as the server is
    begin = time.perf_counter()
    for key, value in records:
        while True:
            try:
                producer.produce(kafka.commands_topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0
    return len(records) / (time.perf_counter() - begin)


def execution_vs_upload(port: int, lines: int) -> tuple[float, float]:
    """(lines/s of POST .../executions, lines/s of segflow upload) for the same file."""
    from bench.bench_contract import generate

    with tempfile.TemporaryDirectory(prefix="segflow-bench-ingest-") as tmp:
        path = Path(tmp) / "segments.ndjson"
        generate(path, lines)
        created = subprocess.run(
            ["curl", "-sS", "-XPOST", f"http://127.0.0.1:{port}/v1/datamarts/1/document_imports",
             "-H", f"Authorization: {KEY}",
             "-d", '{"document_type": "USER_SEGMENT", "mime_type": "APPLICATION_X_NDJSON"}'],
            capture_output=True, check=True,
        )  # fmt: skip
        import_id = json.loads(created.stdout)["data"]["id"]
        begin = time.perf_counter()
        posted = subprocess.run(
            ["curl", "-sS", "-XPOST",
             f"http://127.0.0.1:{port}/v1/datamarts/1/document_imports/{import_id}/executions",
             "-H", f"Authorization: {KEY}", "-H", "Content-Type: application/x-ndjson",
             "--data-binary", f"@{path}"],
            capture_output=True, check=True,
        )  # fmt: skip
        http_s = time.perf_counter() - begin
        status = json.loads(posted.stdout)["data"]["status"]
        if status != "SUCCEEDED":
            raise RuntimeError(f"execution ended {status}: {posted.stdout[:500]!r}")
        env = {**os.environ, "SEGFLOW_UPLOAD__IMPORT_NAME": f"bench-{uuid.uuid4().hex[:8]}"}
        begin = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "segflow.cli", "upload", "--new-execution", "--format",
             "mediarithmics-ndjson", "--max-errors", "100%", str(path)],
            env=env, capture_output=True, check=True,
        )  # fmt: skip
        upload_s = time.perf_counter() - begin
    return lines / http_s, lines / upload_s


def stream_big_execution(port: int, server_pid: int, megabytes: int) -> tuple[float, list[float]]:
    """POST a ``megabytes`` MB mediarithmics body (chunked, generated on the fly: a 100k-line
    block repeated) while sampling the server's RSS: (lines/s, RSS samples in MB)."""
    import http.client
    import threading

    from bench.bench_contract import generate

    with tempfile.TemporaryDirectory(prefix="segflow-bench-big-") as tmp:
        path = Path(tmp) / "block.ndjson"
        generate(path, 100_000, seed=11)
        block = path.read_bytes()
    repeats = max(1, (megabytes << 20) // len(block))
    lines = repeats * block.count(b"\n")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    conn.request(
        "POST", "/v1/datamarts/1/document_imports", body=json.dumps(
            {"document_type": "USER_SEGMENT", "mime_type": "APPLICATION_X_NDJSON"}
        ), headers={"Authorization": KEY},
    )  # fmt: skip
    import_id = json.loads(conn.getresponse().read())["data"]["id"]
    answer: dict[str, object] = {}

    def chunks() -> Iterator[bytes]:
        for _ in range(repeats):
            yield block

    def send() -> None:
        conn.request(
            "POST", f"/v1/datamarts/1/document_imports/{import_id}/executions", body=chunks(),
            headers={"Authorization": KEY, "Content-Type": "application/x-ndjson"},
            encode_chunked=True,
        )  # fmt: skip
        response = conn.getresponse()
        answer["status"] = response.status
        answer["body"] = response.read()

    samples = [_rss_mb(server_pid)[0]]
    sender = threading.Thread(target=send)
    begin = time.perf_counter()
    sender.start()
    while sender.is_alive():
        sender.join(0.5)
        samples.append(_rss_mb(server_pid)[0])
    seconds = time.perf_counter() - begin
    body = answer.get("body", b"")
    status = json.loads(body)["data"]["status"] if answer.get("status") == 200 else None  # type: ignore[arg-type]
    if status != "SUCCEEDED":
        raise RuntimeError(f"big execution ended {answer.get('status')}: {body!r:.300}")
    return lines / seconds, samples


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000, help="POSTs per measurement")
    parser.add_argument("--lines", type=int, default=200_000, help="execution body lines")
    parser.add_argument("--connections", type=int, action="append", help="default: 32 and 64")
    parser.add_argument(
        "--big-mb", type=int, default=1024, help="MB of the streamed RSS check (0 = skip)"
    )
    parser.add_argument("--serve-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_child:
        serve_child(args.serve_child)
        return
    from segflow.db.registry import SegmentRegistry
    from segflow.db.session import connect
    from segflow.settings import ServeSettings

    settings = ServeSettings()
    cluster, session = connect(settings.cassandra, settings.cassandra.keyspace)
    SegmentRegistry(session, 1, 0).create(SEGMENT)
    cluster.shutdown()
    port = _free_port()
    env = {
        **os.environ,
        "SEGFLOW_SERVE__API_KEY_GRANTS": json.dumps(GRANTS),
        "SEGFLOW_SERVE__MAX_CONCURRENT_PER_KEY": "1000",
        "SEGFLOW_SERVE__WORKERS": "0",
        "SEGFLOW_LOG__LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_ingest", "--serve-child", str(port)], env=env
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        bodies = village_bodies(args.requests)
        load(port, "/networks/7/segments", bodies[:200], 8)  # warm-up: producer, prepared stmts
        cpu = cpu_model()
        print(f"CPU: {cpu}; {os.cpu_count()} cores; {args.requests} requests per row")
        print(f"{'measurement':<44} {'per s':>9} {'p50 ms':>8} {'p99 ms':>8}")
        for connections in args.connections or [32, 64]:
            # The no-op before and after, averaged: the machine's load drifts between rows.
            before_noop = load(port, "/bench/noop", bodies, connections)
            village = load(port, "/networks/7/segments", bodies, connections)
            after_noop = load(port, "/bench/noop", bodies, connections)
            ceiling = (
                (before_noop[0] + after_noop[0]) / 2,
                (before_noop[1] + after_noop[1]) / 2,
                (before_noop[2] + after_noop[2]) / 2,
            )
            print(f"{f'(a) no-op POST, {connections} conns':<44} {ceiling[0]:>9,.0f} "
                  f"{ceiling[1]:>8.1f} {ceiling[2]:>8.1f}")  # fmt: skip
            ratio = village[0] / ceiling[0]
            print(f"{f'Village POST, {connections} conns':<44} {village[0]:>9,.0f} "
                  f"{village[1]:>8.1f} {village[2]:>8.1f}   = {ratio:.2f} x (a)")  # fmt: skip
        bare = bare_produce(bodies)
        print(f"{'(b) bare produce loop (same commands)':<44} {bare:>9,.0f}")
        before = _rss_mb(server.pid)
        http_rate, upload_rate = execution_vs_upload(port, args.lines)
        after = _rss_mb(server.pid)
        rss = f"server RSS {before[0]:.0f} -> {after[0]:.0f} MB (peak {after[1]:.0f} MB)"
        print(f"{f'execution POST, {args.lines:,} lines (lines/s)':<44} {http_rate:>9,.0f}   {rss}")
        print(f"{'segflow upload, same file (lines/s)':<44} {upload_rate:>9,.0f}   "
              f"execution = {http_rate / upload_rate:.2f} x upload")  # fmt: skip
        if args.big_mb:
            rate, samples = stream_big_execution(port, server.pid, args.big_mb)
            print(f"{f'execution POST, {args.big_mb:,} MB streamed (lines/s)':<44} {rate:>9,.0f}"
                  f"   server RSS {samples[0]:.0f} MB before, {min(samples):.0f}-"
                  f"{max(samples):.0f} MB while streaming ({len(samples)} samples), "
                  f"{samples[-1]:.0f} MB after")  # fmt: skip
    finally:
        server.terminate()
        server.wait(30)


def _rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set of a process, MB (Linux /proc)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


if __name__ == "__main__":
    main()
