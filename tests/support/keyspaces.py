"""A test's own migrated keyspace: created by the real migrations, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from segflow.db.migrate import migrate
from segflow.db.session import connect
from segflow.settings import CassandraSettings
from tests.support.endpoints import Endpoints


def keyspace_settings(endpoints: Endpoints, prefix: str) -> CassandraSettings:
    """Settings for a new, uniquely named keyspace on the endpoints (their replication)."""
    return CassandraSettings(
        contact_points=[endpoints.cassandra_host],
        port=endpoints.cassandra_port,
        keyspace=f"{prefix}_{uuid.uuid4().hex[:10]}",
        replication_factor=endpoints.replication_factor,
    )


@contextmanager
def migrated_keyspace(settings: CassandraSettings) -> Iterator[CassandraSettings]:
    """Migrate ``settings.keyspace`` (its replication as the settings say), yield, drop it."""
    cluster, session = connect(settings)
    try:
        migrate(session, settings)
        yield settings
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.keyspace}", timeout=120)
    finally:
        cluster.shutdown()
