"""Readiness probes: the servers must answer real protocol requests, not just accept TCP.

A Kafka node is ready when it answers a metadata request that lists it among the brokers; a
Cassandra node when it answers ``SELECT release_version FROM system.local`` itself (the query
is pinned to that node, not routed to a peer).
"""

from __future__ import annotations

import logging

from segflow.settings import CassandraSettings
from segflow.stack.process import port_open


def kafka_ready(
    host: str, port: int, node_id: int | None = None, timeout_s: float = 3.0
) -> str | None:
    """The cluster id when the broker at host:port answers metadata (listing ``node_id``)."""
    if not port_open(port, host):
        return None
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": f"{host}:{port}", "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except Exception:
        return None
    if not metadata.brokers or (node_id is not None and node_id not in metadata.brokers):
        return None
    return str(metadata.cluster_id)


def cassandra_ready(host: str, port: int, timeout_s: float = 5.0) -> str | None:
    """The node's release_version when it answers the query itself, else None."""
    if not port_open(port, host):
        return None
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile
    from cassandra.policies import WhiteListRoundRobinPolicy

    from segflow.db.session import build_cluster

    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    settings = CassandraSettings(
        contact_points=[host],
        port=port,
        connect_timeout_s=timeout_s,
        request_timeout_s=timeout_s,
    )
    # Only this node: the answer must come from it, and a peer that is down must not matter.
    only_this = ExecutionProfile(
        load_balancing_policy=WhiteListRoundRobinPolicy([host]), request_timeout=timeout_s
    )
    cluster = build_cluster(settings, execution_profiles={EXEC_PROFILE_DEFAULT: only_this})
    try:
        session = cluster.connect()
        row = session.execute("SELECT release_version FROM system.local").one()
        return str(row.release_version) if row else None
    except Exception:
        return None
    finally:
        cluster.shutdown()
