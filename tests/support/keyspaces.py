"""A test's own migrated keyspace: created by the real migrations, dropped afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from segflow.db.migrate import migrate
from segflow.db.session import connect
from segflow.settings import CassandraSettings


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
