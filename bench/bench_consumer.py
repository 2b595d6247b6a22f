"""Consumer throughput against two bare driver loops writing exactly the rows it plans.

Run (stack up and migrated; the machine to itself):
``python -m bench.bench_consumer --commands 100000`` and, to choose the defaults,
``python -m bench.bench_consumer --sweep --commands 30000``.

Per workload, in one run, on the same node:

(a1) a bare single-row driver loop: the consumer's planned statements (``CommandPlanner`` on
     the same records, batches of ``batch_size``), each sent alone through
     ``execute_concurrent`` at ``max_in_flight`` — on a sample when the workload is large;
(a2) a bare grouped-batch driver loop: the same statements bound and grouped by the consumer's
     own ``StatementGrouper`` (same mode and bounds), sent as UNLOGGED batches through
     ``execute_concurrent`` — the ceiling of this node and this driver;
(b)  ``segflow consume --until-idle`` (a child process) draining the same records from a
     pre-filled topic, timed until every command is recorded as applied.

Workloads: ``feed`` (85 % adds, 15 % removes over 10 segments), ``replace`` (one replace of
``--replace-members`` members plus feed traffic), ``feed --workers 2``.
Printed: commands/s, rows/s, b/a2, b/a1, client CPU µs per command (the bench process for a1/a2,
the consumer child for b, via getrusage/wait4) and Cassandra CPU µs per command
(/proc/PID/stat of the JVM listening on the Cassandra port, whichever checkout started it).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType
from confluent_kafka import Producer

from bench.child_stats import cpu_model, proc_cpu_s
from consumer.grouping import StatementGrouper
from consumer.planner import CommandPlanner
from consumer.statements import prepare_all
from segflow.contract.codec import default_codec
from segflow.contract.records import CommandRecord, SegmentDefinitionRecord, command_record
from segflow.db.executions import ExecutionStore
from segflow.db.registry import SegmentRegistry
from segflow.db.session import connect
from segflow.headers import EXECUTION_ID, SEQUENCE
from segflow.kafka_admin import delete_topics, ensure_topics
from segflow.settings import CassandraSettings, ConsumerOptions, ConsumeSettings, KafkaSettings

SEGMENTS = 10
BUCKETS = 64
A1_SAMPLE = 20_000


# -- workloads -------------------------------------------------------------------------


def feed_commands(execution_id: str, count: int, segments: list[str], seed: int) -> list[Any]:
    """Feed adds and removes over many users, one segment each, distinct versions."""
    rng = random.Random(seed)
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


def replace_commands(execution_id: str, members: int, segment: str) -> list[Any]:
    """One Segmenter replace of ``members`` persons (begin, members with profiles, end)."""
    version = time.time_ns() // 1000
    definition: SegmentDefinitionRecord = {
        "id": segment,
        "name": "bench",
        "description": None,
        "broadcast_medium_id": None,
        "segment_type": "static",
    }
    out: list[CommandRecord] = []

    def cmd(operation: str, user: str | None) -> CommandRecord:
        return command_record(
            command_id=uuid.uuid4().hex,
            execution_id=execution_id,
            operation=operation,
            version=version,
            user_key=user,
            segment_ids=[segment],
        )

    begin = cmd("REPLACE_BEGIN", None)
    begin["segment"] = definition
    out.append(begin)
    for index in range(members):
        member = cmd("REPLACE_MEMBER", f"user_id:r{index}")
        member["person"] = {
            "external_id": f"r{index}",
            "first_name": "F",
            "last_name": None,
            "email": f"r{index}@example.com",
            "phone": None,
            "substitution_tags": [],
        }
        out.append(member)
    end = cmd("REPLACE_END", None)
    end["segment"] = definition
    end["member_count"] = members
    out.append(end)
    return out


class _Message:
    """The few Kafka message accessors the planner reads, for planning outside Kafka."""

    def __init__(self, value: bytes, sequence: int, execution_id: str, offset: int) -> None:
        self._value = value
        self._offset = offset
        self._headers = [(EXECUTION_ID, execution_id.encode()), (SEQUENCE, str(sequence).encode())]

    def topic(self) -> str:
        return "bench"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes | None:
        return None

    def error(self) -> None:
        return None


def planned_statements(
    planner: CommandPlanner, prepared: dict[Any, Any], cmds: list[Any], batch_size: int
) -> list[tuple[Any, tuple[Any, ...]]]:
    """Exactly the (prepared statement, values) pairs the consumer plans for ``cmds``."""
    encode = default_codec().encode
    out: list[tuple[Any, tuple[Any, ...]]] = []
    for start in range(0, len(cmds), batch_size):
        chunk = cmds[start : start + batch_size]
        messages = [
            _Message(encode(cmd), start + i, cmd["execution_id"], start + i)
            for i, cmd in enumerate(chunk)
        ]
        batch = planner.plan(messages)
        out.extend((prepared[w.stmt], w.values) for w in batch.writes)
        out.extend(batch.extra)
    return out


# -- measuring -------------------------------------------------------------------------


def listening_pids(port: int) -> list[int]:
    """The pids of the processes listening on TCP ``port`` (whichever checkout started them;
    on a multi-node local stack every Cassandra node listens on it, each on its own address)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            next(handle)
            for line in handle:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    found: list[int] = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    found.append(int(pid))
                    break
        except OSError:
            continue
    return sorted(found)


