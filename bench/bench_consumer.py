"""Consumer throughput against the ceiling of a bare driver loop writing the same rows.

Run (stack up and migrated): ``python -m bench.bench_consumer --commands 200000``

(a) A bare cassandra-driver loop executing exactly the statements the consumer plans for the
    N commands (``consumer.plan`` + the progress sets), prepared, ``execute_concurrent`` at the
    best of a few concurrency levels — the ceiling on this Cassandra node;
(b) ``segflow consume --until-idle`` (a child process) draining the same N commands from a
    pre-filled topic, timed from start until every command is recorded as applied.
Printed: both rates, b/a, Cassandra writes per command, CPU seconds per 1M commands of the
consumer (wait4) and of the Cassandra JVM (/proc/PID/stat) during each run.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from cassandra.concurrent import execute_concurrent
from cassandra.query import UNSET_VALUE
from confluent_kafka import Producer

from consumer.batch import UNSET
from consumer.plan import Context, plan_feed
from consumer.statements import prepare_all
from segflow.contract.codec import default_codec
from segflow.contract.records import CommandRecord, command_record
from segflow.db.executions import ExecutionStore
from segflow.db.registry import SegmentRegistry
from segflow.db.session import connect
from segflow.headers import EXECUTION_ID, SEQUENCE
from segflow.kafka_admin import delete_topics, ensure_topics
from segflow.settings import CassandraSettings, KafkaSettings, StackSettings
from segflow.stack import cassandra_node

SEGMENTS = 10
BUCKETS = 64


def commands(execution_id: str, count: int, segments: list[str]) -> list[CommandRecord]:
    """Feed adds and removes over many users, one segment each, distinct versions."""
    rng = random.Random(11)
    version = time.time_ns() // 1000
    out: list[CommandRecord] = []
    for index in range(count):
        add = rng.random() < 0.85
        out.append(
            command_record(
                command_id=uuid.uuid4().hex,
                execution_id=execution_id,
                operation="FEED_ADD" if add else "FEED_REMOVE",
                version=version + index,
                user_key=f"user_id:u{rng.randrange(count)}",
                segment_ids=[rng.choice(segments)],
                data_bag='{"score": 7}' if add and index % 4 == 0 else None,
            )
        )
    return out


def cassandra_cpu_s() -> float:
    """CPU seconds used so far by the local stack's Cassandra JVM."""
    pid = cassandra_node.process(StackSettings()).read_pid()
    if pid is None:
        return float("nan")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_driver(
    session: Any, cmds: list[CommandRecord], store: ExecutionStore, concurrency: int
) -> tuple[float, int]:
    """(a): the consumer's statements for ``cmds`` through execute_concurrent."""
    prepared = prepare_all(session)
    ctx = Context(now_ms=int(time.time() * 1000), events_ttl_s=400 * 86400)
    statements: list[tuple[Any, tuple[Any, ...]]] = []
    for cmd in cmds:
        assert cmd["user_key"] is not None
        for write in plan_feed(
            cmd["segment_ids"][0],
            BUCKETS,
            cmd["user_key"],
            cmd["version"],
            cmd["command_id"],
            cmd["operation"] == "FEED_ADD",
            cmd["expires_at_ms"],
            cmd["data_bag"],
            ctx,
        ):
            values = tuple(UNSET_VALUE if v is UNSET else v for v in write.values)
            statements.append((prepared[write.stmt], values))
    for start in range(0, len(cmds), 1000):
        statements.extend(
            store.record_progress(
                [
                    (cmds[0]["execution_id"], seq)
                    for seq in range(start, min(start + 1000, len(cmds)))
                ],
                [],
            )
        )
    begin = time.perf_counter()
    results = execute_concurrent(
        session,
        statements,
        concurrency=concurrency,
        raise_on_first_error=True,
        results_generator=True,
    )
    for _ in results:
        pass
    return time.perf_counter() - begin, len(statements)


def fill_topic(kafka: KafkaSettings, topic: str, cmds: list[CommandRecord]) -> None:
    producer = Producer({**kafka.client_config(), "linger.ms": 20, "compression.type": "zstd"})
    encode = default_codec().encode
    for seq, cmd in enumerate(cmds):
        headers: list[tuple[str, str | bytes | None]] = [
            (EXECUTION_ID, cmd["execution_id"].encode()),
            (SEQUENCE, str(seq).encode()),
        ]
        while True:
            try:
                producer.produce(
                    topic, key=(cmd["user_key"] or "").encode(), value=encode(cmd), headers=headers
                )
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)


