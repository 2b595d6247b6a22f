"""Write-path settings refused at load: a batch's write time must end inside the poll
interval and the liveness window, and the events TTL inside Cassandra's TTL limit."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from segflow.db.layout import MAX_TTL_S
from segflow.settings import (
    LIVENESS_STALL_S,
    MAX_POLL_INTERVAL_S,
    CassandraSettings,
    ConsumerOptions,
    ConsumeSettings,
)


def test_defaults_bound_a_batch_below_the_liveness_window_and_poll_interval() -> None:
    settings = ConsumeSettings()
    worst = settings.consumer.write_deadline_s + settings.cassandra.request_timeout_s
    assert worst < LIVENESS_STALL_S <= MAX_POLL_INTERVAL_S


@pytest.mark.parametrize(("deadline", "timeout"), [(115.0, 10.0), (60.0, 60.0), (200.0, 1.0)])
def test_a_write_deadline_past_the_liveness_window_is_refused(
    deadline: float, timeout: float
) -> None:
    with pytest.raises(ValidationError, match="write_deadline_s"):
        ConsumeSettings(
            consumer=ConsumerOptions(write_deadline_s=deadline),
            cassandra=CassandraSettings(request_timeout_s=timeout),
        )


def test_events_ttl_is_bounded_by_cassandras_ttl_limit() -> None:
    assert ConsumerOptions(events_ttl_days=MAX_TTL_S // 86400).events_ttl_days == 7300
    with pytest.raises(ValidationError, match="events_ttl_days"):
        ConsumerOptions(events_ttl_days=MAX_TTL_S // 86400 + 1)


def test_consistency_names_are_checked() -> None:
    assert CassandraSettings().write_consistency == "LOCAL_QUORUM"
    assert CassandraSettings().serial_consistency == "LOCAL_SERIAL"
    with pytest.raises(ValidationError):
        CassandraSettings(write_consistency="LOCAL_TWO")  # type: ignore[arg-type]
