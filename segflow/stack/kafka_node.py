"""The local Kafka 4.x nodes: KRaft combined broker+controller, loopback only.

One node by default; with ``stack.nodes`` = N, N combined nodes form one static quorum.

Writes ``server.properties`` and a log4j2 config into the node dir, formats the storage once
with a fresh cluster id (``kafka.tools.StorageTool``, in its own JVM because it calls
System.exit), and builds the ``kafka.Kafka`` command line.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from pathlib import Path

from segflow.settings import StackSettings
from segflow.stack import topology
from segflow.stack.classpath import resolve_classpath
from segflow.stack.process import NodeError, NodeProcess, Port
from segflow.stack.topology import NodeSpec

NAME = "kafka"
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
# The KRaft cluster id every broker of a multi-node stack is formatted with.
CLUSTER_ID_FILE = "kafka-cluster-id"


def node_dir(settings: StackSettings) -> Path:
    """The first kafka node's directory (the only one in a 1-node stack)."""
    return topology.nodes(settings, "kafka")[0].directory


def process(target: StackSettings | NodeSpec) -> NodeProcess:
    """Pid file and logs of one node (given settings: the first kafka node)."""
    spec = target if isinstance(target, NodeSpec) else topology.nodes(target, "kafka")[0]
    base = spec.directory
    return NodeProcess(
        name=spec.name,
        pid_file=base / "kafka.pid",
        console_log=base / "logs" / "console.log",
        server_log=base / "logs" / "server.log",
    )


def ports(settings: StackSettings, spec: NodeSpec) -> list[Port]:
    """The ports the node binds (on its own address), with the setting that moves each."""
    return [
        Port(
            settings.kafka_port, "Kafka client listener", "SEGFLOW_STACK__KAFKA_PORT", spec.address
        ),
        Port(
            settings.kafka_controller_port,
            "KRaft controller listener",
            "SEGFLOW_STACK__KAFKA_CONTROLLER_PORT",
            spec.address,
        ),
    ]


def bootstrap_servers(settings: StackSettings) -> str:
    """Every broker's client listener, comma-separated."""
    return ",".join(
        f"{spec.address}:{settings.kafka_port}" for spec in topology.nodes(settings, "kafka")
    )


def server_properties(settings: StackSettings, spec: NodeSpec) -> str:
    """server.properties: one combined broker+controller on the node's loopback address.

    In a cluster every node is a voter of a static quorum (``controller.quorum.voters``, so
    the storage is formatted with neither ``--standalone`` nor ``--initial-controllers``),
    internal topics get 3 replicas and ``min.insync.replicas`` is 2: an ``acks=all`` write
    survives the loss of any one broker.
    """
    base = spec.directory
    client, controller = settings.kafka_port, settings.kafka_controller_port
    host = spec.address
    voters = ",".join(
        f"{peer.index}@{peer.address}:{controller}" for peer in topology.nodes(settings, "kafka")
    )
    rf = str(topology.replication_factor(spec.count))
    min_isr = str(topology.min_insync_replicas(spec.count))
    props = {
        "process.roles": "broker,controller",
        "node.id": str(spec.index),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://{host}:{client},CONTROLLER://{host}:{controller}",
        "advertised.listeners": f"PLAINTEXT://{host}:{client}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(base / "data"),
        "num.partitions": "6",
        # Topics are created explicitly (segflow topics / compose init); a typo must not
        # silently create a new topic.
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": rf,
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": "5",
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.retention.hours": "168",
        "log.segment.bytes": str(256 * 1024 * 1024),
        "delete.topic.enable": "true",
    }
    if spec.clustered:
        props.update(
            {
                "default.replication.factor": rf,
                "min.insync.replicas": min_isr,
                # A restarted broker takes its partitions' leadership back soon, so a
                # node-loss test ends with the layout it started with.
                "leader.imbalance.check.interval.seconds": "10",
                "unclean.leader.election.enable": "false",
            }
        )
    return "".join(f"{key}={value}\n" for key, value in props.items())


LOG4J2 = """\
status = warn
name = segflow-kafka
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def prepare(settings: StackSettings, spec: NodeSpec) -> list[str]:
    """Write configs, format storage on first use and return the broker's command line."""
    base = spec.directory
    (base / "data").mkdir(parents=True, exist_ok=True)
    (base / "logs").mkdir(parents=True, exist_ok=True)
    props_file = base / "server.properties"
    props_file.write_text(server_properties(settings, spec))
    log4j_file = base / "log4j2.properties"
    log4j_file.write_text(LOG4J2)
    jars = resolve_classpath(
        "kafka", settings.state_dir.resolve() / "classpath", settings.mvn, settings.maven_repo_local
    )
    classpath = os.pathsep.join(str(jar) for jar in jars)
    jvm = [
        settings.java,
        f"-Xms{settings.kafka_heap_mb}m",
        f"-Xmx{settings.kafka_heap_mb}m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={base / 'logs'}",
        f"-Dlog4j2.configurationFile={log4j_file}",
        f"-Dsegflow.stack.node={spec.kind}:{base}",
        "-cp",
        classpath,
    ]
    if not (base / "data" / "meta.properties").is_file():
        _format_storage(
            settings.java, classpath, props_file, base / "logs" / "format.log", _cluster_id(spec)
        )
    return [*jvm, MAIN_CLASS, str(props_file)]


def _new_cluster_id() -> str:
    """A random base64url UUID that does not start with ``-``.

    The storage tool's argument parser reads ``-t -abc…`` as an unknown option, so about one
    start in 64 failed; Kafka's own ``Uuid.randomUuid`` draws again in that case too.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _cluster_id(spec: NodeSpec) -> str:
    """A fresh id for one node; in a cluster, one id shared by every broker (kept on disk)."""
    if not spec.clustered:
        return _new_cluster_id()
    path = spec.state_dir.resolve() / CLUSTER_ID_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_new_cluster_id())
    return path.read_text().strip()


def _format_storage(
    java: str, classpath: str, props_file: Path, log: Path, cluster_id: str
) -> None:
    """Format the KRaft storage once with the cluster id (22-char base64url UUID)."""
    cmd = [
        java,
        "-Xmx256m",
        "-cp",
        classpath,
        STORAGE_TOOL,
        "format",
        "-t",
        cluster_id,
        "-c",
        str(props_file),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise NodeError(f"kafka storage format failed (exit {proc.returncode}):\n{proc.stderr}")