def run_consumer(
    kafka: KafkaSettings,
    cassandra: CassandraSettings,
    topic: str,
    store: ExecutionStore,
    execution_id: str,
    count: int,
) -> tuple[float, float]:
    """(b): wall seconds until every command landed, and the child's CPU seconds."""
    env = {
        **os.environ,
        "SEGFLOW_KAFKA__COMMANDS_TOPIC": topic,
        "SEGFLOW_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "SEGFLOW_KAFKA__DEAD_LETTER_TOPIC": f"{topic}-dlq",
        "SEGFLOW_CASSANDRA__KEYSPACE": cassandra.keyspace,
        "SEGFLOW_CONSUMER__GROUP_ID": f"bench-{uuid.uuid4().hex[:8]}",
        "SEGFLOW_CONSUMER__HTTP_PORT": "0",
        "SEGFLOW_CONSUMER__IDLE_EXIT_S": "1",
        "SEGFLOW_LOG__LEVEL": "WARNING",
    }
    begin = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "segflow.cli", "consume", "--until-idle"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    drained = None
    while drained is None:
        execution = store.get(execution_id)
        if execution is not None and execution.landed >= count:
            drained = time.perf_counter() - begin
        elif proc.poll() is not None:
            raise RuntimeError("the consumer exited before draining the topic")
        else:
            time.sleep(0.2)
    _, _status, usage = os.wait4(proc.pid, 0)
    return drained, usage.ru_utime + usage.ru_stime


def measured(function: Callable[[], Any]) -> tuple[Any, float]:
    before = cassandra_cpu_s()
    result = function()
    return result, cassandra_cpu_s() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    n = args.commands
    kafka, cassandra = KafkaSettings(), CassandraSettings()
    cluster, session = connect(cassandra, cassandra.keyspace)
    store = ExecutionStore(session)
    registry = SegmentRegistry(session, BUCKETS, 0)
    segments = [f"bench-{uuid.uuid4().hex[:6]}-{i}" for i in range(SEGMENTS)]
    for segment in segments:
        registry.create(segment, bucket_count=BUCKETS)
    topic = f"bench-consumer-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka, [topic, f"{topic}-dlq"], partitions=args.partitions)
    try:
        bare_rows = []
        for concurrency in (64, 128, 256):
            execution = store.create("bench", "bare", "producer", uuid.uuid4().hex, 1)
            cmds = commands(execution.execution_id, n, segments)
            (seconds_writes, cpu) = measured(
                partial(bare_driver, session, cmds, store, concurrency)
            )
            seconds, writes = seconds_writes
            bare_rows.append((n / seconds, concurrency, writes / n, cpu))
        best = max(bare_rows)
        execution = store.create("bench", "consumer", "producer", uuid.uuid4().hex, 1)
        cmds = commands(execution.execution_id, n, segments)
        fill_topic(kafka, topic, cmds)
        (seconds_cpu, cass_cpu) = measured(
            lambda: run_consumer(kafka, cassandra, topic, store, execution.execution_id, n)
        )
        seconds, consumer_cpu = seconds_cpu
    finally:
        delete_topics(kafka, [topic, f"{topic}-dlq"])
        cluster.shutdown()
    rate_b = n / seconds
    per_m = 1_000_000 / n
    print(
        f"\n{n:,} commands (85% feed adds, 15% removes), {SEGMENTS} segments x {BUCKETS} "
        f"buckets, {args.partitions} partitions"
    )
    print(
        f"{'run':<44} {'commands/s':>11} {'writes/cmd':>10} {'CPU s/1M (client)':>18} "
        f"{'CPU s/1M (Cassandra)':>21}"
    )
    for rate, concurrency, wpc, cpu in bare_rows:
        mark = " *" if rate == best[0] else ""
        print(
            f"{f'(a) bare driver, concurrency {concurrency}{mark}':<44} {rate:>11,.0f} "
            f"{wpc:>10.2f} {'-':>18} {cpu * per_m:>21.0f}"
        )
    print(
        f"{'(b) segflow consume --until-idle':<44} {rate_b:>11,.0f} {best[2]:>10.2f} "
        f"{consumer_cpu * per_m:>18.0f} {cass_cpu * per_m:>21.0f}"
    )
    print(f"b/a = {rate_b / best[0]:.2f} (a = best bare run, marked *)")


if __name__ == "__main__":
    main()
