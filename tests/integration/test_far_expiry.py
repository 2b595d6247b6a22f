"""Expiries after 2038-01-19: applied (no TTL, hidden once passed), never refused by Cassandra.

Cassandra 5.0 in its shipped storage_compatibility_mode CASSANDRA_4 refuses a TTL that ends
after 2038-01-19; a consumer that sent one would dead-letter a valid mediarithmics line
(``write_rejected``) only because its expiration is 12 years away.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from segflow.db.layout import MAX_TTL_EXPIRY_MS
from segflow.settings import CassandraSettings
from tests.support.consumer_harness import (
    ConsumerWorld,
    command,
    consumer_world,
    produce,
    wait_landed,
)
from tests.support.endpoints import Endpoints

pytestmark = pytest.mark.integration

EXPIRY_2040_MS = int(datetime(2040, 1, 1, tzinfo=UTC).timestamp() * 1000)
EXPIRY_2037_MS = int(datetime(2037, 6, 1, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def world(endpoints: Endpoints, cassandra_settings: CassandraSettings) -> Iterator[ConsumerWorld]:
    with consumer_world(endpoints, cassandra_settings, "expiry", 1) as (kafka, session):
        yield ConsumerWorld(kafka, session)


def test_an_expiry_after_2038_is_applied_without_ttl_and_one_before_keeps_its_ttl(
    world: ConsumerWorld,
) -> None:
    assert EXPIRY_2037_MS < MAX_TTL_EXPIRY_MS < EXPIRY_2040_MS
    segment = f"expiry-{uuid.uuid4().hex[:8]}"
    world.registry.create(segment, bucket_count=4)
    tag = uuid.uuid4().hex[:8]
    eid = world.store.create("expiry", f"{tag}.ndjson", "test", tag * 8, 1).execution_id
    version = int(time.time() * 1_000_000)
    records = [
        command(eid, "FEED_ADD", version, "user_id:late", [segment], expires_at_ms=EXPIRY_2040_MS),
        command(eid, "FEED_ADD", version, "user_id:soon", [segment], expires_at_ms=EXPIRY_2037_MS),
    ]
    produce(world.kafka, list(enumerate(records)), eid)
    landed = wait_landed(world.store, eid, len(records))
    assert landed.commands_dead_lettered == 0

    stored = world.registry.get(segment, fresh=True)
    assert stored is not None
    members = {m.user_key: m.expires_at for m in world.reader.members(stored)}
    assert members == {
        "user_id:late": datetime(2040, 1, 1, tzinfo=UTC),
        "user_id:soon": datetime(2037, 6, 1, tzinfo=UTC),
    }
    rows = world.session.execute(
        "SELECT user_key, TTL(command_id) AS ttl FROM feed_by_segment "
        "WHERE segment_id = %s ALLOW FILTERING",
        (segment,),
    )
    ttls = {row.user_key: row.ttl for row in rows}
    assert ttls["user_id:late"] is None
    expected_soon = (EXPIRY_2037_MS / 1000) - time.time()
    assert ttls["user_id:soon"] is not None
    assert abs(ttls["user_id:soon"] - expected_soon) < 600
