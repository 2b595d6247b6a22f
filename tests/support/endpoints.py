"""Find real Kafka + Cassandra endpoints for the test session.

Order (first that applies wins):
1. ``SEGFLOW_KAFKA__BOOTSTRAP_SERVERS`` and ``SEGFLOW_CASSANDRA__CONTACT_POINTS`` from the
   environment (an external cluster, or a stack someone started);
2. the local JVM stack (``segflow stack up``), started once per session if not running and
   stopped again at the end only if this session started it;
3. testcontainers, when a Docker engine answers.
Nothing is mocked: if none of these is possible the session fails with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Endpoints:
    """Where the real servers are, and how to release them at session end."""

    bootstrap_servers: str
    cassandra_host: str
    cassandra_port: int
    origin: str
    release: Callable[[], None] = field(default=lambda: None)
    # Freeze / thaw the Cassandra node (fault tests); None when the node is not ours.
    pause_cassandra: Callable[[], None] | None = None
    resume_cassandra: Callable[[], None] | None = None
    # Replicas of the topics and the keyspace the tests create (3 on a 3-node local stack).
    replication_factor: int = 1


def from_env() -> Endpoints | None:
    """Endpoints given explicitly through SEGFLOW_* variables."""
    bootstrap = os.environ.get("SEGFLOW_KAFKA__BOOTSTRAP_SERVERS")
    hosts = os.environ.get("SEGFLOW_CASSANDRA__CONTACT_POINTS")
    if not bootstrap or not hosts:
        return None
    port = int(os.environ.get("SEGFLOW_CASSANDRA__PORT", "9042"))
    return Endpoints(bootstrap, hosts.split(",")[0].strip(), port, "environment")


def from_local_stack() -> Endpoints | None:
    """The JVM stack from Maven Central jars (needs java and mvn on PATH)."""
    from segflow.settings import StackProcessSettings
    from segflow.stack import kafka_node, manager, topology

    settings = StackProcessSettings().stack
    if shutil.which(settings.java) is None or shutil.which(settings.mvn) is None:
        return None
    reports = manager.up(settings, say=lambda _line: None)
    started_here = any(report.started for report in reports)

    def release() -> None:
        if started_here and not os.environ.get("SEGFLOW_TEST_KEEP_STACK"):
            manager.down(settings)

    first = topology.nodes(settings, "cassandra")[0]
    node = manager.node_process(first)

    def signal_cassandra(sig: signal.Signals) -> None:
        pid = node.read_pid()
        assert pid is not None, "the local Cassandra node is not running"
        os.kill(pid, sig)

    return Endpoints(
        kafka_node.bootstrap_servers(settings),
        first.address,
        settings.cassandra_port,
        "local stack (started by the tests)" if started_here else "local stack (running)",
        release,
        pause_cassandra=lambda: signal_cassandra(signal.SIGSTOP),
        resume_cassandra=lambda: signal_cassandra(signal.SIGCONT),
        replication_factor=topology.replication_factor(settings.nodes),
    )


def from_testcontainers() -> Endpoints | None:
    """Kafka and Cassandra containers, when a Docker engine is available."""
    if shutil.which("docker") is None:
        return None
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        return None
    from testcontainers.cassandra import CassandraContainer
    from testcontainers.kafka import KafkaContainer

    kafka = KafkaContainer("apache/kafka:4.1.2").with_kraft()
    cassandra = CassandraContainer("cassandra:5.0.6")
    kafka.start()
    cassandra.start()

    def release() -> None:
        kafka.stop()
        cassandra.stop()

    host = cassandra.get_container_host_ip()
    container = cassandra.get_wrapped_container()
    return Endpoints(
        kafka.get_bootstrap_server(),
        host,
        int(cassandra.get_exposed_port(9042)),
        "testcontainers",
        release,
        pause_cassandra=container.pause,
        resume_cassandra=container.unpause,
    )


def discover() -> Endpoints:
    """The first available source of real endpoints, or an error saying why none is."""
    for source in (from_env, from_local_stack, from_testcontainers):
        found = source()
        if found is not None:
            return found
    raise RuntimeError(
        "no real Kafka/Cassandra: set SEGFLOW_KAFKA__BOOTSTRAP_SERVERS and "
        "SEGFLOW_CASSANDRA__CONTACT_POINTS, install java 17 + maven for the local stack, "
        "or run a Docker engine for testcontainers"
    )
