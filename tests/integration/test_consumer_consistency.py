"""Consistency levels come from the settings through the driver's execution profiles: asking
the one-replica local node for TWO must fail as Unavailable for that profile only."""

from __future__ import annotations

import uuid

import pytest
from cassandra import Unavailable
from cassandra.cluster import NoHostAvailable

from segflow.db.session import READ_PROFILE, connect
from segflow.settings import CassandraSettings

pytestmark = pytest.mark.integration
# The driver's retry policy tries the next host, so Unavailable may arrive inside NoHostAvailable.
TWO_REFUSED = "Cannot achieve consistency level TWO"


def test_write_and_read_consistency_apply_to_their_profiles(
    cassandra_settings: CassandraSettings,
) -> None:
    settings = cassandra_settings.model_copy(
        update={"write_consistency": "TWO", "read_consistency": "LOCAL_QUORUM"}
    )
    cluster, session = connect(settings, settings.keyspace)
    segment = f"cl-{uuid.uuid4().hex[:8]}"
    try:
        with pytest.raises((Unavailable, NoHostAvailable), match=TWO_REFUSED):
            session.execute(
                "INSERT INTO {ks}.segments (segment_id, name) VALUES (%s, %s)", (segment, "x")
            )
        rows = session.execute(
            "SELECT name FROM {ks}.segments WHERE segment_id = %s",
            (segment,),
            execution_profile=READ_PROFILE,
        )
        assert rows.one() is None
    finally:
        cluster.shutdown()
    settings = cassandra_settings.model_copy(update={"read_consistency": "TWO"})
    cluster, session = connect(settings, settings.keyspace)
    try:
        session.execute(
            "INSERT INTO {ks}.segments (segment_id, name) VALUES (%s, %s)", (segment, "x")
        )
        with pytest.raises((Unavailable, NoHostAvailable), match=TWO_REFUSED):
            session.execute(
                "SELECT name FROM {ks}.segments WHERE segment_id = %s",
                (segment,),
                execution_profile=READ_PROFILE,
            )
    finally:
        cluster.shutdown()
