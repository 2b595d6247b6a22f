"""The local Kafka 4.x node: KRaft combined broker+controller, one node, loopback only.

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
from segflow.stack.classpath import resolve_classpath
from segflow.stack.process import NodeError, NodeProcess, Port

NAME = "kafka"
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


def node_dir(settings: StackSettings) -> Path:
    """All of this node's files: config, data (``data/``) and logs (``logs/``)."""
    return settings.state_dir.resolve() / "kafka"


def process(settings: StackSettings) -> NodeProcess:
    """Pid file and logs of the Kafka node."""
    base = node_dir(settings)
    return NodeProcess(
        name=NAME,
        pid_file=base / "kafka.pid",
        console_log=base / "logs" / "console.log",
        server_log=base / "logs" / "server.log",
    )


def ports(settings: StackSettings) -> list[Port]:
    """The ports the node binds, with the setting that moves each."""
    return [
        Port(settings.kafka_port, "Kafka client listener", "SEGFLOW_STACK__KAFKA_PORT"),
        Port(
            settings.kafka_controller_port,
            "KRaft controller listener",
            "SEGFLOW_STACK__KAFKA_CONTROLLER_PORT",
        ),
    ]


def server_properties(settings: StackSettings) -> str:
    """server.properties for a single combined node bound to 127.0.0.1."""
    base = node_dir(settings)
    client, controller = settings.kafka_port, settings.kafka_controller_port
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller}",
        "listeners": f"PLAINTEXT://127.0.0.1:{client},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{client}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(base / "data"),
        "num.partitions": "6",
        # Topics are created explicitly (segflow topics / compose init); a typo must not
        # silently create a new topic.
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "5",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.retention.hours": "168",
        "log.segment.bytes": str(256 * 1024 * 1024),
        "delete.topic.enable": "true",
    }
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


def prepare(settings: StackSettings) -> list[str]:
    """Write configs, format storage on first use and return the broker's command line."""
    base = node_dir(settings)
    (base / "data").mkdir(parents=True, exist_ok=True)
    (base / "logs").mkdir(parents=True, exist_ok=True)
    props_file = base / "server.properties"
    props_file.write_text(server_properties(settings))
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
        f"-Dsegflow.stack.node=kafka:{base}",
        "-cp",
        classpath,
    ]
    if not (base / "data" / "meta.properties").is_file():
        _format_storage(settings.java, classpath, props_file, base / "logs" / "format.log")
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


def _format_storage(java: str, classpath: str, props_file: Path, log: Path) -> None:
    """Format the KRaft storage once with a new random cluster id (22-char base64url UUID)."""
    cluster_id = _new_cluster_id()
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