def cpu_of(pids: list[int]) -> float:
    """CPU seconds used so far by ``pids`` together (nan when none is known)."""
    return float("nan") if not pids else sum(proc_cpu_s(pid) for pid in pids)


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Result:
    label: str
    commands: int
    rows: int
    seconds: float
    client_cpu: float
    cassandra_cpu: float
    startup: float = 0.0
    peak_rss_kb: int = 0

    @property
    def rate(self) -> float:
        return self.commands / self.seconds


def timed(
    label: str, commands: int, rows: int, cassandra_pids: list[int], run: Callable[[], None]
) -> Result:
    cass, mine, begin = cpu_of(cassandra_pids), self_cpu(), time.perf_counter()
    run()
    seconds = time.perf_counter() - begin
    return Result(label, commands, rows, seconds, self_cpu() - mine, cpu_of(cassandra_pids) - cass)


def bare_single(session: Any, statements: list[Any], concurrency: int) -> None:
    """(a1): every statement alone."""
    for ok, result in execute_concurrent(
        session,
        statements,
        concurrency=concurrency,
        raise_on_first_error=False,
        results_generator=True,
    ):
        if not ok:
            raise RuntimeError(f"bare write failed: {result!r}")


def bare_grouped(
    session: Any, statements: list[Any], grouper: StatementGrouper, concurrency: int
) -> None:
    """(a2): the same statements bound and grouped as the consumer groups them."""
    bounds = [prepared.bind(values) for prepared, values in statements]
    requests: list[tuple[Any, Any]] = []
    for group in grouper.group(bounds):
        if len(group) == 1:
            requests.append((bounds[group[0]], None))
            continue
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for index in group:
            batch.add(bounds[index])
        requests.append((batch, None))
    for ok, result in execute_concurrent(
        session,
        requests,
        concurrency=concurrency,
        raise_on_first_error=False,
        results_generator=True,
    ):
        if not ok:
            raise RuntimeError(f"bare batch failed: {result!r}")


