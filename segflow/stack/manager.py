"""Bring the local stack (Kafka + Cassandra) up, down, and report on it.

``up`` is idempotent: a node this stack started and that still runs is reused. Ports are
checked before anything is spawned, so a taken port fails in well under a second, and a node
that dies while starting fails the command at once with the tail of its log. When one node
fails, the nodes started by the same call are stopped again so nothing is left behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType

from segflow.settings import StackSettings
from segflow.stack import cassandra_node, kafka_node
from segflow.stack.probes import cassandra_ready, kafka_ready
from segflow.stack.process import NodeError, NodeProcess, check_ports_free


@dataclass(frozen=True)
class NodeReport:
    """What ``up`` or ``status`` found out about one node."""

    name: str
    pid: int | None
    ready: str | None
    started: bool
    seconds: float
    endpoint: str


def _nodes() -> tuple[ModuleType, ...]:
    return (kafka_node, cassandra_node)


def _probe(name: str, settings: StackSettings) -> Callable[[], str | None]:
    if name == "kafka":
        bootstrap = f"127.0.0.1:{settings.kafka_port}"
        return lambda: kafka_ready(bootstrap, settings.kafka_port)
    return lambda: cassandra_ready(settings.cassandra_port)


def _endpoint(name: str, settings: StackSettings) -> str:
    port = settings.kafka_port if name == "kafka" else settings.cassandra_port
    return f"127.0.0.1:{port}"


def up(settings: StackSettings, say: Callable[[str], None] = print) -> list[NodeReport]:
    """Start whatever is not running and wait until both nodes answer real requests."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    to_start: list[tuple[ModuleType, NodeProcess]] = []
    reused: list[tuple[ModuleType, NodeProcess]] = []
    for node in _nodes():
        proc: NodeProcess = node.process(settings)
        (reused if proc.is_running() else to_start).append((node, proc))
    for node, _ in to_start:
        check_ports_free(node.NAME, node.ports(settings))

    commands = [(node, proc, node.prepare(settings)) for node, proc in to_start]
    started: list[tuple[NodeProcess, int, float]] = []
    for node, proc, cmd in commands:
        begin = time.monotonic()
        pid = proc.spawn(cmd, cwd=node.node_dir(settings))
        started.append((proc, pid, begin))
        say(f"{proc.name}: starting (pid {pid})")

    def wait(item: tuple[NodeProcess, int, float]) -> NodeReport:
        proc, pid, begin = item
        probe = _probe(proc.name, settings)
        answer: list[str] = []

        def ready() -> bool:
            result = probe()
            if result is not None:
                answer.append(result)
            return result is not None

        proc.wait_ready(pid, ready, settings.start_timeout_s)
        return NodeReport(
            proc.name,
            pid,
            answer[-1],
            True,
            time.monotonic() - begin,
            _endpoint(proc.name, settings),
        )

    reports: list[NodeReport] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(wait, item) for item in started]
        errors: list[BaseException] = []
        for future in futures:
            exc = future.exception()
            if exc is None:
                reports.append(future.result())
            else:
                errors.append(exc)
    if errors:
        for proc, _, _ in started:
            proc.stop(settings.stop_timeout_s)
        raise NodeError("\n".join(str(err) for err in errors))

    for _, proc in reused:
        begin = time.monotonic()
        answer = _probe(proc.name, settings)()
        if answer is None:
            raise NodeError(
                f"{proc.name} is running (pid {proc.read_pid()}) but does not answer on "
                f"{_endpoint(proc.name, settings)}; run `segflow stack down` then `up`.\n"
                f"{proc.log_tail()}"
            )
        reports.append(
            NodeReport(
                proc.name,
                proc.read_pid(),
                answer,
                False,
                time.monotonic() - begin,
                _endpoint(proc.name, settings),
            )
        )
    order = {"kafka": 0, "cassandra": 1}
    return sorted(reports, key=lambda report: order[report.name])


def down(settings: StackSettings) -> list[tuple[str, bool]]:
    """Stop the nodes this stack started (by pid file); returns (name, was_running)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        procs = [node.process(settings) for node in _nodes()]
        stopped = list(pool.map(lambda proc: proc.stop(settings.stop_timeout_s), procs))
    return [(proc.name, was) for proc, was in zip(procs, stopped, strict=True)]


def status(settings: StackSettings) -> list[NodeReport]:
    """Pid and readiness answer of each node, without starting anything."""
    reports: list[NodeReport] = []
    for node in _nodes():
        proc: NodeProcess = node.process(settings)
        pid = proc.read_pid()
        begin = time.monotonic()
        answer = _probe(proc.name, settings)() if pid is not None else None
        reports.append(
            NodeReport(
                proc.name,
                pid,
                answer,
                False,
                time.monotonic() - begin,
                _endpoint(proc.name, settings),
            )
        )
    return reports


def env_lines(settings: StackSettings) -> list[str]:
    """``export`` lines pointing every other segflow command at this stack."""
    return [
        f"export SEGFLOW_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:{settings.kafka_port}",
        "export SEGFLOW_CASSANDRA__CONTACT_POINTS=127.0.0.1",
        f"export SEGFLOW_CASSANDRA__PORT={settings.cassandra_port}",
    ]


def log_files(settings: StackSettings, name: str | None) -> list[NodeProcess]:
    """The nodes whose logs ``segflow stack logs`` shows."""
    return [
        node.process(settings)
        for node in _nodes()
        if name is None or node.process(settings).name == name
    ]
