"""Bring the local stack (Kafka + Cassandra, one node of each or a cluster) up, down, and
report on it.

``up`` is idempotent: a node this stack started and that still runs is reused. Ports are
checked before anything is spawned, so a taken port fails in well under a second, and a node
that dies while starting fails the command at once with the tail of its log. When one node
fails, the nodes started by the same call are stopped again so nothing is left behind.

In a cluster (``stack.nodes`` > 1) the Kafka nodes start together (a KRaft quorum needs a
majority of its voters to elect a leader) while the Cassandra nodes start one at a time, each
once the previous one answers: two nodes bootstrapping at once are refused by Cassandra.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType

from segflow.settings import StackSettings
from segflow.stack import cassandra_node, kafka_node, topology
from segflow.stack.probes import cassandra_ready, kafka_ready
from segflow.stack.process import NodeError, NodeProcess, check_ports_free
from segflow.stack.topology import NodeSpec


@dataclass(frozen=True)
class NodeReport:
    """What ``up`` or ``status`` found out about one node."""

    name: str
    pid: int | None
    ready: str | None
    started: bool
    seconds: float
    endpoint: str


# Node count of the stack ``up`` started last (removed by ``down``): commands run without
# ``--nodes`` act on the stack that runs, not on the 1-node default.
NODES_FILE = "nodes"


def running_count(settings: StackSettings) -> StackSettings:
    """``settings`` with the node count of the running stack when none was given explicitly."""
    if "nodes" in settings.model_fields_set:
        return settings
    try:
        count = int((settings.state_dir / NODES_FILE).read_text())
    except (OSError, ValueError):
        return settings
    return settings.model_copy(update={"nodes": count}) if count >= 1 else settings


def _module(spec: NodeSpec) -> ModuleType:
    return kafka_node if spec.kind == "kafka" else cassandra_node


def node_process(spec: NodeSpec) -> NodeProcess:
    """Pid file and logs of one node."""
    process: NodeProcess = _module(spec).process(spec)
    return process


def _probe(spec: NodeSpec, settings: StackSettings) -> Callable[[], str | None]:
    if spec.kind == "kafka":
        return lambda: kafka_ready(spec.address, settings.kafka_port, spec.index)
    return lambda: cassandra_ready(spec.address, settings.cassandra_port)


def _endpoint(spec: NodeSpec, settings: StackSettings) -> str:
    port = settings.kafka_port if spec.kind == "kafka" else settings.cassandra_port
    return f"{spec.address}:{port}"


def _order(report: NodeReport, specs: list[NodeSpec]) -> int:
    return [spec.name for spec in specs].index(report.name)


def up(
    settings: StackSettings,
    say: Callable[[str], None] = print,
    only: Iterable[NodeSpec] | None = None,
) -> list[NodeReport]:
    """Start whatever is not running (of ``only``, default every node) and wait until each
    node answers real requests."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    specs = list(only) if only is not None else topology.nodes(settings)
    to_start = [spec for spec in specs if not node_process(spec).is_running()]
    reused = [spec for spec in specs if spec not in to_start]
    for spec in to_start:
        check_ports_free(spec.name, _module(spec).ports(settings, spec))

    started: list[tuple[NodeProcess, int]] = []
    reports: list[NodeReport] = []

    def start(spec: NodeSpec) -> tuple[NodeProcess, int, float]:
        cmd = _module(spec).prepare(settings, spec)
        proc = node_process(spec)
        begin = time.monotonic()
        pid = proc.spawn(cmd, cwd=spec.directory)
        started.append((proc, pid))
        say(f"{proc.name}: starting (pid {pid})")
        return proc, pid, begin

    def wait(spec: NodeSpec, proc: NodeProcess, pid: int, begin: float) -> NodeReport:
        probe = _probe(spec, settings)
        answer: list[str] = []

        def ready() -> bool:
            result = probe()
            if result is not None:
                answer.append(result)
            return result is not None

        proc.wait_ready(pid, ready, settings.start_timeout_s)
        return NodeReport(
            proc.name, pid, answer[-1], True, time.monotonic() - begin, _endpoint(spec, settings)
        )

    def start_together(group: list[NodeSpec]) -> list[NodeReport]:
        with ThreadPoolExecutor(max_workers=max(1, len(group))) as pool:
            launched = [
                (spec, *item) for spec, item in zip(group, pool.map(start, group), strict=False)
            ]
            futures = [pool.submit(wait, *item) for item in launched]
            return [future.result() for future in futures]

    def start_in_turn(group: list[NodeSpec]) -> list[NodeReport]:
        return [wait(spec, *start(spec)) for spec in group]

    kafkas = [spec for spec in to_start if spec.kind == "kafka"]
    cassandras = [spec for spec in to_start if spec.kind == "cassandra"]
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(start_together, kafkas), pool.submit(start_in_turn, cassandras)]
        for future in futures:
            exc = future.exception()
            if exc is None:
                reports.extend(future.result())
            else:
                errors.append(exc)
    if errors:
        for proc, _ in started:
            proc.stop(settings.stop_timeout_s)
        raise NodeError("\n".join(str(err) for err in errors))

    for spec in reused:
        proc = node_process(spec)
        begin = time.monotonic()
        answer = _probe(spec, settings)()
        if answer is None:
            raise NodeError(
                f"{proc.name} is running (pid {proc.read_pid()}) but does not answer on "
                f"{_endpoint(spec, settings)}; run `segflow stack down` then `up`.\n"
                f"{proc.log_tail()}"
            )
        reports.append(
            NodeReport(
                proc.name,
                proc.read_pid(),
                answer,
                False,
                time.monotonic() - begin,
                _endpoint(spec, settings),
            )
        )
    (settings.state_dir / NODES_FILE).write_text(str(settings.nodes))
    return sorted(reports, key=lambda report: _order(report, specs))


