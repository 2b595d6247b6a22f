"""Seed fidelity (issue 14.3, 14.4) through the real uploader, topic, consumer and Cassandra.

``segflow upload --wait`` reads the file as a user would send it, the real consumer applies
it, and the state is read back from Cassandra (members, executions) and the rejects file.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from segflow.db.membership import MembershipReader
from segflow.db.registry import SegmentRegistry
from tests.support.consumer_harness import consume_settings, running_consumer
from tests.support.uploads import Uploads

pytestmark = pytest.mark.integration


def _members(uploads: Uploads, segment_id: str) -> set[str]:
    registered = SegmentRegistry(uploads.session, 4, 0).get(segment_id, fresh=True)
    assert registered is not None
    return {m.user_key for m in MembershipReader(uploads.session).members(registered)}


def _report(stdout: str) -> dict[str, object]:
    reports = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1, stdout
    report: dict[str, object] = reports[0]
    return report


def test_expiration_ts_units_and_past_expiries(uploads: Uploads, tmp_path: Path) -> None:
    segment = f"exp-{uuid.uuid4().hex[:8]}"
    SegmentRegistry(uploads.session, 4, 0).create(segment, bucket_count=4)
    now_ms = int(time.time() * 1000)

    def line(user: str, **fields: object) -> str:
        base = {"operation": "UPDATE", "expiration_duration": 0, "segment_id": segment}
        return json.dumps({**base, "email_hash": user, **fields}) + "\n"

    path = tmp_path / "expiries.ndjson"
    path.write_text(
        line("kept")
        + line("future", expiration_ts=now_ms + 86_400_000)
        # In, then an UPDATE whose expiry has passed: applied as a removal, with a notice.
        + line("gone")
        + line("gone", expiration_ts=now_ms - 86_400_000)
        # Seconds where milliseconds are expected: rejected, naming the unit.
        + line("seconds", expiration_ts=now_ms // 1000 + 86_400)
    )
    with running_consumer(consume_settings(uploads.kafka, uploads.cassandra)):
        done = uploads.run(
            ["upload", "--wait", "--timeout", "60", "--max-errors", "1", "-o", "json", str(path)]
        )
    assert done.returncode == 0, done.stderr
    report = _report(done.stdout)
    assert report["status"] == "SUCCEEDED"
    assert report["lines_rejected"] == 1
    assert report["commands_produced"] == report["commands_applied"] == 4
    assert _members(uploads, segment) == {"email_hash:kept", "email_hash:future"}
    rejects = [json.loads(x) for x in (tmp_path / "expiries.ndjson.rejects.ndjson").open()]
    by_line = {r["line"]: r for r in rejects}
    assert set(by_line) == {4, 5}
    assert by_line[4]["notice"] is True
    assert "applied as a removal" in by_line[4]["reason"]
    assert by_line[5]["field"] == "expiration_ts"
    assert "seconds since the epoch" in by_line[5]["reason"]
    assert "notice" not in by_line[5]


def test_the_seed_curl_body_uploaded_as_a_file_is_one_command(
    uploads: Uploads, tmp_path: Path
) -> None:
    segment = f"curl-{uuid.uuid4().hex[:8]}"
    SegmentRegistry(uploads.session, 4, 0).create(segment, bucket_count=4)
    # The mediarithmics seed's execution body, as its curl -d sends it (placeholders filled).
    body = tmp_path / "execution-body.json"
    body.write_text(
        "{ \n"
        '        "operation": "UPDATE",\n'
        '        "expiration_duration": 120,\n'
        '        "compartment_id": "1", \n'
        '        "user_account_id": "ua-42",\n'
        f'        "segment_id": "{segment}"\n'
        "      }"
    )
    with running_consumer(consume_settings(uploads.kafka, uploads.cassandra)):
        done = uploads.run(["upload", "--wait", "--timeout", "60", "-o", "json", str(body)])
    assert done.returncode == 0, done.stderr
    report = _report(done.stdout)
    assert report["format"] == "mediarithmics-ndjson"
    assert report["lines_read"] == 7
    assert report["lines_rejected"] == 0
    assert report["commands_applied"] == 1
    assert _members(uploads, segment) == {"account:1:ua-42"}
