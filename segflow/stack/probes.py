"""Readiness probes: the servers must answer real protocol requests, not just accept TCP.

Kafka is ready when it answers a metadata request; Cassandra when it answers
``SELECT release_version FROM system.local``.
"""

from __future__ import annotations

import logging

from segflow.settings import CassandraSettings
from segflow.stack.process import port_open


def kafka_ready(bootstrap: str, port: int, timeout_s: float = 3.0) -> str | None:
    """The broker's cluster id when a metadata request succeeds, else None."""
    if not port_open(port):
        return None
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except Exception:
        return None
    if not metadata.brokers:
        return None
    return str(metadata.cluster_id)


def cassandra_ready(port: int, timeout_s: float = 5.0) -> str | None:
    """Cassandra's release_version when the query succeeds, else None."""
    if not port_open(port):
        return None
    from segflow.db.session import connect

    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    settings = CassandraSettings(
        contact_points=["127.0.0.1"],
        port=port,
        connect_timeout_s=timeout_s,
        request_timeout_s=timeout_s,
    )
    try:
        cluster, session = connect(settings)
    except Exception:
        return None
    try:
        row = session.execute("SELECT release_version FROM system.local").one()
        return str(row.release_version) if row else None
    except Exception:
        return None
    finally:
        cluster.shutdown()
