"""``segflow db migrate``: apply the CQL migrations to the configured keyspace."""

from __future__ import annotations

import argparse

from segflow.cli_flags import SettingFlags, add_output_flag, print_json, settings_from
from segflow.db.migrate import Migration, MigrationError, migrate
from segflow.db.session import connect_or_fail
from segflow.errors import SegflowError
from segflow.settings import MigrateSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``segflow db migrate``."""
    db = subparsers.add_parser("db", help="Cassandra schema management")
    actions = db.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = actions.add_parser(
        "migrate", help="create the keyspace and apply pending CQL migrations (idempotent)"
    )
    SettingFlags(run, MigrateSettings).field("cassandra.keyspace")
    add_output_flag(run)
    run.set_defaults(handler=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    settings = settings_from(args, MigrateSettings)
    cluster, session = connect_or_fail(settings.cassandra)
    try:
        result = migrate(session, settings.cassandra)
    except MigrationError as exc:
        raise SegflowError(str(exc)) from None
    finally:
        cluster.shutdown()
    if args.output == "json":
        print_json(
            {
                "keyspace": settings.cassandra.keyspace,
                "applied": [_name(migration) for migration in result.applied],
                "already_applied": [f"V{version:03d}" for version in result.already],
            }
        )
        return 0
    for migration in result.applied:
        print(f"applied {_name(migration)}")
    print(
        f"keyspace {settings.cassandra.keyspace}: {len(result.applied)} applied, "
        f"{len(result.already)} already applied"
    )
    return 0


def _name(migration: Migration) -> str:
    return f"V{migration.version:03d}__{migration.name}"
