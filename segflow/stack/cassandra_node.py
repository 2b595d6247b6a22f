"""The local Cassandra 5.0 node: one node, single token, loopback only, sized for tests.

Group commit (``commitlog_sync: group``, 10 ms window): a write is acknowledged only once its
commit log is on disk. With the ``periodic`` default, a node killed (SIGKILL, OOM, power)
drops up to ``commitlog_sync_period`` of acknowledged writes on replay; with one replica
nothing else holds them, so the consumer would have committed offsets past lost writes (the
chaos suite's Cassandra SIGKILL scenario found it: 890 of 7,421 commands gone).

``cassandra-all`` ships no cassandra.yaml and no logback.xml, so both are written here; on
Java 17 the JPMS exports/opens from Cassandra's ``conf/jvm17-server.options`` are mandatory
(without them FileUtils aborts startup), and the jamm agent is passed as the scripts do.
"""

from __future__ import annotations

import os
from pathlib import Path

from segflow.settings import StackSettings
from segflow.stack.classpath import find_jar, resolve_classpath
from segflow.stack.process import NodeProcess, Port

NAME = "cassandra"
MAIN_CLASS = "org.apache.cassandra.service.CassandraDaemon"

# From Cassandra 5.0's conf/jvm17-server.options (+ the three flags bin/cassandra.in.sh adds on
# a full JDK). Every target is ALL-UNNAMED.
JPMS_EXPORTS = (
    "java.base/jdk.internal.misc",
    "java.base/java.lang.ref",
    "java.management.rmi/com.sun.jmx.remote.internal.rmi",
    "java.rmi/sun.rmi.registry",
    "java.rmi/sun.rmi.server",
    "java.sql/java.sql",
    "jdk.unsupported/sun.misc",
    "jdk.compiler/com.sun.tools.javac.file",
    "jdk.attach/sun.tools.attach",
)
JPMS_OPENS = (
    "java.base/java.lang.module",
    "java.base/jdk.internal.loader",
    "java.base/jdk.internal.ref",
    "java.base/jdk.internal.reflect",
    "java.base/jdk.internal.math",
    "java.base/jdk.internal.module",
    "java.base/jdk.internal.util.jar",
    "jdk.management/com.sun.management.internal",
    "java.base/sun.nio.ch",
    "java.base/java.io",
    "java.base/java.lang.reflect",
    "java.base/java.lang",
    "java.base/java.util",
    "java.base/java.nio",
    "jdk.compiler/com.sun.tools.javac",
)


def node_dir(settings: StackSettings) -> Path:
    """All of this node's files: config, data directories and logs."""
    return settings.state_dir.resolve() / "cassandra"


def process(settings: StackSettings) -> NodeProcess:
    """Pid file and logs of the Cassandra node."""
    base = node_dir(settings)
    return NodeProcess(
        name=NAME,
        pid_file=base / "cassandra.pid",
        console_log=base / "logs" / "console.log",
        server_log=base / "logs" / "system.log",
    )


def ports(settings: StackSettings) -> list[Port]:
    """The ports the node binds, with the setting that moves each."""
    return [
        Port(
            settings.cassandra_port,
            "Cassandra CQL native transport",
            "SEGFLOW_STACK__CASSANDRA_PORT",
        ),
        Port(
            settings.cassandra_storage_port,
            "Cassandra internode storage",
            "SEGFLOW_STACK__CASSANDRA_STORAGE_PORT",
        ),
    ]


def cassandra_yaml(settings: StackSettings) -> str:
    """A minimal single-node cassandra.yaml; every directory lives under the node dir."""
    base = node_dir(settings)
    storage = settings.cassandra_storage_port
    return f"""\
cluster_name: segflow-local
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:{storage}"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: {storage}
native_transport_port: {settings.cassandra_port}
start_native_transport: true
data_file_directories:
  - {base / "data" / "data"}
commitlog_directory: {base / "data" / "commitlog"}
saved_caches_directory: {base / "data" / "saved_caches"}
hints_directory: {base / "data" / "hints"}
cdc_raw_directory: {base / "data" / "cdc_raw"}
commitlog_sync: group
commitlog_sync_group_window: 10ms
commitlog_segment_size: 32MiB
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
auto_snapshot: false
hinted_handoff_enabled: false
dynamic_snitch: false
concurrent_reads: 16
concurrent_writes: 32
concurrent_counter_writes: 8
concurrent_compactors: 1
key_cache_size: 16MiB
counter_cache_size: 0MiB
memtable_heap_space: 256MiB
memtable_offheap_space: 256MiB
range_request_timeout: 20000ms
read_request_timeout: 10000ms
write_request_timeout: 5000ms
request_timeout: 20000ms
batch_size_warn_threshold: 64KiB
batch_size_fail_threshold: 512KiB
tombstone_warn_threshold: 100000
tombstone_failure_threshold: 1000000
"""


