"""The chaos suite's harness: real processes, real faults, invariants against the model.

A scenario (one test in ``tests/chaos/``) gets a ``ChaosWorld`` (fixture ``world``) with
fresh topics, the session keyspace and a log directory, and works in four steps:

1. **Data.** ``world.workload(n)`` builds a command mix (feed adds with and without expiry
   in the past or future, removals, Village add/block/reset, replaces whose members overlap
   override users, equal-version ties, duplicates) plus declared poison records
   (``poison_every``); ``world.produce(workload)`` puts it on the commands topic. Uploads go
   through ``world.upload_file(...)`` (an NDJSON file) and ``world.segflow(...)``.
2. **Processes.** ``world.consumer(**options)`` starts ``segflow consume`` (options are
   ``SEGFLOW_CONSUMER__*`` settings, e.g. ``workers=2``); ``world.spawn(name, args)`` any
   other ``segflow`` command (upload, serve, ...), ``world.serve()`` ``segflow serve`` on a
   free port. Every process logs JSON to its own file in ``world.log_dir``; ``Proc`` has
   ``kill9()``, ``term()``, ``wait()``. Consumers are scraped (``/metrics``) every second.
3. **Faults.** ``world.nodes`` (``StackNodes``) SIGKILLs, restarts, freezes (SIGSTOP) and
   thaws (SIGCONT) the stack's Kafka and Cassandra JVMs by their pid files;
   ``world.freeze_cycle(...)`` runs a stop/run rhythm in a thread. Call
   ``world.fault_over()`` once the last fault is healed: recovery seconds count from there.
4. **Verdict.** ``world.verify(fault, commands)`` waits until every execution landed and the
   group committed everything, then checks:

   - I1 every record on the commands topic is applied or dead-lettered (progress marks);
   - I2 ``members`` and ``user`` read back from Cassandra equal the reference model
     (tests/support/reference_model.py) fed with the valid records on the topic;
   - I3 no committed offset sampled during the run (``world.sample_commits(group)``, started
     by ``world.consumer``) ever passed a record without its progress mark;
   - I4 the dead-letter topic's originals are exactly the declared poison records;
   - I5 consumed = applied + dead-lettered in the /metrics of every consumer still running;
   - I6 no user key (every key holds the world's token) in any captured log line or
     dead-letter error text.

   It prints one line (``format_line``) and appends a ``Figures`` to ``RESULTS``; the
   conftest prints ``format_table(RESULTS)`` at the end of the run. A violated invariant
   fails the test after the line is printed.

Markers: every scenario is ``chaos``; the cheap ones CI runs are also ``chaos_ci``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from segflow.contract.codec import default_codec
from segflow.contract.records import CommandRecord
from segflow.db.executions import ExecutionStore
from segflow.db.membership import MembershipReader
from segflow.db.registry import SegmentRegistry
from segflow.headers import EXECUTION_ID, SEQUENCE
from segflow.settings import CassandraSettings, KafkaSettings, StackSettings
from segflow.stack import cassandra_node, kafka_node, manager
from tests.support.cli_env import segflow_env
from tests.support.consumer_harness import (
    command,
    committed_lag,
    produce,
    read_topic,
    topic_size,
)
from tests.support.reference_model import Membership, effective_state
from tests.support.uploads import SEGFLOW

DAY_MS = 86_400_000

# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Figures:
    """One scenario's line: what was done to it and what came out."""

    scenario: str
    fault: str
    commands: int
    lost: int = 0
    divergent: int = 0
    duplicates: int = 0
    recovery_s: float = 0.0
    wall_s: float = 0.0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


RESULTS: list[Figures] = []


def format_line(figures: Figures) -> str:
    """The one line every scenario prints."""
    return (
        f"CHAOS {figures.scenario}: fault={figures.fault!r} commands={figures.commands} "
        f"lost={figures.lost} divergent={figures.divergent} "
        f"duplicate_applies={figures.duplicates} recovery_s={figures.recovery_s:.1f} "
        f"wall_s={figures.wall_s:.0f} {'OK' if figures.ok else 'FAILED'}"
    )


