"""segflow's consumer against what a user would pick instead, on the same feed rows and node.

Run (stack up and migrated, endpoints from ``segflow stack env``)::

    python -m bench.bench_peer --rows 250000        # or: make bench-peer

The rows: N feed adds from ``bench.bench_consumer.feed_commands`` (removes dropped: the peer's sink
binds one fixed INSERT, it cannot delete), each with an expiry 30 days out, i.e. N rows of
``feed_by_segment`` (``((segment_id, bucket), user_key)``, ``USING TIMESTAMP`` = the command's
version, ``TTL`` = seconds to the expiry). Each run writes them under segment ids of its own, so
the three runs write the same rows side by side and each is checked afterwards by reading a
sample back (write time, TTL, data bag, expiry).

(p) the peer: Kafka Connect standalone (the stack's Kafka version) with the generic
    ``CamelSinkConnector`` (camel-kafka-connector 0.11.0) and camel-cassandraql 3.11.1,
    ``tasks.max`` = the topic's partitions, started from Maven artifacts like the stack
    (bench/jvm/connect/pom.xml). Its topic holds one JSON array per row (the sink can only bind
    a list of values; it cannot compute a bucket from an Avro command), unmarshalled by
    camel-jackson. After a warm-up pass over a tenth of the rows (Camel opens its sessions on
    the first record, and the JIT compiles), timed from producing the rows, while the tasks run,
    until its committed offsets reach the topic's end.
(j) the JVM driver ceiling: java-driver-core 4.19.0 (bench/jvm/driver/), the rows grouped by
    partition into UNLOGGED batches of 50, async with a bounded number in flight; timed (after
    one warm-up pass over a tenth of the rows) from grouping to the last acknowledgement.
(s) ``segflow consume --until-idle`` on the N Avro commands from which the rows come, timed at
    its steady rate, from its first to its last applied command (``bench_consumer.run_consumer``;
    its start-up is left out of the time, not of the CPU).
    Besides the feed row it writes the by-user view and the change event of each command, and
    the execution's progress.

Printed: rows/s, Cassandra writes per row, CPU seconds per 1M rows of the client process (/proc
around the measured phase for the JVMs, wait4 of the whole child for segflow) and of the
Cassandra JVM (/proc of its pid), then segflow / peer and segflow's share of the JVM ceiling.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cassandra.concurrent import execute_concurrent_with_args
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    Producer,
    TopicPartition,
)

from bench.bench_consumer import BUCKETS, SEGMENTS, feed_commands, fill_topic, run_consumer
from bench.child_stats import cpu_model, proc_cpu_s
from segflow.contract.records import CommandRecord
from segflow.db.executions import ExecutionStore
from segflow.db.layout import MAX_TTL_S, bucket_of
from segflow.db.registry import SegmentRegistry
from segflow.db.session import connect
from segflow.kafka_admin import admin_client, delete_topics, ensure_topics
from segflow.pids import pid_alive
from segflow.settings import (
    CassandraSettings,
    ClientSettings,
    KafkaSettings,
    StackProcessSettings,
    StackSettings,
)
from segflow.stack import topology
from segflow.stack.classpath import resolve_classpath
from segflow.stack.manager import node_process
from segflow.stack.process import NodeProcess

JVM_DIR = Path(__file__).resolve().parent / "jvm"
CONNECT_MAIN = "org.apache.kafka.connect.cli.ConnectStandalone"
CEILING_CLASS = "BatchedFeedWriter"
EXPIRY_MS = 30 * 86_400_000
CONNECTOR = "segflow-bench-peer"
# Per feed add: the feed row, the by-user view and the change event (consumer.plan.plan_feed),
# plus the execution's progress entry.
SEGFLOW_WRITES = "3 + progress"

# The consumer's feed-row statement, with the expiry bound as epoch milliseconds: JSON has no
# timestamp type, and the driver under camel-cassandraql binds a Long only to a bigint marker.
SINK_CQL = (
    "INSERT INTO {ks}.feed_by_segment (segment_id, bucket, user_key, data_bag, expires_at, "
    "command_id) VALUES (?, ?, ?, ?, blobAsTimestamp(bigintAsBlob(?)), ?) "
    "USING TIMESTAMP ? AND TTL ?"
)


@dataclass(frozen=True, slots=True)
class FeedRow:
    """One ``feed_by_segment`` row as the consumer writes it for a feed add."""

    segment_id: str
    bucket: int
    user_key: str
    data_bag: str | None
    expires_at_ms: int
    command_id: str
    version: int
    ttl: int

    def renamed(self, segment_id: str) -> FeedRow:
        """The same row under another run's segment id."""
        return FeedRow(
            segment_id,
            self.bucket,
            self.user_key,
            self.data_bag,
            self.expires_at_ms,
            self.command_id,
            self.version,
            self.ttl,
        )


