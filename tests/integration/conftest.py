"""Fixtures of the integration tests that several test modules open with."""

from __future__ import annotations

from typing import Any

import pytest

from segflow.settings import CassandraSettings, KafkaSettings
from tests.support.cli_env import segflow_env
from tests.support.uploads import Uploads


@pytest.fixture
def uploads(
    kafka_settings: KafkaSettings, cassandra_settings: CassandraSettings, cassandra_session: Any
) -> Uploads:
    """Fresh topics, the session keyspace and a ``segflow`` runner pointed at both."""
    return Uploads(
        kafka_settings,
        cassandra_settings,
        cassandra_session,
        segflow_env(kafka_settings, cassandra_settings),
    )