LOGBACK = """\
<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.rolling.RollingFileAppender">
    <file>${cassandra.logdir}/system.log</file>
    <rollingPolicy class="ch.qos.logback.core.rolling.SizeAndTimeBasedRollingPolicy">
      <fileNamePattern>${cassandra.logdir}/system.log.%d{yyyy-MM-dd}.%i.zip</fileNamePattern>
      <maxFileSize>50MB</maxFileSize>
      <maxHistory>3</maxHistory>
      <totalSizeCap>200MB</totalSizeCap>
    </rollingPolicy>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
"""


def prepare(settings: StackSettings) -> list[str]:
    """Write cassandra.yaml and logback.xml and return the daemon's command line."""
    base = node_dir(settings)
    for sub in (
        "data/data",
        "data/commitlog",
        "data/saved_caches",
        "data/hints",
        "data/cdc_raw",
        "logs",
        "tmp",
    ):
        (base / sub).mkdir(parents=True, exist_ok=True)
    yaml_file = base / "cassandra.yaml"
    yaml_file.write_text(cassandra_yaml(settings))
    logback_file = base / "logback.xml"
    logback_file.write_text(LOGBACK)
    jars = resolve_classpath(
        "cassandra",
        settings.state_dir.resolve() / "classpath",
        settings.mvn,
        settings.maven_repo_local,
    )
    jamm = find_jar(jars, "jamm-")
    heap = settings.cassandra_heap_mb
    return [
        settings.java,
        f"-Xms{heap}m",
        f"-Xmx{heap}m",
        f"-Xmn{max(64, heap // 4)}m",
        "-Xss256k",
        "-ea",
        "-da:net.openhft...",
        "-XX:+UseG1GC",
        "-XX:+ParallelRefProcEnabled",
        "-XX:MaxTenuringThreshold=1",
        "-XX:G1RSetUpdatingPauseTimePercent=5",
        "-XX:MaxGCPauseMillis=300",
        "-XX:+HeapDumpOnOutOfMemoryError",
        f"-XX:HeapDumpPath={base / 'logs'}",
        "-XX:+ExitOnOutOfMemoryError",
        "-XX:+UseTLAB",
        "-XX:+ResizeTLAB",
        "-XX:+PerfDisableSharedMem",
        "-Djava.net.preferIPv4Stack=true",
        "-Djdk.attach.allowAttachSelf=true",
        *[f"--add-exports={target}=ALL-UNNAMED" for target in JPMS_EXPORTS],
        *[f"--add-opens={target}=ALL-UNNAMED" for target in JPMS_OPENS],
        "-Dio.netty.tryReflectionSetAccessible=true",
        "-Dio.netty.allocator.useCacheForAllThreads=true",
        "-Dio.netty.allocator.maxOrder=11",
        f"-javaagent:{jamm}",
        f"-Dcassandra.config={yaml_file.as_uri()}",
        f"-Dlogback.configurationFile={logback_file}",
        f"-Dcassandra.logdir={base / 'logs'}",
        f"-Dcassandra.storagedir={base / 'data'}",
        f"-Djava.io.tmpdir={base / 'tmp'}",
        "-Dcassandra-foreground=yes",
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.ring_delay_ms=1000",
        "-Dcassandra.superuser_setup_delay_ms=0",
        f"-Dcassandra.available_processors={os.cpu_count() or 2}",
        f"-Dsegflow.stack.node=cassandra:{base}",
        "-cp",
        os.pathsep.join(str(jar) for jar in jars),
        MAIN_CLASS,
    ]
