"""Session fixtures: real Kafka and Cassandra endpoints, an isolated keyspace, unique topics.

Tests never mock the servers. Each session migrates its own keyspace (dropped at the end) and
each test that needs topics gets fresh, uniquely named ones, so runs never see each other's
data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from hypothesis import settings as hypothesis_settings

from segflow.settings import CassandraSettings, KafkaSettings
from tests.support.consumer_harness import unique_topics
from tests.support.endpoints import Endpoints, discover
from tests.support.keyspaces import keyspace_settings, migrated_keyspace

# The node-loss suite needs a 3-node stack: only `make chaos-cluster` collects it.
collect_ignore = [] if os.environ.get("SEGFLOW_CHAOS_CLUSTER") else ["chaos/cluster"]

hypothesis_settings.register_profile("ci", max_examples=300, deadline=None)
hypothesis_settings.register_profile("dev", max_examples=50, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def endpoints() -> Iterator[Endpoints]:
    """Real endpoints for the whole session (env vars -> local stack -> testcontainers)."""
    found = discover()
    yield found
    found.release()


@pytest.fixture(scope="session")
def cassandra_settings(endpoints: Endpoints) -> Iterator[CassandraSettings]:
    """Settings for a keyspace of this session's own, migrated once, dropped at the end."""
    with migrated_keyspace(keyspace_settings(endpoints, "segflow_test")) as settings:
        yield settings


@pytest.fixture(scope="session")
def cassandra_session(cassandra_settings: CassandraSettings) -> Iterator[object]:
    """A driver session bound to the session keyspace."""
    from segflow.db.session import connect

    cluster, session = connect(cassandra_settings, cassandra_settings.keyspace)
    yield session
    cluster.shutdown()


@pytest.fixture
def kafka_settings(endpoints: Endpoints) -> Iterator[KafkaSettings]:
    """Kafka settings whose commands and dead-letter topics are new and unique to this test."""
    with unique_topics(endpoints) as settings:
        yield settings


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Names unique to this test run (topics, groups, segment ids)."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:10]}"
