"""``segflow stack up --nodes 3``: one KRaft quorum of 3 brokers and one ring of 3 Cassandra
nodes, replicated 3 ways; ``kill``/``start`` of single nodes, and what survives them.

State is read back from the servers: topic and keyspace replication from their metadata, a
row written at LOCAL_QUORUM while a node was dead from that node alone once it is back (hinted
handoff), a record produced with ``acks=all`` while a broker was dead from the topic.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import WhiteListRoundRobinPolicy
from cassandra.query import SimpleStatement
from confluent_kafka import Producer
from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]

from segflow.kafka_admin import admin_client
from segflow.settings import CassandraSettings, KafkaSettings, StackSettings
from tests.chaos.cluster.conftest import stack_cli
from tests.support.consumer_harness import read_topic

pytestmark = pytest.mark.cluster


def test_status_and_env_name_every_node(cluster_stack: StackSettings) -> None:
    status = stack_cli("status", timeout=120)
    assert status.returncode == 0, status.stdout + status.stderr
    for i in (1, 2, 3):
        assert f"kafka-{i}: ready (pid" in status.stdout
        assert f"cassandra-{i}: ready (pid" in status.stdout
        assert f"127.0.0.{i}:{cluster_stack.cassandra_port}" in status.stdout
    env = stack_cli("env", timeout=60).stdout
    assert "SEGFLOW_CASSANDRA__CONTACT_POINTS=127.0.0.1,127.0.0.2,127.0.0.3" in env
    assert "SEGFLOW_CASSANDRA__REPLICATION_FACTOR=3" in env
    logs = stack_cli("logs", "cassandra", "-n", "1", timeout=60)
    for i in (1, 2, 3):
        assert f"/cassandra-{i}/logs/system.log <==" in logs.stdout
    one = stack_cli("logs", "kafka-2", "-n", "5", timeout=60)
    assert one.returncode == 0
    assert one.stdout.strip()
    assert "==>" not in one.stdout  # one node's log only


def test_topics_and_keyspace_are_replicated_three_ways(
    cluster_stack: StackSettings,
    kafka_settings: KafkaSettings,
    cassandra_session: Any,
    cassandra_settings: CassandraSettings,
) -> None:
    admin = admin_client(kafka_settings)
    topic = admin.list_topics(kafka_settings.commands_topic, timeout=30).topics[
        kafka_settings.commands_topic
    ]
    assert {len(p.replicas) for p in topic.partitions.values()} == {3}
    assert {p.leader for p in topic.partitions.values()} <= {1, 2, 3}
    resource = ConfigResource(ConfigResource.Type.TOPIC, kafka_settings.commands_topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    assert configs["min.insync.replicas"].value == "2"
    row = cassandra_session.execute(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
        (cassandra_settings.keyspace,),
    ).one()
    assert row.replication["replication_factor"] == "3"
    hosts = cassandra_session.cluster.metadata.all_hosts()
    assert sorted(host.address for host in hosts) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


def _only(address: str, port: int) -> Cluster:
    profile = ExecutionProfile(
        load_balancing_policy=WhiteListRoundRobinPolicy([address]),
        consistency_level=ConsistencyLevel.ONE,
        request_timeout=20,
    )
    return Cluster(
        [address],
        port=port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        protocol_version=5,
    )


def test_a_killed_cassandra_node_gets_the_quorum_writes_it_missed(
    cluster_stack: StackSettings, cassandra_session: Any, cassandra_settings: CassandraSettings
) -> None:
    keyspace = cassandra_settings.keyspace
    table = f"{keyspace}.node_loss_{uuid.uuid4().hex[:8]}"
    cassandra_session.execute(f"CREATE TABLE {table} (k text PRIMARY KEY, v int)", timeout=120)
    killed = stack_cli("kill", "cassandra-3", timeout=60)
    assert "cassandra-3: killed (SIGKILL" in killed.stdout, killed.stdout + killed.stderr
    assert stack_cli("status", timeout=120).returncode == 1
    insert = SimpleStatement(
        f"INSERT INTO {table} (k, v) VALUES (%s, %s)",
        consistency_level=ConsistencyLevel.LOCAL_QUORUM,
    )
    for i in range(200):  # 2 of 3 replicas are up: LOCAL_QUORUM holds
        cassandra_session.execute(insert, (f"k{i}", i))
    started = stack_cli("start", "cassandra-3")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "cassandra-3: started at 127.0.0.3" in started.stdout
    # Node 3 alone, at ONE (no read repair from its peers): the rows reach it by the hints
    # its peers kept while it was down.
    alone = _only("127.0.0.3", cluster_stack.cassandra_port)
    try:
        session = alone.connect()
        deadline = time.monotonic() + 240
        while True:
            count = session.execute(f"SELECT count(*) FROM {table}").one()[0]
            if count == 200 or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert count == 200, f"node 3 holds {count} of the 200 rows written while it was down"
    finally:
        alone.shutdown()


def test_a_killed_broker_loses_no_acknowledged_record(
    cluster_stack: StackSettings, kafka_settings: KafkaSettings
) -> None:
    killed = stack_cli("kill", "kafka-2", timeout=60)
    assert "kafka-2: killed (SIGKILL" in killed.stdout, killed.stdout + killed.stderr
    try:
        producer = Producer(
            {
                "bootstrap.servers": kafka_settings.bootstrap_servers,
                "acks": "all",
                "enable.idempotence": True,
                "message.timeout.ms": 120_000,
            }
        )
        failures: list[str] = []
        for i in range(300):
            producer.produce(
                kafka_settings.commands_topic,
                value=f"v{i}".encode(),
                on_delivery=lambda err, _msg: failures.append(str(err)) if err else None,
            )
        assert producer.flush(150) == 0
        assert failures == []
    finally:
        started = stack_cli("start", "kafka-2")
    assert started.returncode == 0, started.stdout + started.stderr
    records = read_topic(kafka_settings, kafka_settings.commands_topic, 300, timeout_s=120)
    values = sorted(m.value() for m in records)
    assert values == sorted(f"v{i}".encode() for i in range(300))
