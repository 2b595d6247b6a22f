"""``Execution.applied`` (issue 14.7): SUCCEEDED says every command was produced; ``applied``
says whether the consumer also applied them all."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from producer_tools.upload import as_dict
from segflow.db.executions import Applied, Execution, Status


def _execution(status: Status, produced: int, applied: int, dead: int) -> Execution:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    return Execution(
        "e", "i", "f", "fmt", "0" * 64, when, 1, status,
        commands_produced=produced, commands_applied=applied, commands_dead_lettered=dead,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("status", "produced", "applied", "dead", "want"),
    [
        (Status.RUNNING, 5, 5, 0, Applied.APPLYING),  # more may still be produced
        (Status.SUCCEEDED, 5, 4, 0, Applied.APPLYING),
        (Status.SUCCEEDED, 5, 5, 0, Applied.APPLIED),
        (Status.SUCCEEDED, 5, 3, 2, Applied.APPLIED_WITH_DEAD_LETTERS),
        (Status.FAILED, 3, 3, 0, Applied.APPLIED),  # what it produced before failing
        (Status.CANCELED, 0, 0, 0, Applied.APPLIED),
    ],
)
def test_applied_follows_the_consumer_not_the_upload(
    status: Status, produced: int, applied: int, dead: int, want: Applied
) -> None:
    execution = _execution(status, produced, applied, dead)
    assert execution.applied is want
    assert as_dict(execution)["applied"] == want.value