def fill_topic(kafka: KafkaSettings, topic: str, cmds: list[Any]) -> None:
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
    execution_ids: list[str],
    count: int,
    workers: int,
    options: dict[str, str],
    wrap: list[str] | None = None,
) -> tuple[float, float, float, int]:
    """(b): (seconds from the first to the last landed command, startup seconds, child CPU s,
    child peak RSS in kB).

    The child's start (imports, connecting, joining the group: a few seconds) is reported
    apart; its CPU stays in the CPU figure. The peak RSS is ``VmHWM`` of the consumer process
    itself (its own address space since its exec, not the bench's pages it was forked with),
    read once drained; with ``--workers`` above 1 it is the supervisor's.
    """
    env = {
        **os.environ,
        "SEGFLOW_KAFKA__COMMANDS_TOPIC": topic,
        "SEGFLOW_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "SEGFLOW_KAFKA__DEAD_LETTER_TOPIC": f"{topic}-dlq",
        "SEGFLOW_CASSANDRA__CONTACT_POINTS": ",".join(cassandra.contact_points),
        "SEGFLOW_CASSANDRA__PORT": str(cassandra.port),
        "SEGFLOW_CASSANDRA__KEYSPACE": cassandra.keyspace,
        "SEGFLOW_CONSUMER__GROUP_ID": f"bench-{uuid.uuid4().hex[:8]}",
        "SEGFLOW_CONSUMER__HTTP_PORT": "0",
        "SEGFLOW_CONSUMER__IDLE_EXIT_S": "1",
        "SEGFLOW_CONSUMER__WORKERS": str(workers),
        "SEGFLOW_LOG__LEVEL": "WARNING",
        **{f"SEGFLOW_CONSUMER__{key.upper()}": value for key, value in options.items()},
    }
    proc = subprocess.Popen(
        [*(wrap or []), sys.executable, "-m", "segflow.cli", "consume", "--until-idle"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    spawned = time.perf_counter()
    first: float | None = None
    at_first = 0
    while True:
        landed = 0
        for execution_id in execution_ids:
            execution = store.get(execution_id)
            landed += execution.landed if execution is not None else 0
        now = time.perf_counter()
        if first is None and landed > 0:
            first, at_first = now, landed
        if landed >= count:
            break
        if proc.poll() is not None:
            raise RuntimeError("the consumer exited before draining the topic")
        time.sleep(0.05)
    assert first is not None
    peak_rss_kb = 0 if wrap else peak_rss_of(proc.pid)
    if not wrap:  # a profiler writes its output when the consumer exits on its own (idle)
        proc.terminate()  # drained: the wall time is taken; the child's CPU comes from wait4
    _, _status, usage = os.wait4(proc.pid, 0)
    cpu = float(usage.ru_utime + usage.ru_stime)
    if at_first >= count:  # all landed by the first look: no steady period to time
        return now - spawned, 0.0, cpu, peak_rss_kb
    # The steady rate (commands landed after the first look, over the time they took),
    # expressed as seconds for all ``count`` commands.
    return (now - first) * count / (count - at_first), first - spawned, cpu, peak_rss_kb


def peak_rss_of(pid: int) -> int:
    """``VmHWM`` (peak resident set, kB) of a running process; 0 when unreadable."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# -- the runs --------------------------------------------------------------------------


@dataclass
class Env:
    kafka: KafkaSettings
    cassandra: CassandraSettings
    session: Any
    store: ExecutionStore
    registry: SegmentRegistry
    planner: CommandPlanner
    prepared: dict[Any, Any]
    cassandra_pids: list[int]
    partitions: int
    profile: str | None = None


def workload(env: Env, kind: str, n: int, replace_members: int) -> Iterator[list[Any]]:
    """Fresh commands (new executions, new segments) of one workload, per call."""
    while True:
        tag = uuid.uuid4().hex[:6]
        segments = [f"bench-{tag}-{i}" for i in range(SEGMENTS)]
        for segment in segments:
            env.registry.create(segment, bucket_count=BUCKETS)
        execution = env.store.create("bench", kind, "producer", uuid.uuid4().hex, 1)
        cmds = feed_commands(execution.execution_id, n, segments, seed=11)
        if kind == "replace":
            replace_segment = f"bench-{tag}-replace"
            env.registry.create(replace_segment, bucket_count=BUCKETS)
            other = env.store.create("bench", "replace", "producer", uuid.uuid4().hex, 1)
            cmds = replace_commands(other.execution_id, replace_members, replace_segment) + cmds
        yield cmds


def consumer_run(
    env: Env, label: str, cmds: list[Any], workers: int, options: dict[str, str]
) -> Result:
    topic = f"bench-consumer-{uuid.uuid4().hex[:8]}"
    ensure_topics(env.kafka, [topic, f"{topic}-dlq"], partitions=env.partitions)
    try:
        fill_topic(env.kafka, topic, cmds)
        executions = sorted({cmd["execution_id"] for cmd in cmds})
        rows = len(planned_rows_estimate(env, cmds))
        cass = cpu_of(env.cassandra_pids)
        wrap, out = None, ""
        if env.profile:
            out = os.path.join(env.profile, f"{topic}.txt")
            wrap = profiler_command(out)
        seconds, startup, cpu, rss = run_consumer(
            env.kafka,
            env.cassandra,
            topic,
            env.store,
            executions,
            len(cmds),
            workers,
            options,
            wrap,
        )
        result = Result(label, len(cmds), rows, seconds, cpu, cpu_of(env.cassandra_pids) - cass)
        result.startup = startup
        result.peak_rss_kb = rss
        if out:
            print(f"\nprofile of {label} ({out}):")
            print_profile(out)
        return result
    finally:
        delete_topics(env.kafka, [topic, f"{topic}-dlq"])


_ROWS: dict[int, list[Any]] = {}


def planned_rows_estimate(env: Env, cmds: list[Any]) -> list[Any]:
    """The statements planned for ``cmds`` (cached per list: rows/s of every run)."""
    key = id(cmds)
    if key not in _ROWS:
        _ROWS[key] = planned_statements(env.planner, env.prepared, cmds, 1000)
    return _ROWS[key]


def bare_runs(env: Env, cmds: list[Any], options: ConsumerOptions) -> tuple[Result, Result]:
    statements = planned_rows_estimate(env, cmds)
    grouper = StatementGrouper(
        options.write_grouping,
        options.group_max_rows,
        options.group_max_bytes,
        lambda: env.session.cluster.metadata.token_map,
    )
    a2 = timed(
        "(a2) bare grouped driver loop",
        len(cmds),
        len(statements),
        env.cassandra_pids,
        lambda: bare_grouped(env.session, statements, grouper, options.max_in_flight),
    )
    sample = max(1, min(len(cmds), A1_SAMPLE))
    share = sample / len(cmds)
    part = statements[: int(len(statements) * share)]
    a1 = timed(
        f"(a1) bare single-row loop{' (sample)' if share < 1 else ''}",
        sample,
        len(part),
        env.cassandra_pids,
        lambda: bare_single(env.session, part, options.max_in_flight),
    )
    return a1, a2


def profiler_command(out: str) -> list[str]:
    """py-spy (a dev dependency) sampling every thread of (b), native frames included.

    Native frames matter: the driver's hot modules are Cython-compiled, so without them their
    time shows up as the Python caller's own.
    """
    py_spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return [py_spy, "record", "--native", "--rate", "250", "--format", "raw", "-o", out, "--"]


def print_profile(path: str, top: int = 40) -> None:
    """Inclusive and own share of the samples per function, from py-spy's collapsed stacks."""
    total = 0
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    with open(path) as handle:
        for line in handle:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            count = int(count_text)
            total += count
            frames = [frame.split(" (")[0] + _where(frame) for frame in stack.split(";")]
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + count
            own[frames[-1]] = own.get(frames[-1], 0) + count
    print(f"{total} samples; top by own share, then by inclusive share")
    for title, table in (("own", own), ("inclusive", inclusive)):
        for frame, count in sorted(table.items(), key=lambda item: -item[1])[:top]:
            print(f"  {title:>9} {count / total:6.1%}  {frame[:150]}")


def _where(frame: str) -> str:
    """`` (module.py)`` of a py-spy frame ``func (path/module.py:line)``, without the line."""
    if " (" not in frame:
        return ""
    location = frame.split(" (", 1)[1].rstrip(")").rsplit(":", 1)[0]
    return f" ({os.path.basename(location)})"


def print_table(title: str, results: list[Result], a1: Result, a2: Result) -> None:
    print(f"\n{title}")
    print(
        f"{'run':<40} {'commands/s':>11} {'rows/s':>9} {'b/a2':>6} {'b/a1':>6} "
        f"{'client µs/cmd':>14} {'Cassandra µs/cmd':>17}"
    )
    for res in results:
        is_b = res.label.startswith("(b")
        ratio2 = f"{res.rate / a2.rate:.2f}" if is_b else "-"
        ratio1 = f"{res.rate / a1.rate:.2f}" if is_b else "-"
        print(
            f"{res.label:<40} {res.rate:>11,.0f} {res.rows / res.seconds:>9,.0f} {ratio2:>6} "
            f"{ratio1:>6} {res.client_cpu / res.commands * 1e6:>14.0f} "
            f"{res.cassandra_cpu / res.commands * 1e6:>17.0f}"
            + (f"   (+{res.startup:.1f} s start)" if res.startup else "")
            + (f", peak RSS {res.peak_rss_kb / 1024:.0f} MB" if res.peak_rss_kb else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=100_000)
    parser.add_argument("--replace-members", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--runs",
        default="feed,replace,workers2",
        help="comma-separated: feed,replace,workers2,workers3,modes (modes: b in every "
        "write_grouping)",
    )
    parser.add_argument(
        "--sweep", action="store_true", help="b at several group_max_rows / max_in_flight"
    )
    parser.add_argument(
        "--rss",
        action="store_true",
        help="also run (b) on 10x --commands of the feed mix and compare the peak RSS",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="run (b) under py-spy, keep its collapsed stacks in DIR and print the top "
        "functions (its rates and CPU then include the profiler: for profiles, not figures)",
    )
    args = parser.parse_args()
    n = args.commands
    settings = ConsumeSettings()  # env (``eval "$(segflow stack env)"``) and the config file
    kafka, cassandra, options = settings.kafka, settings.cassandra, settings.consumer
    cluster, session = connect(cassandra, cassandra.keyspace)
    store = ExecutionStore(session)
    registry = SegmentRegistry(session, BUCKETS, 0)
    cached = SegmentRegistry(session, BUCKETS, 300)
    env = Env(
        kafka,
        cassandra,
        session,
        store,
        registry,
        CommandPlanner(default_codec(), cached, store, "reject", options.events_ttl_days * 86400),
        prepare_all(session),
        listening_pids(cassandra.port),
        args.partitions,
        args.profile,
    )
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    print(
        f"CPU: {cpu_model()} x {os.cpu_count()}; Cassandra pids {env.cassandra_pids}; "
        f"defaults: {options.write_grouping}, {options.group_max_rows} rows, "
        f"{options.group_max_bytes} B, {options.max_in_flight} in flight, "
        f"batch_size {options.batch_size}"
    )
    try:
        if args.sweep:
            sweep(env, n)
            return
        runs = args.runs.split(",")
        if {"feed", "workers2", "workers3", "modes"} & set(runs):
            feed = workload(env, "feed", n, 0)
            a1, a2 = bare_runs(env, next(feed), options)
            results = [a1, a2]
            if "feed" in runs:
                results.append(consumer_run(env, "(b) segflow consume", next(feed), 1, {}))
            for workers in (2, 3):
                if f"workers{workers}" in runs:
                    label = f"(b) segflow consume --workers {workers}"
                    results.append(consumer_run(env, label, next(feed), workers, {}))
            if "modes" in runs:
                for mode in ("REPLICA_SET", "PARTITION_KEY", "DISABLED"):
                    point = {"write_grouping": mode}
                    results.append(consumer_run(env, f"(b) {mode}", next(feed), 1, point))
            if args.rss and "feed" in runs:
                big = next(workload(env, "feed", n * 10, 0))
                results.append(consumer_run(env, f"(b) segflow consume, {n * 10:,}", big, 1, {}))
                small = next(r for r in results if r.label == "(b) segflow consume")
                print(
                    f"peak RSS of (b): {small.peak_rss_kb / 1024:.0f} MB at {n:,} commands, "
                    f"{results[-1].peak_rss_kb / 1024:.0f} MB at {n * 10:,}: "
                    f"{results[-1].peak_rss_kb / max(small.peak_rss_kb, 1):.2f}x"
                )
            print_table(
                f"feed mix: {n:,} commands (85% adds, 15% removes), {SEGMENTS} segments x "
                f"{BUCKETS} buckets, {args.partitions} partitions",
                results,
                a1,
                a2,
            )
        if "replace" in runs:
            feed_share = max(1, n // 5)
            replace = workload(env, "replace", feed_share, args.replace_members)
            a1, a2 = bare_runs(env, next(replace), options)
            cmds = next(replace)
            b = consumer_run(env, "(b) segflow consume", cmds, 1, {})
            print_table(
                f"replace-heavy: one {args.replace_members:,}-member replace + {feed_share:,} "
                f"feed commands",
                [a1, a2, b],
                a1,
                a2,
            )
            print(f"replace members/s (b, whole run): {args.replace_members / b.seconds:,.0f}")
    finally:
        cluster.shutdown()


def sweep(env: Env, n: int) -> None:
    """(b) on the feed mix at several grouping bounds and in-flight limits (defaults choice)."""
    feed = workload(env, "feed", n, 0)
    options = ConsumeSettings().consumer
    a1, a2 = bare_runs(env, next(feed), options)
    results = [a1, a2]
    points: list[tuple[str, dict[str, str]]] = [("DISABLED", {"write_grouping": "DISABLED"})]
    for rows in (10, 25, 50, 100, 200):
        points.append((f"rows {rows}, in-flight 128", {"group_max_rows": str(rows)}))
    for in_flight in (4, 16, 64):
        points.append((f"rows 50, in-flight {in_flight}", {"max_in_flight": str(in_flight)}))
    for batch in (250, 4000):
        points.append((f"rows 50, batch_size {batch}", {"batch_size": str(batch)}))
    points.append(("PARTITION_KEY, rows 50", {"write_grouping": "PARTITION_KEY"}))
    for label, point in points:
        results.append(consumer_run(env, f"(b) {label}", next(feed), 1, point))
    print_table(f"sweep, feed mix, {n:,} commands", results, a1, a2)


if __name__ == "__main__":
    main()
