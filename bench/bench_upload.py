"""Upload throughput, side by side on the same broker with the same producer settings.

Run (stack up and migrated): ``python -m bench.bench_upload --lines 1000000 --lines 4000000``

(a) Kafka's own ``org.apache.kafka.tools.ProducerPerformance`` (kafka-tools, its own JVM) with
    the same record count and average record size;
(b) a bare confluent-kafka loop producing the pre-encoded records (the Python ceiling);
(c) ``segflow upload`` of a generated mediarithmics NDJSON file (read, validate, encode,
    produce, executions in Cassandra), in a child process measured with ``wait4``: wall time,
    CPU seconds and peak RSS.
Every run gets a fresh topic. Printed as a table with the ratios c/a and c/b.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from confluent_kafka import Producer

from bench.bench_contract import generate
from bench.child_stats import measured_child
from producer_tools.kafka_sink import producer_config
from producer_tools.readers.base import ReadContext
from producer_tools.readers.registry import make_reader
from segflow.contract.codec import default_codec
from segflow.contract.errors import RecordError
from segflow.contract.routing import message_key
from segflow.headers import EXECUTION_ID, SEQUENCE, SOURCE_FILE, SOURCE_LINE
from segflow.kafka_admin import delete_topics, ensure_topics
from segflow.settings import KafkaSettings, StackSettings, UploadOptions
from segflow.stack.classpath import resolve_classpath


@dataclass
class Row:
    """One measured run."""

    name: str
    records: int
    seconds: float
    cpu_s: float | None = None
    peak_rss_mb: float | None = None

    @property
    def rate(self) -> float:
        return self.records / self.seconds


Headers = list[tuple[str, str | bytes | None]]


def encoded_records(path: Path) -> list[tuple[bytes, bytes, Headers]]:
    """(key, value, headers) of every command of ``path``, exactly as the uploader sends them."""
    ctx = ReadContext("bench", "0" * 64, time.time_ns() // 1000, path.name)
    encode = default_codec().encode
    out: list[tuple[bytes, bytes, Headers]] = []
    for position, item in make_reader("mediarithmics-ndjson", ctx).read(path):
        if not isinstance(item, RecordError):
            headers: Headers = [
                (EXECUTION_ID, b"bench"),
                (SOURCE_FILE, path.name.encode()),
                (SOURCE_LINE, str(position).encode()),
                (SEQUENCE, str(len(out)).encode()),
            ]
            out.append((message_key(item), encode(item), headers))
    return out


def bare_loop(kafka: KafkaSettings, topic: str, records: list[tuple[bytes, bytes, Headers]]) -> Row:
    """(b): produce pre-encoded records (same keys, values, headers, settings), nothing else."""
    producer = Producer(producer_config(kafka, UploadOptions()))
    begin = time.perf_counter()
    cpu = time.process_time()
    for key, value, headers in records:
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(300)
    return Row(
        "(b) bare confluent-kafka loop",
        len(records),
        time.perf_counter() - begin,
        time.process_time() - cpu,
    )


def kafka_perf(kafka: KafkaSettings, topic: str, count: int, size: int) -> Row:
    """(a): ProducerPerformance in its own JVM with the same producer settings."""
    jars = resolve_classpath("kafka-tools", StackSettings().state_dir / "classpath")
    options = UploadOptions()
    cmd = [
        "java",
        "-Xmx512m",
        "-cp",
        os.pathsep.join(map(str, jars)),
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(count),
        "--record-size",
        str(size),
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={kafka.bootstrap_servers}",
        "acks=all",
        "enable.idempotence=true",
        f"compression.type={options.compression}",
        f"linger.ms={options.linger_ms}",
        f"batch.size={options.batch_size_bytes}",
    ]
    stats, output = measured_child(cmd)
    if stats["status"] != 0:
        raise RuntimeError(f"ProducerPerformance failed:\n{output[-2000:]}")
    match = re.search(r"(\d+) records sent, ([\d.]+) records/sec", output)
    if match is None:
        raise RuntimeError(f"unexpected ProducerPerformance output:\n{output[-2000:]}")
    rate = float(match.group(2))
    return Row(
        "(a) Kafka ProducerPerformance (JVM)",
        count,
        count / rate,
        stats["cpu_s"],
        stats["maxrss_kb"] / 1024,
    )


def segflow_upload(
    kafka: KafkaSettings,
    topic: str,
    path: Path,
    lines: int,
    extra_env: dict[str, str] | None = None,
) -> Row:
    """(c): the real CLI in a child process; CPU and peak RSS from wait4 (launcher)."""
    env = {
        **os.environ,
        "SEGFLOW_UPLOAD__TOPIC": topic,
        "SEGFLOW_UPLOAD__IMPORT_NAME": f"bench-{uuid.uuid4().hex[:8]}",
        "SEGFLOW_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        **(extra_env or {}),
    }
    cmd = [
        sys.executable,
        "-m",
        "segflow.cli",
        "upload",
        "--new-execution",
        "--format",
        "mediarithmics-ndjson",
        "--max-errors",
        "100%",
        str(path),
    ]
    begin = time.perf_counter()
    stats, output = measured_child(cmd, env)
    seconds = time.perf_counter() - begin
    if stats["status"] != 0:
        raise RuntimeError(f"segflow upload failed:\n{output[-2000:]}")
    return Row(
        f"(c) segflow upload, {lines:,} lines",
        lines,
        seconds,
        stats["cpu_s"],
        stats["maxrss_kb"] / 1024,
    )


def _upload_run(kafka: KafkaSettings, path: Path, lines: int, topic: str) -> Row:
    return segflow_upload(kafka, topic, path, lines)


def fresh_topic(kafka: KafkaSettings, partitions: int) -> str:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka, [topic], partitions=partitions)
    return topic


def sweep(kafka: KafkaSettings, lines: int, partitions: int) -> None:
    """(c) for each producer setting; the defaults are the best of this grid."""
    with tempfile.TemporaryDirectory(prefix="segflow-sweep-") as tmp:
        path = Path(tmp) / "sweep.ndjson"
        generate(path, lines)
        print(f"{'linger.ms':>9} {'batch.size':>10} {'lines/s':>9} {'peak RSS MB':>11}")
        for linger in (5, 20, 50):
            for batch in (262_144, 1_000_000):
                topic = fresh_topic(kafka, partitions)
                try:
                    row = segflow_upload(
                        kafka,
                        topic,
                        path,
                        lines,
                        {
                            "SEGFLOW_UPLOAD__LINGER_MS": str(linger),
                            "SEGFLOW_UPLOAD__BATCH_SIZE_BYTES": str(batch),
                        },
                    )
                finally:
                    delete_topics(kafka, [topic])
                print(f"{linger:>9} {batch:>10} {row.rate:>9,.0f} {row.peak_rss_mb or 0:>11.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--lines",
        type=int,
        action="append",
        help="file sizes for (c); the first also sizes (a) and (b)",
    )
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="only time (c) over linger.ms x batch.size (how the defaults were chosen)",
    )
    args = parser.parse_args()
    if args.sweep:
        sweep(KafkaSettings(), (args.lines or [1_000_000])[0], args.partitions)
        return
    sizes = args.lines or [1_000_000, 4_000_000]
    kafka = KafkaSettings()
    topics: list[str] = []
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="segflow-bench-") as tmp:
        files = {}
        for size in sizes:
            files[size] = Path(tmp) / f"mediarithmics-{size}.ndjson"
            generate(files[size], size)
        records = encoded_records(files[sizes[0]])
        average = sum(len(value) for _, value, _ in records) // len(records)
        try:
            runs: list[Callable[[str], Row]] = [
                lambda t: kafka_perf(kafka, t, len(records), average),
                lambda t: bare_loop(kafka, t, records),
            ]
            runs += [partial(_upload_run, kafka, files[size], size) for size in sizes]
            for run in runs:
                topic = fresh_topic(kafka, args.partitions)
                topics.append(topic)
                rows.append(run(topic))
        finally:
            delete_topics(kafka, topics)
    a, b = rows[0], rows[1]
    print(
        f"\n{len(records):,} records, average value {average} bytes, "
        f"{args.partitions} partitions, settings {producer_config(kafka, UploadOptions())}"
    )
    print(
        f"{'run':<40} {'records/s':>12} {'seconds':>8} {'CPU s':>7} {'peak RSS MB':>12} "
        f"{'vs (a)':>7} {'vs (b)':>7}"
    )
    for row in rows:
        cpu = f"{row.cpu_s:.1f}" if row.cpu_s is not None else "-"
        rss = f"{row.peak_rss_mb:.0f}" if row.peak_rss_mb is not None else "-"
        print(
            f"{row.name:<40} {row.rate:>12,.0f} {row.seconds:>8.1f} {cpu:>7} {rss:>12} "
            f"{row.rate / a.rate:>7.2f} {row.rate / b.rate:>7.2f}"
        )
    uploads = [row for row in rows[2:] if row.peak_rss_mb]
    if len(uploads) >= 2:
        first, last = uploads[0], uploads[-1]
        assert first.peak_rss_mb is not None
        assert last.peak_rss_mb is not None
        print(
            f"peak RSS {last.records:,} vs {first.records:,} lines: "
            f"{last.peak_rss_mb / first.peak_rss_mb:.2f}x"
        )


if __name__ == "__main__":
    main()
