"""``segflow db migrate``: apply the CQL migrations to the configured keyspace."""

from __future__ import annotations

import argparse

from segflow.db.migrate import MigrationError, migrate
from segflow.db.session import connect_or_fail
from segflow.errors import SegflowError
from segflow.logs import configure_logging
from segflow.settings import MigrateSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``segflow db migrate``."""
    db = subparsers.add_parser("db", help="Cassandra schema management")
    actions = db.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = actions.add_parser(
        "migrate",
        help="create the keyspace and apply pending CQL migrations (idempotent)",
        description="Settings: SEGFLOW_CASSANDRA__* (contact_points, port, keyspace, "
        "replication_class, replication_factor, dc_replication, username, password, tls_*).",
    )
    run.set_defaults(handler=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    settings = MigrateSettings()
    configure_logging(settings.log)
    cluster, session = connect_or_fail(settings.cassandra)
    try:
        result = migrate(session, settings.cassandra)
    except MigrationError as exc:
        raise SegflowError(str(exc)) from None
    finally:
        cluster.shutdown()
    for migration in result.applied:
        print(f"applied V{migration.version:03d}__{migration.name}")
    print(
        f"keyspace {settings.cassandra.keyspace}: {len(result.applied)} applied, "
        f"{len(result.already)} already applied"
    )
    return 0