def format_table(results: Iterable[Figures]) -> str:
    """The Markdown table ``make chaos`` ends with (and docs/operations.md quotes)."""
    lines = [
        "| scenario | fault | commands | lost | divergent | duplicate applies | recovery s "
        "| wall s | result |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for f in results:
        lines.append(
            f"| {f.scenario} | {f.fault} | {f.commands} | {f.lost} | {f.divergent} | "
            f"{f.duplicates} | {f.recovery_s:.1f} | {f.wall_s:.0f} | "
            f"{'ok' if f.ok else 'FAILED: ' + '; '.join(f.violations)[:200]} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The stack's JVMs


class StackNodes:
    """SIGKILL, restart, freeze and thaw the local stack's Kafka and Cassandra nodes."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self._procs = {
            "kafka": kafka_node.process(settings),
            "cassandra": cassandra_node.process(settings),
        }

    def pid(self, name: str) -> int:
        pid = self._procs[name].read_pid()
        assert pid is not None, f"the stack's {name} node is not running"
        return pid

    def signal(self, name: str, sig: signal.Signals) -> None:
        os.kill(self.pid(name), sig)

    def kill(self, name: str) -> None:
        """SIGKILL the node and wait until it is gone."""
        pid = self.pid(name)
        os.kill(pid, signal.SIGCONT)  # a frozen JVM dies as well, but never leave one stopped
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)

    def freeze(self, name: str) -> None:
        self.signal(name, signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        self.signal(name, signal.SIGCONT)

    def restart(self) -> float:
        """Start every node that is not running (``segflow stack up``); seconds it took."""
        begin = time.monotonic()
        manager.up(self.settings, say=lambda _line: None)
        return time.monotonic() - begin

    def heal(self) -> None:
        """Whatever a scenario left: thaw stopped nodes, start dead ones."""
        for proc in self._procs.values():
            pid = proc.read_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        self.restart()


# ---------------------------------------------------------------------------------------------
# Processes


class Proc:
    """One ``segflow`` subprocess, logging to its own file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.args = args
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                [*SEGFLOW, *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        self.killed = False

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        """SIGKILL the process (and its children: its own process group)."""
        self.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait(30)

    def term(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)

    def wait(self, timeout_s: float) -> int:
        return self.popen.wait(timeout_s)

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other lines are skipped)."""
        lines: list[dict[str, Any]] = []
        for raw in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                value = json.loads(raw)
                if isinstance(value, dict):
                    lines.append(value)
        return lines


class ConsumerProc(Proc):
    """``segflow consume``: its metrics ports (one per worker) and their last scrape."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last: dict[str, dict[str, float]] = {}  # http address -> counter sums

    def http(self) -> list[str]:
        return [
            str(line["http"])
            for line in self.log_lines()
            if line.get("msg") == "consumer started" and "http" in line
        ]

    def wait_started(self, workers: int = 1, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.http()) < workers:
            assert self.alive(), f"{self.name} exited: {self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{self.name} did not start"
            time.sleep(0.1)

    def scrape(self) -> dict[str, dict[str, float]]:
        """Counter sums of every worker that answers now (kept as ``last``)."""
        for address in self.http():
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://{address}/metrics", timeout=2) as reply:
                    text = reply.read().decode()
                self.last[address] = metric_sums(text)
        return self.last


def metric_sums(text: str) -> dict[str, float]:
    """Each counter's value summed over its labels, by sample name (``..._total``)."""
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


CONSUMED = "segflow_consumer_records_consumed_total"
APPLIED = "segflow_consumer_commands_applied_total"
DEAD = "segflow_consumer_dead_lettered_total"


# ---------------------------------------------------------------------------------------------
# Workloads


@dataclass
class Workload:
    """(sequence, record or raw bytes) pairs of one execution, and which must be dead-lettered."""

    execution_id: str
    records: list[tuple[int, CommandRecord | bytes]]
    poison: set[int]

    @property
    def unique(self) -> int:
        return len({sequence for sequence, _ in self.records})


def command_mix(
    token: str,
    segments: list[str],
    execution_id: str,
    count: int,
    rng: random.Random,
    poison_every: int = 0,
    big_poison: int = 0,
    users: int = 40,
) -> Workload:
    """About ``count`` records over every operation (see the module docstring).

    User keys all contain ``token`` (I6 scans for it). Replace members are
    ``user_id:<token>u<n>``, the same keys the Village commands use, so replaces overlap
    override users. Versions are distinct except the deliberate ties (a removal at an add's
    version, a block at an add override's version, a replace's members at its own).
    """
    now_ms = int(time.time() * 1000)
    base = now_ms * 1000 - 10_000_000_000
    ids = [f"user_id:{token}u{i}" for i in range(users // 2)]
    keys = [*ids, *[f"email:{token}e{i}@example.com" for i in range(users - users // 2)]]
    versions = iter(rng.sample(range(1, 50 * count + 10), count + 10))
    out: list[tuple[int, CommandRecord | bytes]] = []
    poison: set[int] = set()
    seq = 0

    def add(record: CommandRecord | bytes, bad: bool = False) -> None:
        nonlocal seq
        out.append((seq, record))
        if bad:
            poison.add(seq)
        seq += 1

    kinds = ["FEED_ADD"] * 30 + ["FEED_REMOVE"] * 8 + ["OVERRIDE_ADD"] * 8
    kinds += ["OVERRIDE_BLOCK"] * 6 + ["OVERRIDE_RESET"] * 6 + ["REPLACE"] * 2
    kinds += ["DUPLICATE"] * 6 + ["TIE_REMOVE"] * 4 + ["TIE_BLOCK"] * 3
    while len(out) < count:
        if poison_every and len(out) % poison_every == poison_every - 1:
            if rng.random() < 0.5:
                add(b"\x00not avro " + os.urandom(rng.randrange(1, 64)), True)
            else:  # a valid record for a segment nobody registered: unknown_segment
                missing = command(execution_id, "FEED_ADD", base, rng.choice(keys), ["nope"])
                add(missing, True)
            continue
        kind = rng.choice(kinds)
        version = base + next(versions) * 1000
        singles = [(s, r) for s, r in out if isinstance(r, dict) and s not in poison]
        if kind == "DUPLICATE" and singles:
            out.append(rng.choice(singles))
            continue
        if kind in ("TIE_REMOVE", "TIE_BLOCK"):
            wanted = "FEED_ADD" if kind == "TIE_REMOVE" else "OVERRIDE_ADD"
            originals = [r for _, r in singles if r["operation"] == wanted and r["user_key"]]
            if originals:
                original = rng.choice(originals)
                op = "FEED_REMOVE" if kind == "TIE_REMOVE" else "OVERRIDE_BLOCK"
                add(
                    command(
                        execution_id,
                        op,
                        original["version"],
                        original["user_key"],
                        original["segment_ids"],
                    )
                )
            continue
        if kind == "REPLACE":
            segment = rng.choice(segments)
            members = sorted(rng.sample(range(len(ids)), rng.randrange(0, 8)))
            begin = command(execution_id, "REPLACE_BEGIN", version, None, [segment])
            begin["segment"] = {
                "id": segment,
                "name": f"name-{version}",
                "description": None,
                "broadcast_medium_id": None,
                "segment_type": "static",
            }
            add(begin)
            for index in members:
                external = f"{token}u{index}"
                member = command(
                    execution_id, "REPLACE_MEMBER", version, f"user_id:{external}", [segment]
                )
                member["person"] = {
                    "external_id": external,
                    "first_name": None,
                    "last_name": None,
                    "email": None,
                    "phone": None,
                    "substitution_tags": [],
                }
                add(member)
            end = command(execution_id, "REPLACE_END", version, None, [segment])
            end["member_count"] = len(members)
            add(end)
            continue
        if kind == "DUPLICATE":
            continue
        targets = rng.sample(segments, 2 if rng.random() < 0.1 else 1)
        record = command(execution_id, kind, version, rng.choice(keys), targets)
        if kind == "FEED_ADD":
            record["expires_at_ms"] = rng.choice([None, None, now_ms - DAY_MS, now_ms + DAY_MS])
            record["data_bag"] = f'{{"n": {version % 1000}}}' if rng.random() < 0.5 else None
        add(record)
    for _ in range(big_poison):  # too large to dead-letter with its headers: value dropped
        add(b"\x00" + os.urandom(999_000), True)
    return Workload(execution_id, out, poison)


# ---------------------------------------------------------------------------------------------
# The world of one scenario


def progress_marks(session: Any, keyspace: str, execution_id: str) -> tuple[set[int], set[int]]:
    """The sequences marked applied and dead-lettered (the consumer's progress sets)."""
    applied: set[int] = set()
    dead: set[int] = set()
    chunks = session.execute(
        f"SELECT chunk FROM {keyspace}.execution_progress_chunks WHERE execution_id = %s",
        (execution_id,),
    )
    for chunk in [row.chunk for row in chunks]:
        rows = session.execute(
            f"SELECT applied, dead_lettered FROM {keyspace}.execution_progress_by_chunk "
            "WHERE execution_id = %s AND chunk = %s",
            (execution_id, chunk),
        )
        for row in rows:
            applied.update(row.applied or ())
            dead.update(row.dead_lettered or ())
    return applied, dead


@dataclass
class _Sample:
    committed: dict[int, int]
    marked: dict[str, set[int]]


class ChaosWorld:
    """Topics, keyspace, processes and checks of one scenario (see the module docstring)."""

    def __init__(
        self,
        name: str,
        kafka: KafkaSettings,
        cassandra: CassandraSettings,
        session: Any,
        nodes: StackNodes,
        log_dir: Path,
    ) -> None:
        self.name = name
        self.kafka = kafka
        self.cassandra = cassandra
        self.session = session
        self.nodes = nodes
        self.log_dir = log_dir
        # In every user key (I6 looks for it), and nowhere else: not in topic, group or
        # segment names, which logs may quote.
        self.token = f"k{uuid.uuid4().hex[:8]}"
        self.tag = uuid.uuid4().hex[:8]
        self.env = segflow_env(kafka, cassandra, SEGFLOW_LOG__FORMAT="json")
        self.store = ExecutionStore(session)
        self.registry = SegmentRegistry(session, 4, 0)
        self.reader = MembershipReader(session)
        self.segments = [f"chaos-{self.tag}-s{i}" for i in range(3)]
        for segment in self.segments:
            self.registry.create(segment, bucket_count=4)
        self.procs: list[Proc] = []
        self.poison: dict[str, set[int]] = {}  # execution id -> sequences to be dead-lettered
        self.expected: dict[str, int] = {}  # execution id -> unique commands
        self.seed = int(os.environ.get("CHAOS_SEED") or random.randrange(1 << 30))
        self.rng = random.Random(self.seed)
        self.started = time.monotonic()
        self._fault_over: float | None = None
        self._not_landed = ""
        self._samples: list[_Sample] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._groups: list[str] = []
        # Scenario-specific checks run by ``verify`` beside I1-I6; each may add violations
        # (and lost / divergent counts) to the scenario's Figures.
        self.checks: list[Callable[[Figures], None]] = []
        self._background(self._scrape_loop)

    # -- data --------------------------------------------------------------------------

    def execution(self, label: str = "chaos") -> str:
        now_us = int(time.time() * 1_000_000)
        created = self.store.create(
            self.env["SEGFLOW_UPLOAD__IMPORT_NAME"],
            f"{label}.ndjson",
            "producer",
            uuid.uuid4().hex,
            now_us,
        )
        return created.execution_id

    def workload(self, count: int, **options: Any) -> Workload:
        """A command mix for a new execution (``command_mix`` options)."""
        return command_mix(self.token, self.segments, self.execution(), count, self.rng, **options)

    def produce(self, workload: Workload, partitions: int | None = None) -> None:
        """Put the workload on the commands topic (random partitions)."""
        self.expected[workload.execution_id] = workload.unique
        self.poison[workload.execution_id] = set(workload.poison)
        produce(
            self.kafka,
            workload.records,
            workload.execution_id,
            shuffle_partitions=partitions or self.kafka.topic_partitions,
            rng=self.rng,
        )

    def feed(self, workloads: list[Workload], every_s: float) -> threading.Thread:
        """Produce the workloads one by one, ``every_s`` apart, in a thread (join it)."""

        def run() -> None:
            for workload in workloads:
                self.produce(workload)
                time.sleep(every_s)

        thread = threading.Thread(target=run, name="chaos-feed", daemon=True)
        thread.start()
        return thread

    def upload_file(self, path: Path, lines: int, start: int = 0) -> Path:
        """An NDJSON mediarithmics file of ``lines`` adds and removals over the world's users."""
        with path.open("w") as out:
            for line in range(start, start + lines):
                out.write(
                    json.dumps(
                        {
                            "operation": "DELETE" if line % 7 == 3 else "UPDATE",
                            "expiration_duration": 0,
                            "user_agent_id": f"vec:{self.token}a{line % 4001}",
                            "segment_id": self.segments[line % len(self.segments)],
                        }
                    )
                    + "\n"
                )
        return path

    def expect_upload(self, execution_id: str, commands: int) -> None:
        """An upload's execution: ``commands`` must land, none of them poison."""
        self.expected[execution_id] = commands
        self.poison.setdefault(execution_id, set())

    # -- processes -----------------------------------------------------------------------

    def _log(self, name: str) -> Path:
        return self.log_dir / f"{len(self.procs):02d}-{name}.log"

    def spawn(self, name: str, args: list[str], **settings: str) -> Proc:
        """``segflow ARGS`` in the background (``settings``: extra environment variables)."""
        proc = Proc(name, args, {**self.env, **settings}, self._log(name))
        self.procs.append(proc)
        return proc

    def segflow(self, args: list[str], timeout_s: float = 300, **settings: str) -> Proc:
        """``segflow ARGS`` to completion (its log is captured and scanned like the others)."""
        proc = self.spawn(args[0], args, **settings)
        proc.wait(timeout_s)
        return proc

    def consumer(self, group: str | None = None, wait: bool = True, **options: Any) -> ConsumerProc:
        """``segflow consume`` in group ``group`` (default: the world's one group)."""
        group = group or f"chaos-{self.tag}"
        env = {
            **self.env,
            "SEGFLOW_CONSUMER__GROUP_ID": group,
            "SEGFLOW_CONSUMER__HTTP_PORT": "0",
            **{f"SEGFLOW_CONSUMER__{k.upper()}": str(v) for k, v in options.items()},
        }
        proc = ConsumerProc(f"consume-{group}", ["consume"], env, self._log("consume"))
        self.procs.append(proc)
        if group not in self._groups:
            self._groups.append(group)
            self._background(lambda: self._commit_sampler(group))
        if wait:
            proc.wait_started(int(options.get("workers", 1)))
        return proc

    def consumers(self) -> list[ConsumerProc]:
        return [proc for proc in self.procs if isinstance(proc, ConsumerProc)]

    def serve(self, **settings: str) -> tuple[Proc, str]:
        """``segflow serve`` on a free port; returns it and its base URL once it answers."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = self.spawn("serve", ["serve"], SEGFLOW_SERVE__PORT=str(port), **settings)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return proc, url
            assert proc.alive(), f"serve exited: {proc.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "segflow serve did not listen"
            time.sleep(0.1)

    # -- faults ----------------------------------------------------------------------------

    def fault_over(self) -> None:
        """The last fault is healed: recovery seconds count from now."""
        self._fault_over = time.monotonic()

    def every(self, period_s: float, action: Callable[[int], None], duration_s: float) -> None:
        """Call ``action(i)`` every ``period_s`` for ``duration_s`` (blocking)."""
        end = time.monotonic() + duration_s
        i = 0
        while time.monotonic() < end:
            action(i)
            i += 1
            time.sleep(max(0.0, min(period_s, end - time.monotonic())))

    def freeze_cycle(
        self, node: str, stopped_s: float, running_s: float, duration_s: float
    ) -> None:
        """SIGSTOP ``node`` for ``stopped_s``, SIGCONT for ``running_s``, for ``duration_s``."""
        end = time.monotonic() + duration_s
        while time.monotonic() < end:
            self.nodes.freeze(node)
            try:
                time.sleep(stopped_s)
            finally:
                self.nodes.thaw(node)
            time.sleep(running_s)

    # -- background: metrics scrapes and commit samples ------------------------------------

    def _background(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _scrape_loop(self) -> None:
        while not self._stop.wait(1.0):
            for proc in self.consumers():
                if proc.alive():
                    with contextlib.suppress(Exception):
                        proc.scrape()

    def _commit_sampler(self, group: str) -> None:
        """I3's evidence: committed offsets, then the progress marks read right after."""
        probe = KafkaConsumer({**self.kafka.client_config(), "group.id": group})
        partitions = [
            TopicPartition(self.kafka.commands_topic, p) for p in range(self.kafka.topic_partitions)
        ]
        try:
            while not self._stop.wait(0.5):
                try:
                    committed = {
                        tp.partition: tp.offset
                        for tp in probe.committed(partitions, timeout=5)
                        if tp.offset >= 0
                    }
                    marked = {}
                    for execution_id in list(self.expected):
                        done, dead = progress_marks(
                            self.session, self.cassandra.keyspace, execution_id
                        )
                        marked[execution_id] = done | dead
                except Exception:  # a node down or frozen: no sample this time
                    continue
                self._samples.append(_Sample(committed, marked))
        finally:
            probe.close()

    # -- verdict ---------------------------------------------------------------------------

    def wait_landed(self, timeout_s: float = 300) -> float:
        """Wait until every execution landed and every group committed all; returns when."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                pending = [
                    f"execution {execution_id}: {execution.landed if execution else 0} of "
                    f"{expected} landed"
                    for execution_id, expected in self.expected.items()
                    if (execution := self.store.get(execution_id)) is None
                    or execution.landed < expected
                ] + [
                    f"group {group}: lag {lag}"
                    for group in self._groups
                    if (lag := committed_lag(self.kafka, group)) != 0
                ]
            except Exception as exc:  # a node still coming back
                pending = [repr(exc)]
            if not pending:
                return time.monotonic()
            if time.monotonic() > deadline:
                self._not_landed = f"not landed after {timeout_s:.0f}s: {'; '.join(pending)}"
                return time.monotonic()
            time.sleep(0.5)

    def verify(self, fault: str, timeout_s: float = 300, stop_consumers: bool = True) -> Figures:
        """Wait for the end, check I1-I6, print and record the line; fail on a violation."""
        landed_at = self.wait_landed(timeout_s)
        figures = Figures(self.name, fault, 0)
        if self._not_landed:
            figures.violations.append(self._not_landed)
        figures.recovery_s = max(0.0, landed_at - (self._fault_over or landed_at))
        violations = figures.violations
        for proc in self.consumers():  # I5 on every live consumer, quiescent now
            if proc.alive() and not proc.killed:
                for address, sums in proc.scrape().items():
                    consumed = sums.get(CONSUMED, 0)
                    settled = sums.get(APPLIED, 0) + sums.get(DEAD, 0)
                    if consumed != settled:
                        violations.append(
                            f"I5 {address}: consumed {consumed:.0f} != applied + "
                            f"dead-lettered {settled:.0f}"
                        )
        if stop_consumers:
            for proc in self.consumers():
                if proc.alive():
                    proc.term()
            for proc in self.consumers():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = proc.wait(90)
                    if code != 0 and not proc.killed and code is not None:
                        violations.append(f"{proc.name} exited {code} on SIGTERM")
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

        records = self._read_commands()
        figures.commands = len({(e, s) for e, s, *_ in records})
        self._check_landing(records, figures)
        self._check_commits(records, violations)
        self._check_dead_letters(records, figures)
        self._check_views(records, figures)
        self._check_logs(violations)
        for check in self.checks:  # the scenario's own checks (e.g. an export's file)
            check(figures)
        applies = sum(
            sums.get(APPLIED, 0) + sums.get(DEAD, 0)
            for proc in self.consumers()
            for sums in proc.last.values()
        )
        # Each record on the topic settles once when nothing is redelivered (the workload's own
        # duplicates are records of their own); a lower bound, as killed consumers' last
        # counts are those of their last scrape.
        figures.duplicates += max(0, int(applies) - len(records))
        figures.wall_s = time.monotonic() - self.started
        RESULTS.append(figures)
        print("\n" + format_line(figures), flush=True)
        assert not violations, "\n".join([*violations, f"(CHAOS_SEED={self.seed})"])
        return figures

    def _read_commands(self) -> list[tuple[str, int, int, int, bytes]]:
        """(execution id, sequence, partition, offset, value) of every record on the topic."""
        total = topic_size(self.kafka, self.kafka.commands_topic)
        messages = read_topic(self.kafka, self.kafka.commands_topic, total, timeout_s=120)
        out = []
        for message in messages:
            headers = dict(message.headers() or [])
            execution_id = (headers.get(EXECUTION_ID) or b"").decode()
            sequence = int((headers.get(SEQUENCE) or b"-1").decode())
            out.append(
                (execution_id, sequence, message.partition(), message.offset(), message.value())
            )
        assert len(out) == total, f"read {len(out)} of the topic's {total} records"
        return out

    def _check_landing(self, records: list[tuple[str, int, int, int, bytes]], f: Figures) -> None:
        """I1: every record is applied or dead-lettered; each execution landed whole."""
        by_execution: dict[str, set[int]] = {}
        for execution_id, sequence, *_ in records:
            by_execution.setdefault(execution_id, set()).add(sequence)
        for execution_id, expected in self.expected.items():
            sequences = by_execution.get(execution_id, set())
            if len(sequences) != expected:
                f.violations.append(
                    f"I1 execution {execution_id}: {len(sequences)} commands on the topic, "
                    f"{expected} accepted"
                )
                f.lost += max(0, expected - len(sequences))
        for execution_id, sequences in by_execution.items():
            applied, dead = progress_marks(self.session, self.cassandra.keyspace, execution_id)
            missing = sequences - applied - dead
            if missing:
                f.lost += len(missing)
                f.violations.append(
                    f"I1 execution {execution_id}: {len(missing)} records neither applied nor "
                    f"dead-lettered (e.g. sequence {min(missing)})"
                )
            poison = self.poison.get(execution_id, set())
            wrong = (applied & poison) | (dead - poison - applied)
            if wrong:
                f.violations.append(
                    f"I4 execution {execution_id}: {len(wrong)} records on the wrong side "
                    f"(applied poison or dead-lettered valid), e.g. sequence {min(wrong)}"
                )

    def _check_commits(
        self, records: list[tuple[str, int, int, int, bytes]], violations: list[str]
    ) -> None:
        """I3: below every sampled committed offset, every record had its progress mark."""
        at = {(partition, offset): (e, s) for e, s, partition, offset, _ in records}
        by_partition: dict[int, list[int]] = {}
        for partition, offset in sorted(at):
            by_partition.setdefault(partition, []).append(offset)
        bad = 0
        example = ""
        for sample in self._samples:
            for partition, committed in sample.committed.items():
                for offset in by_partition.get(partition, []):
                    if offset >= committed:
                        break
                    execution_id, sequence = at[(partition, offset)]
                    marks = sample.marked.get(execution_id)
                    if marks is not None and sequence not in marks:
                        bad += 1
                        example = example or f"partition {partition} offset {offset}"
        if bad:
            violations.append(
                f"I3 {bad} record-samples committed before their writes (e.g. {example}) "
                f"in {len(self._samples)} samples"
            )
        elif not self._samples and self._groups:
            violations.append("I3 no committed offsets could be sampled")

    def _check_dead_letters(
        self, records: list[tuple[str, int, int, int, bytes]], f: Figures
    ) -> None:
        """I4: the dead-letter topic holds exactly the poison records (duplicates allowed)."""
        poison_at = {
            (partition, offset)
            for e, s, partition, offset, _ in records
            if s in self.poison.get(e, set())
        }
        total = topic_size(self.kafka, self.kafka.dead_letter_topic)
        letters = read_topic(self.kafka, self.kafka.dead_letter_topic, total, timeout_s=60)
        originals: set[tuple[int, int]] = set()
        self._letter_errors: list[str] = []
        for letter in letters:
            headers = {k: (v or b"").decode(errors="replace") for k, v in letter.headers() or []}
            if headers.get("dlq.original.topic") != self.kafka.commands_topic:
                continue
            originals.add(
                (int(headers["dlq.original.partition"]), int(headers["dlq.original.offset"]))
            )
            self._letter_errors.append(headers.get("dlq.error", ""))
        if originals != poison_at:
            f.violations.append(
                f"I4 dead letters: {len(originals - poison_at)} not poison, "
                f"{len(poison_at - originals)} poison records missing"
            )
            f.lost += len(poison_at - originals)
        f.duplicates += max(0, len(letters) - len(originals))

    def _check_views(self, records: list[tuple[str, int, int, int, bytes]], f: Figures) -> None:
        """I2: ``members`` and ``user`` equal the model (hence each other)."""
        codec = default_codec()
        commands: dict[tuple[str, int], CommandRecord] = {}
        for execution_id, sequence, _p, _o, value in records:
            if sequence in self.poison.get(execution_id, set()):
                continue
            try:
                commands[(execution_id, sequence)] = codec.decode(value)
            except Exception:
                f.violations.append(f"I4 undecodable record {execution_id}/{sequence} not poison")
        expected = effective_state(commands.values(), int(time.time() * 1000))
        users = {c["user_key"] for c in commands.values() if c["user_key"]}

        def cell(m: Membership) -> tuple[str, str | None, int | None]:
            return (m.via, m.data_bag, m.expires_at_ms)

        divergent = 0
        for segment_id in self.segments:
            segment = self.registry.get(segment_id, fresh=True)
            assert segment is not None
            actual = {
                m.user_key: (
                    m.via,
                    m.data_bag,
                    int(m.expires_at.timestamp() * 1000) if m.expires_at else None,
                )
                for m in self.reader.members(segment)
            }
            want = {user: cell(m) for user, m in expected.get(segment_id, {}).items()}
            divergent += sum(
                1 for user in set(actual) | set(want) if actual.get(user) != want.get(user)
            )
        for user in sorted(users):
            actual_user = {
                (m.segment_id, m.via, m.data_bag) for m in self.reader.user_segments(user)
            }
            want_user = {
                (segment, members[user].via, members[user].data_bag)
                for segment, members in expected.items()
                if user in members
            }
            divergent += len(actual_user ^ want_user)
        f.divergent = divergent
        if divergent:
            f.violations.append(f"I2 {divergent} cells of members/user differ from the model")

    def _check_logs(self, violations: list[str]) -> None:
        """I6: the token of every user key appears in no log line and no dead-letter error."""
        token = self.token.lower()
        for path in sorted(self.log_dir.glob("*.log")):
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if token in line.lower():
                    violations.append(f"I6 {path.name}:{number} quotes a user key: {line[:200]}")
                    break
        for error in getattr(self, "_letter_errors", []):
            if token in error.lower():
                violations.append(f"I6 a dlq.error header quotes a user key: {error[:200]}")
                break

    def close(self) -> None:
        """Stop whatever still runs (a failed scenario's leftovers) and heal the stack."""
        self._stop.set()
        for proc in self.procs:
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(30)
        self.nodes.heal()