def down(settings: StackSettings) -> list[tuple[str, bool]]:
    """Stop every node this stack started (by pid file), whatever node count started it;
    returns (name, was_running)."""
    specs = _known(settings)
    procs = [node_process(spec) for spec in specs]
    with ThreadPoolExecutor(max_workers=max(2, len(procs))) as pool:
        stopped = list(pool.map(lambda proc: proc.stop(settings.stop_timeout_s), procs))
    (settings.state_dir / NODES_FILE).unlink(missing_ok=True)
    return [
        (proc.name, was)
        for spec, proc, was in zip(specs, procs, stopped, strict=True)
        if was or spec.name in {each.name for each in topology.nodes(settings)}
    ]


def _known(settings: StackSettings) -> list[NodeSpec]:
    """The configured nodes, and any other node directory with a pid file (a stack started
    with another node count), so ``down`` leaves nothing running."""
    specs = topology.nodes(settings)
    names = {spec.name for spec in specs}
    for spec in topology.on_disk(settings):
        if spec.name not in names and node_process(spec).pid_file.is_file():
            specs.append(spec)
    return specs


def status(settings: StackSettings) -> list[NodeReport]:
    """Pid and readiness answer of each node, without starting anything."""
    reports: list[NodeReport] = []
    for spec in topology.nodes(settings):
        proc = node_process(spec)
        pid = proc.read_pid()
        begin = time.monotonic()
        answer = _probe(spec, settings)() if pid is not None else None
        reports.append(
            NodeReport(
                proc.name, pid, answer, False, time.monotonic() - begin, _endpoint(spec, settings)
            )
        )
    return reports


def kill(settings: StackSettings, name: str) -> list[tuple[str, int | None]]:
    """SIGKILL the node(s) ``name`` names (no shutdown at all: a crash, for failure tests);
    returns (node, pid killed or None when it was not running)."""
    return [(spec.name, node_process(spec).kill()) for spec in _named(settings, name)]


def start(
    settings: StackSettings, name: str, say: Callable[[str], None] = print
) -> list[NodeReport]:
    """Start the node(s) ``name`` names again (after ``kill`` or a crash) and wait for them."""
    return up(settings, say, only=_named(settings, name))


def _named(settings: StackSettings, name: str) -> list[NodeSpec]:
    specs = topology.find(settings, name)
    if not specs:
        raise NodeError(
            f"no node {name!r} in this stack of {settings.nodes} node(s); "
            f"nodes: {', '.join(topology.node_names(settings))}"
        )
    return specs


def env_lines(settings: StackSettings) -> list[str]:
    """``export`` lines pointing every other segflow command at this stack (in a cluster,
    every node, and topics and keyspace replicated to 3 nodes)."""
    hosts = ",".join(spec.address for spec in topology.nodes(settings, "cassandra"))
    lines = [
        f"export SEGFLOW_KAFKA__BOOTSTRAP_SERVERS={kafka_node.bootstrap_servers(settings)}",
        f"export SEGFLOW_CASSANDRA__CONTACT_POINTS={hosts}",
        f"export SEGFLOW_CASSANDRA__PORT={settings.cassandra_port}",
    ]
    if settings.nodes > 1:
        rf = topology.replication_factor(settings.nodes)
        lines += [
            f"export SEGFLOW_KAFKA__TOPIC_REPLICATION_FACTOR={rf}",
            f"export SEGFLOW_CASSANDRA__REPLICATION_FACTOR={rf}",
        ]
    return lines


def log_files(settings: StackSettings, name: str | None) -> list[NodeProcess]:
    """The nodes whose logs ``segflow stack logs`` shows (all, one, or one kind)."""
    specs = topology.nodes(settings) if name is None else _named(settings, name)
    return [node_process(spec) for spec in specs]
