"""``db migrate`` against the real Cassandra: idempotent, ordered, tamper-evident."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segflow.db.migrate import MigrationError, discover, migrate
from segflow.db.session import connect
from segflow.resources import cql_dir
from segflow.settings import CassandraSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def scratch(cassandra_settings: CassandraSettings) -> Iterator[tuple[Any, CassandraSettings]]:
    settings = cassandra_settings.model_copy(
        update={"keyspace": f"segflow_mig_{uuid.uuid4().hex[:10]}"}
    )
    cluster, session = connect(settings)
    yield session, settings
    session.execute(f"DROP KEYSPACE IF EXISTS {settings.keyspace}", timeout=120)
    cluster.shutdown()


@pytest.fixture
def migrated_copy(scratch: tuple[Any, CassandraSettings], tmp_path: Path) -> Path:
    """A copy of the shipped migrations, applied to the scratch keyspace, free to edit."""
    session, settings = scratch
    copy = tmp_path / "cql"
    shutil.copytree(cql_dir(), copy)
    migrate(session, settings, discover(copy))
    return copy


def test_migrate_twice_is_a_noop(scratch: tuple[Any, CassandraSettings]) -> None:
    session, settings = scratch
    files = discover()
    first = migrate(session, settings)
    assert [m.version for m in first.applied] == [m.version for m in files]
    tables_after_first = _tables(session, settings.keyspace)
    second = migrate(session, settings)
    assert second.applied == []
    assert second.already == [m.version for m in files]
    assert _tables(session, settings.keyspace) == tables_after_first
    recorded = session.execute(
        f"SELECT version, checksum FROM {settings.keyspace}.schema_migrations"
    ).all()
    assert sorted((r.version, r.checksum) for r in recorded) == [
        (m.version, m.checksum) for m in files
    ]
    assert {"segments", "segments_by_technical_name", "schema_migrations"} <= tables_after_first


def test_edited_applied_migration_is_rejected(
    scratch: tuple[Any, CassandraSettings], migrated_copy: Path
) -> None:
    session, settings = scratch
    copy = migrated_copy
    first = sorted(copy.glob("*.cql"))[0]
    first.write_text(first.read_text() + "\n-- edited after being applied\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(session, settings, discover(copy))


def test_new_migration_is_applied_once(
    scratch: tuple[Any, CassandraSettings], migrated_copy: Path
) -> None:
    session, settings = scratch
    copy = migrated_copy
    (copy / "V999__extra.cql").write_text(
        "CREATE TABLE IF NOT EXISTS {keyspace}.extra_probe (k int PRIMARY KEY);\n"
    )
    result = migrate(session, settings, discover(copy))
    assert [m.version for m in result.applied] == [999]
    assert "extra_probe" in _tables(session, settings.keyspace)


def _tables(session: Any, keyspace: str) -> set[str]:
    rows = session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
    )
    return {row.table_name for row in rows}
