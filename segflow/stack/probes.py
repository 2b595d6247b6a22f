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
    from segflow.db.session import build_cluster

    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    settings = CassandraSettings(
        contact_points=[host],
        port=port,
        connect_timeout_s=timeout_s,
        request_timeout_s=timeout_s,
    )
    cluster = build_cluster(settings)
    try:
        session = cluster.connect()
        statement = "SELECT release_version FROM system.local"
        pinned = [each for each in cluster.metadata.all_hosts() if each.address == host]
        if not pinned:
            return None
        row = session.execute(statement, host=pinned[0]).one()
        return str(row.release_version) if row else None
    except Exception:
        return None
    finally:
        cluster.shutdown()