@dataclass(frozen=True, slots=True)
class Result:
    """One writer's measured run over ``rows`` feed rows."""

    name: str
    rows: int
    seconds: float
    client_cpu_s: float
    cassandra_cpu_s: float
    writes_per_row: str

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


def feed_adds(
    execution_id: str, count: int, segments: list[str], now_ms: int
) -> list[CommandRecord]:
    """``count`` feed adds from bench_consumer's mix (its removes dropped), expiring in 30 days."""
    generated = feed_commands(execution_id, math.ceil(count / 0.8) + 100, segments, seed=11)
    adds = [cmd for cmd in generated if cmd["operation"] == "FEED_ADD"][:count]
    if len(adds) < count:
        raise RuntimeError(f"bench_consumer.feed_commands gave {len(adds)} adds, {count} needed")
    for cmd in adds:
        cmd["expires_at_ms"] = now_ms + EXPIRY_MS
    return adds


def feed_row(cmd: CommandRecord, bucket_count: int, now_ms: int) -> FeedRow:
    """The feed row the consumer writes for an add: its bucket, version and TTL to the expiry."""
    user_key, expires = cmd["user_key"], cmd["expires_at_ms"]
    if user_key is None or expires is None or cmd["operation"] != "FEED_ADD":
        raise ValueError("a feed row needs a FEED_ADD with a user key and an expiry")
    ttl = -(-(expires - now_ms) // 1000)
    if not 0 < ttl <= MAX_TTL_S:
        raise ValueError(f"TTL {ttl}s outside (0, {MAX_TTL_S}]")
    return FeedRow(
        cmd["segment_ids"][0],
        bucket_of(user_key, bucket_count),
        user_key,
        cmd["data_bag"],
        expires,
        cmd["command_id"],
        cmd["version"],
        ttl,
    )


def json_record(row: FeedRow) -> bytes:
    """The peer's record: the sink's bind values in ``SINK_CQL`` order, as a JSON array."""
    return json.dumps(
        [
            row.segment_id,
            row.bucket,
            row.user_key,
            row.data_bag,
            row.expires_at_ms,
            row.command_id,
            row.version,
            row.ttl,
        ],
        separators=(",", ":"),
    ).encode()


def tsv_line(row: FeedRow) -> str:
    r"""The JVM ceiling's input line (BatchedFeedWriter.load): tab-separated, null as ``\N``."""
    fields = (
        row.segment_id,
        str(row.bucket),
        row.user_key,
        r"\N" if row.data_bag is None else row.data_bag,
        str(row.expires_at_ms),
        row.command_id,
        str(row.version),
        str(row.ttl),
    )
    if any(("\t" in field or "\n" in field) for field in fields):
        raise ValueError("a feed row field holds a tab or a newline")
    return "\t".join(fields) + "\n"


def camel_sink_url(host: str, port: int, datacenter: str, keyspace: str) -> str:
    """The camel-cassandraql endpoint URI; ``RAW(...)`` keeps the CQL free of URI encoding."""
    cql = SINK_CQL.format(ks=keyspace)
    return f"cql:{host}:{port}/{keyspace}?datacenter={datacenter}&cql=RAW({cql})"


def connector_config(topic: str, tasks: int, sink_url: str) -> dict[str, str]:
    """The peer's connector: generic CamelSinkConnector, JSON arrays unmarshalled to a list."""
    return {
        "connector.class": "org.apache.camel.kafkaconnector.CamelSinkConnector",
        "tasks.max": str(tasks),
        "topics": topic,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
        "camel.sink.url": sink_url,
        "camel.sink.unmarshal": "json-jackson",
        "camel.dataformat.json-jackson.use-list": "true",
        "consumer.override.auto.offset.reset": "earliest",
    }


def worker_properties(bootstrap: str, rest_port: int, offsets_file: Path) -> str:
    """Connect standalone worker config (offsets flushed often: the drain is timed by them)."""
    props = {
        "bootstrap.servers": bootstrap,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
        "offset.storage.file.filename": str(offsets_file),
        "offset.flush.interval.ms": "500",
        "listeners": f"http://127.0.0.1:{rest_port}",
        # camel-kafka-connector 0.11 ships no ServiceLoader manifest: find it by scanning.
        "plugin.discovery": "only_scan",
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def format_table(results: Sequence[Result], peer: str, ceiling: str, ours: str) -> str:
    """The side-by-side table plus segflow / peer and segflow's share of the JVM ceiling."""
    by_name = {result.name: result for result in results}
    lines = [
        "| run | rows/s | Cassandra writes/row | client CPU-s per 1M rows "
        "| Cassandra CPU-s per 1M rows |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        per_m = 1_000_000 / result.rows
        lines.append(
            f"| {result.name} | {result.rows_per_s:,.0f} | {result.writes_per_row} "
            f"| {result.client_cpu_s * per_m:,.0f} | {result.cassandra_cpu_s * per_m:,.0f} |"
        )
    rate = by_name[ours].rows_per_s
    lines.append("")
    lines.append(f"segflow / peer = {rate / by_name[peer].rows_per_s:.2f} (goal >= 5)")
    lines.append(f"segflow / JVM ceiling = {rate / by_name[ceiling].rows_per_s:.2f} (goal >= 0.3)")
    return "\n".join(lines)


class CpuWindow:
    """CPU seconds of a client process and of the Cassandra JVM over one measured phase."""

    def __init__(self, client_pid: int | None, cassandra_pid: int) -> None:
        self.client_pid, self.cassandra_pid = client_pid, cassandra_pid
        self.client0 = proc_cpu_s(client_pid) if client_pid is not None else 0.0
        self.cassandra0 = proc_cpu_s(cassandra_pid)

    def close(self) -> tuple[float, float]:
        """(client CPU s, Cassandra CPU s) since the window opened."""
        client = proc_cpu_s(self.client_pid) - self.client0 if self.client_pid else 0.0
        return client, proc_cpu_s(self.cassandra_pid) - self.cassandra0


def produce_json(kafka: KafkaSettings, topic: str, rows: Iterable[FeedRow]) -> None:
    """Fill the peer's topic, keyed by user like segflow's commands (same partitioning)."""
    producer = Producer({**kafka.client_config(), "linger.ms": 20, "compression.type": "zstd"})
    for row in rows:
        while True:
            try:
                producer.produce(topic, key=row.user_key.encode(), value=json_record(row))
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120) != 0:
        raise RuntimeError(f"could not deliver every record to {topic}")


def free_port() -> int:
    """A loopback port nothing listens on now (Connect's REST listener)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rest(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call to the Connect worker's REST API; None when it does not answer yet."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise RuntimeError(f"Connect REST {method} {path}: {exc.code} {exc.read()!r}") from exc
    except OSError:
        return None
    return json.loads(text) if text else {}


def bench_jars(stack: StackSettings, name: str) -> list[Path]:
    """The runtime classpath of ``bench/jvm/<name>/pom.xml``, cached beside the stack's."""
    return resolve_classpath(
        f"bench-{name}",
        stack.state_dir.resolve() / "classpath",
        stack.mvn,
        stack.maven_repo_local,
        pom=JVM_DIR / name / "pom.xml",
    )


class ConnectWorker:
    """A Connect standalone JVM of this bench's own, with its files under ``base``."""

    def __init__(self, stack: StackSettings, kafka: KafkaSettings, base: Path) -> None:
        self.base = base
        self.port = free_port()
        jars = bench_jars(stack, "connect")
        (base / "logs").mkdir(parents=True, exist_ok=True)
        offsets = base / "offsets"
        offsets.unlink(missing_ok=True)
        (base / "worker.properties").write_text(
            worker_properties(kafka.bootstrap_servers, self.port, offsets)
        )
        (base / "log4j2.properties").write_text(
            "status = warn\nappender.file.type = File\nappender.file.name = FILE\n"
            f"appender.file.fileName = {base / 'logs' / 'connect.log'}\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\nrootLogger.appenderRef.file.ref = FILE\n"
            # One line per REST call otherwise: the bench polls the connector's status.
            "logger.rest.name = org.apache.kafka.connect.runtime.rest\n"
            "logger.rest.level = WARN\n"
        )
        self.node = NodeProcess(
            name="kafka-connect",
            pid_file=base / "connect.pid",
            console_log=base / "logs" / "console.log",
            server_log=base / "logs" / "connect.log",
        )
        self.cmd = [
            stack.java,
            "-Xms1g",
            "-Xmx1g",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={base / 'log4j2.properties'}",
            "-cp",
            os.pathsep.join(str(jar) for jar in jars),
            CONNECT_MAIN,
            str(base / "worker.properties"),
        ]

    def start(self, timeout_s: float = 180.0) -> int:
        """Start the worker and wait until its REST API lists the Camel sink plugin."""
        self.node.stop(10)
        pid = self.node.spawn(self.cmd, cwd=self.base)

        def ready() -> bool:
            plugins = rest(self.port, "GET", "/connector-plugins")
            return bool(plugins) and any("CamelSinkConnector" in p["class"] for p in plugins)

        self.node.wait_ready(pid, ready, timeout_s)
        return pid

    def create(
        self, kafka: KafkaSettings, config: dict[str, str], tasks: int, timeout_s: float = 120.0
    ) -> None:
        """Create the connector and wait until its tasks run and hold all the topic's partitions.

        Not paused around the timed phase: a connector created PAUSED starts no task until
        resumed, and once, tasks paused here and resumed wrote nothing for minutes. The timed
        phase starts after a warm-up instead, with the rows produced while the tasks run.
        """
        rest(self.port, "POST", "/connectors", {"name": CONNECTOR, "config": config})
        self._wait_tasks("RUNNING", tasks, timeout_s)
        group = f"connect-{CONNECTOR}"
        admin = admin_client(kafka)
        deadline = time.monotonic() + timeout_s
        while True:
            description = admin.describe_consumer_groups([group])[group].result(10)
            assigned = sum(len(m.assignment.topic_partitions) for m in description.members)
            if description.state == ConsumerGroupState.STABLE and assigned == tasks:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{group} never held all {tasks} partitions:\n{self.tail()}")
            time.sleep(0.5)

    def _wait_tasks(self, state: str, tasks: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = rest(self.port, "GET", f"/connectors/{CONNECTOR}/status") or {}
            self.raise_failed(status)
            states = [task["state"] for task in status.get("tasks", [])]
            if len(states) == tasks and all(found == state for found in states):
                return
            time.sleep(0.5)
        raise RuntimeError(f"the connector's tasks did not all reach {state}:\n{self.tail()}")

    def check(self) -> None:
        """Fail with the task's trace if a task failed (e.g. a codec that cannot bind a value)."""
        self.raise_failed(rest(self.port, "GET", f"/connectors/{CONNECTOR}/status") or {})

    def raise_failed(self, status: dict[str, Any]) -> None:
        for task in status.get("tasks", []):
            if task.get("state") == "FAILED":
                raise RuntimeError(f"Connect task {task['id']} failed:\n{task.get('trace', '')}")

    def tail(self) -> str:
        return self.node.log_tail()

    def stop(self) -> None:
        self.node.stop(30)


def drained_offsets(kafka: KafkaSettings, topic: str, group: str) -> tuple[int, int]:
    """(committed offsets summed over the topic's partitions for ``group``, end offsets summed)."""
    admin = admin_client(kafka)
    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    committed = sum(max(tp.offset, 0) for tp in future.result(10).topic_partitions or [])
    probe = Consumer({**kafka.client_config(), "group.id": f"probe-{uuid.uuid4().hex[:8]}"})
    try:
        metadata = probe.list_topics(topic, timeout=10).topics[topic]
        end = sum(
            probe.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
            for partition in metadata.partitions
        )
    finally:
        probe.close()
    return committed, end


def run_peer(
    worker: ConnectWorker,
    kafka: KafkaSettings,
    cassandra: CassandraSettings,
    datacenter: str,
    topic: str,
    partitions: int,
    feed: list[FeedRow],
    cassandra_pid: int,
) -> Result:
    """(p): a warm-up tenth of the rows, then every row, timed from its first produce to drained.

    The rows are produced while the connector runs (a few seconds of the bench's CPU, not
    counted as the peer's); the warm-up rows are written again by the timed pass, unchanged.
    """
    host = cassandra.contact_points[0]
    url = camel_sink_url(host, cassandra.port, datacenter, cassandra.keyspace)
    worker_pid = worker.start()
    worker.create(kafka, connector_config(topic, partitions, url), partitions)
    warm = feed[: max(1, len(feed) // 10)]
    produce_json(kafka, topic, warm)
    wait_drained(worker, worker_pid, kafka, topic, len(warm))
    window = CpuWindow(worker_pid, cassandra_pid)
    begin = time.perf_counter()
    produce_json(kafka, topic, feed)
    wait_drained(worker, worker_pid, kafka, topic, len(warm) + len(feed))
    seconds = time.perf_counter() - begin
    client, cass = window.close()
    return Result(
        f"(p) Kafka Connect + Camel CQL sink, {partitions} tasks",
        len(feed),
        seconds,
        client,
        cass,
        "1",
    )


def wait_drained(
    worker: ConnectWorker,
    worker_pid: int,
    kafka: KafkaSettings,
    topic: str,
    records: int,
    stall_s: float = 120.0,
) -> None:
    """Until the connector's committed offsets reach ``records``; fail if they stop moving."""
    group = f"connect-{CONNECTOR}"
    last, moved = -1, time.monotonic()
    while True:
        committed, end = drained_offsets(kafka, topic, group)
        if end >= records and committed >= end:
            return
        if committed != last:
            last, moved = committed, time.monotonic()
        elif time.monotonic() - moved > stall_s:
            raise RuntimeError(
                f"the connector committed nothing for {stall_s:.0f}s at {committed}/{records}:\n"
                f"{worker.tail()}"
            )
        if not pid_alive(worker_pid):
            raise RuntimeError(f"Kafka Connect exited:\n{worker.tail()}")
        worker.check()
        time.sleep(0.25)


def run_ceiling(
    stack: StackSettings,
    cassandra: CassandraSettings,
    datacenter: str,
    rows: list[FeedRow],
    base: Path,
    batch_rows: int,
    in_flight: int,
    cassandra_pid: int,
) -> Result:
    """(j): BatchedFeedWriter, compiled here, on the same rows; CPU over its write phase only."""
    jars = bench_jars(stack, "driver")
    classpath = os.pathsep.join(str(jar) for jar in jars)
    classes = base / "classes"
    classes.mkdir(parents=True, exist_ok=True)
    javac = str(Path(stack.java).with_name("javac")) if os.sep in stack.java else "javac"
    source = JVM_DIR / "driver" / f"{CEILING_CLASS}.java"
    subprocess.run(
        [javac, "-nowarn", "-cp", classpath, "-d", str(classes), str(source)], check=True
    )
    rows_file = base / "rows.tsv"
    with rows_file.open("w") as out:
        out.writelines(tsv_line(row) for row in rows)
    proc = subprocess.Popen(
        [
            stack.java,
            "-Xmx1g",
            "-cp",
            os.pathsep.join([str(classes), classpath]),
            CEILING_CLASS,
            cassandra.contact_points[0],
            str(cassandra.port),
            datacenter,
            cassandra.keyspace,
            str(rows_file),
            str(batch_rows),
            str(in_flight),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        ready = proc.stdout.readline().split()
        if ready[:1] != ["ready"]:
            raise RuntimeError(f"{CEILING_CLASS} did not start: {ready}")
        window = CpuWindow(proc.pid, cassandra_pid)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        done = proc.stdout.readline().split()
        client, cass = window.close()
        if done[:1] != ["done"]:
            raise RuntimeError(f"{CEILING_CLASS} failed: {done}")
        batches = int(done[2])
    finally:
        proc.stdin.close()
        proc.wait(60)
    seconds = int(done[1]) / 1e9
    return Result(
        f"(j) JVM driver ceiling: UNLOGGED batches of {batch_rows}, {in_flight} in flight",
        len(rows),
        seconds,
        client,
        cass,
        f"1 ({batches / len(rows):.3f} requests/row)",
    )


def verify(session: Any, rows: list[FeedRow], sample: int, label: str) -> None:
    """Read back a sample of keys: each must hold its newest row's write time, TTL and values."""
    latest: dict[tuple[str, int, str], FeedRow] = {}
    for row in rows:
        key = (row.segment_id, row.bucket, row.user_key)
        if key not in latest or latest[key].version < row.version:
            latest[key] = row
    keys = random.Random(5).sample(sorted(latest), min(sample, len(latest)))
    select = session.prepare(
        "SELECT data_bag, expires_at, command_id, WRITETIME(command_id) AS wt, "
        "TTL(command_id) AS ttl FROM {ks}.feed_by_segment "
        "WHERE segment_id = ? AND bucket = ? AND user_key = ?"
    )
    results = execute_concurrent_with_args(session, select, keys, concurrency=64)
    for key, (ok, result) in zip(keys, results, strict=True):
        expected = latest[key]
        found = result.one() if ok else None
        problem = None
        if found is None:
            problem = "missing"
        elif found.wt != expected.version or found.command_id != expected.command_id:
            problem = f"write time {found.wt}, expected {expected.version}"
        elif found.data_bag != expected.data_bag:
            problem = "data_bag differs"
        elif _ms(found.expires_at) != expected.expires_at_ms:
            problem = f"expires_at {found.expires_at}"
        elif found.ttl is None or not 0 < found.ttl <= expected.ttl:
            problem = f"TTL {found.ttl}, expected <= {expected.ttl}"
        if problem is not None:
            raise RuntimeError(f"{label}: row {key} read back wrong: {problem}")


def _ms(value: datetime | None) -> int | None:
    """The driver's naive-UTC timestamp as epoch milliseconds."""
    if value is None:
        return None
    return round(value.replace(tzinfo=UTC).timestamp() * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=250_000, help="feed rows per run")
    parser.add_argument("--partitions", type=int, default=6, help="partitions of both topics")
    parser.add_argument("--batch-rows", type=int, default=50, help="JVM ceiling batch size")
    parser.add_argument("--in-flight", type=int, default=32, help="JVM ceiling batches in flight")
    parser.add_argument("--verify", type=int, default=2000, help="rows read back per run")
    args = parser.parse_args()
    n = args.rows
    client = ClientSettings()
    stack = StackProcessSettings().stack
    kafka, cassandra = client.kafka, client.cassandra
    cassandra_pid = node_process(topology.nodes(stack, "cassandra")[0]).read_pid()
    if cassandra_pid is None:
        sys.exit("no Cassandra pid: start the stack from this checkout (segflow stack up)")
    base = stack.state_dir.resolve().parent / "bench" / "peer"
    base.mkdir(parents=True, exist_ok=True)
    cluster, session = connect(cassandra, cassandra.keyspace)
    datacenter = session.execute("SELECT data_center FROM system.local").one().data_center
    store = ExecutionStore(session)
    registry = SegmentRegistry(session, BUCKETS, 0)
    tag = uuid.uuid4().hex[:6]
    names = {run: [f"peer-{tag}-{run}-{i}" for i in range(SEGMENTS)] for run in "sjp"}
    for segment in names["s"]:
        registry.create(segment, bucket_count=BUCKETS)
    execution = store.create("bench", "peer", "producer", uuid.uuid4().hex, 1)
    now_ms = int(time.time() * 1000)
    cmds = feed_adds(execution.execution_id, n, names["s"], now_ms)
    ours = [feed_row(cmd, BUCKETS, now_ms) for cmd in cmds]
    runs = {
        run: [
            row.renamed(dict(zip(names["s"], names[run], strict=True))[row.segment_id])
            for row in ours
        ]
        for run in "jp"
    }
    topic, peer_topic = f"bench-peer-{tag}", f"bench-peer-{tag}-json"
    ensure_topics(kafka, [topic, f"{topic}-dlq", peer_topic], partitions=args.partitions)
    worker = ConnectWorker(stack, kafka, base / "connect")
    results: list[Result] = []
    try:
        fill_topic(kafka, topic, cmds)
        results.append(
            run_ceiling(
                stack,
                cassandra,
                datacenter,
                runs["j"],
                base,
                args.batch_rows,
                args.in_flight,
                cassandra_pid,
            )
        )
        try:
            results.append(
                run_peer(
                    worker,
                    kafka,
                    cassandra,
                    datacenter,
                    peer_topic,
                    args.partitions,
                    runs["p"],
                    cassandra_pid,
                )
            )
        finally:
            worker.stop()
        window = CpuWindow(None, cassandra_pid)
        seconds, _startup, consumer_cpu, _rss = run_consumer(
            kafka, cassandra, topic, store, [execution.execution_id], n, 1, {}
        )
        _, cass = window.close()
        results.append(
            Result(
                "(s) segflow consume --until-idle", n, seconds, consumer_cpu, cass, SEGFLOW_WRITES
            )
        )
        verify(session, runs["j"], args.verify, "(j)")
        verify(session, runs["p"], args.verify, "(p)")
        verify(session, ours, args.verify, "(s)")
    finally:
        delete_topics(kafka, [topic, f"{topic}-dlq", peer_topic])
        cluster.shutdown()
    print(
        f"\n{n:,} feed rows (adds with TTL, {SEGMENTS} segments x {BUCKETS} buckets), "
        f"{args.partitions} partitions; {cpu_model()}"
    )
    print(format_table(results, results[1].name, results[0].name, results[2].name))


if __name__ == "__main__":
    main()
