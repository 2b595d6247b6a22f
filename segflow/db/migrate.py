"""Versioned CQL migrations: ``schemas/cql/V<NNN>__<name>.cql`` applied once each, in order.

The keyspace itself is created from settings (its replication differs between a laptop and
production), then every migration file not yet recorded in ``schema_migrations`` is applied
statement by statement and recorded with its checksum. Re-running is a no-op; a recorded
migration whose file changed afterwards is an error, because the live schema no longer
matches the file. A lightweight-transaction lock keeps two concurrent runs (e.g. two Helm
hooks) from applying the same file twice.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segflow.resources import cql_dir
from segflow.settings import CassandraSettings

_FILE = re.compile(r"^V(\d{3,})__([a-z0-9_]+)\.cql$")
LOCK_TTL_S = 300


class MigrationError(RuntimeError):
    """A migration could not be applied or the recorded history disagrees with the files."""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    path: Path
    checksum: str

    def statements(self, keyspace: str) -> list[str]:
        """The file's statements with ``{keyspace}`` substituted; ``--`` comments dropped."""
        text = self.path.read_text(encoding="utf-8")
        lines = [line for line in text.splitlines() if not line.strip().startswith("--")]
        body = "\n".join(lines).replace("{keyspace}", keyspace)
        return [stmt.strip() for stmt in body.split(";") if stmt.strip()]


def discover(directory: Path | None = None) -> list[Migration]:
    """All migration files, sorted by version; duplicate versions are an error."""
    directory = directory or cql_dir()
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.cql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named V<NNN>__<name>.cql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"{path.name}: version {version} also used by {found[version].path.name}"
            )
        checksum = hashlib.sha256(path.read_bytes()).hexdigest()
        found[version] = Migration(version, match.group(2), path, checksum)
    return [found[version] for version in sorted(found)]


@dataclass(frozen=True)
class MigrationResult:
    """What a run did."""

    applied: list[Migration]
    already: list[int]


def migrate(
    session: Any, settings: CassandraSettings, migrations: list[Migration] | None = None
) -> MigrationResult:
    """Create the keyspace if needed and apply every pending migration, under a lock."""
    keyspace = settings.keyspace
    migrations = discover() if migrations is None else migrations
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        f"{settings.replication_cql()} AND durable_writes = true"
    )
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations ("
        "version int PRIMARY KEY, name text, checksum text, applied_at timestamp)"
    )
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {keyspace}.schema_migration_lock ("
        "id text PRIMARY KEY, owner uuid, taken_at timestamp)"
    )
    owner = _acquire_lock(session, keyspace)
    try:
        recorded = {
            row.version: row.checksum
            for row in session.execute(
                f"SELECT version, checksum FROM {keyspace}.schema_migrations"
            )
        }
        applied: list[Migration] = []
        already: list[int] = []
        for migration in migrations:
            if migration.version in recorded:
                if recorded[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"{migration.path.name} changed after it was applied (checksum "
                        "mismatch); add a new migration instead of editing an applied one"
                    )
                already.append(migration.version)
                continue
            for statement in migration.statements(keyspace):
                try:
                    session.execute(statement, timeout=120)
                except Exception as exc:
                    raise MigrationError(
                        f"{migration.path.name}: {type(exc).__name__}: {exc}\n"
                        f"statement: {statement[:300]}"
                    ) from exc
            session.execute(
                f"INSERT INTO {keyspace}.schema_migrations (version, name, checksum, applied_at) "
                "VALUES (%s, %s, %s, toTimestamp(now()))",
                (migration.version, migration.name, migration.checksum),
            )
            applied.append(migration)
        return MigrationResult(applied, already)
    finally:
        session.execute(
            f"DELETE FROM {keyspace}.schema_migration_lock WHERE id = 'migrate' IF owner = %s",
            (owner,),
        )


def _acquire_lock(session: Any, keyspace: str, wait_s: float = 120.0) -> uuid.UUID:
    owner = uuid.uuid4()
    deadline = time.monotonic() + wait_s
    while True:
        result = session.execute(
            f"INSERT INTO {keyspace}.schema_migration_lock (id, owner, taken_at) "
            f"VALUES ('migrate', %s, toTimestamp(now())) IF NOT EXISTS USING TTL {LOCK_TTL_S}",
            (owner,),
        )
        if result.was_applied:
            return owner
        if time.monotonic() > deadline:
            raise MigrationError(
                f"another migration holds {keyspace}.schema_migration_lock; it expires "
                f"{LOCK_TTL_S}s after it was taken"
            )
        time.sleep(1.0)
