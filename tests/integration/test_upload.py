"""``segflow upload`` against the real broker and Cassandra: what lands on the topic, exactly."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from segflow.contract.codec import decode
from segflow.db.executions import Status
from segflow.headers import EXECUTION_ID, SEQUENCE, SOURCE_FILE, SOURCE_LINE
from tests.support.consumer_harness import wait_until
from tests.support.uploads import Uploads

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "producer_tools" / "examples"


def mediarithmics_file(path: Path, lines: int, bad_every: int | None = None) -> set[int]:
    """Write ``lines`` UPDATE lines; every ``bad_every``-th is invalid. Returns bad lines."""
    bad: set[int] = set()
    with path.open("w") as out:
        for line in range(1, lines + 1):
            if bad_every and line % bad_every == 0:
                out.write(
                    json.dumps(
                        {
                            "operation": "UPSERT",
                            "expiration_duration": 0,
                            "user_agent_id": f"ua-{line}",
                            "segment_id": "s1",
                        }
                    )
                    + "\n"
                )
                bad.add(line)
            else:
                out.write(
                    json.dumps(
                        {
                            "operation": "UPDATE",
                            "expiration_duration": 0,
                            "user_agent_id": f"ua-{line % 997}",
                            "segment_id": f"s{line % 3}",
                        }
                    )
                    + "\n"
                )
    return bad


def test_every_format_lands_exactly_on_the_topic(uploads: Uploads, tmp_path: Path) -> None:
    expected_commands = {
        "mediarithmics_segments.ndjson": 5,
        "mediarithmics_segments.csv": 3,
        "village_overrides.ndjson": 4,
        "segmenter_segment.json": 5,
    }
    for name in expected_commands:
        result = uploads.run(
            ["upload", "--max-errors", "1", "--rejects", str(tmp_path), str(EXAMPLES / name)]
        )
        assert result.returncode == 0, result.stderr
    total = sum(expected_commands.values())
    messages = uploads.read(total)
    assert len(messages) == total
    per_file: dict[str, list[Any]] = defaultdict(list)
    for message in messages:
        headers = dict(message.headers())
        record = decode(message.value())
        assert headers[EXECUTION_ID].decode() == record["execution_id"]
        assert record["origin"] is not None
        assert headers[SOURCE_FILE].decode() == record["origin"]["file"]
        assert int(headers[SOURCE_LINE]) == record["origin"]["line"]
        per_file[record["origin"]["file"]].append((message, record, int(headers[SEQUENCE])))
    assert {name: len(items) for name, items in per_file.items()} == expected_commands
    for items in per_file.values():
        assert sorted(seq for _, _, seq in items) == list(range(len(items)))
        by_key: dict[bytes, list[tuple[int, int, int]]] = defaultdict(list)
        for message, record, seq in sorted(items, key=lambda item: item[2]):
            if record["operation"].startswith("REPLACE"):
                assert message.key() == record["segment_ids"][0].encode()
            else:
                assert message.key() == record["user_key"].encode()
            by_key[message.key()].append((message.partition(), message.offset(), seq))
        for placements in by_key.values():
            assert len({partition for partition, _, _ in placements}) == 1
            offsets = [offset for _, offset, _ in placements]
            assert offsets == sorted(offsets), "per-key produce order was not kept"
    segmenter = [
        record["operation"]
        for _, record, _ in sorted(per_file["segmenter_segment.json"], key=lambda item: item[2])
    ]
    assert segmenter == ["REPLACE_BEGIN", *["REPLACE_MEMBER"] * 3, "REPLACE_END"]
    rejects = [
        json.loads(line)
        for line in (tmp_path / "mediarithmics_segments.ndjson.rejects.ndjson")
        .read_text()
        .splitlines()
    ]
    assert [(r["line"], r["field"]) for r in rejects] == [(6, "compartment_id")]


def test_reupload_reuses_the_execution_and_adds_nothing(uploads: Uploads, tmp_path: Path) -> None:
    source = EXAMPLES / "village_overrides.ndjson"
    first = uploads.run(["upload", str(source)])
    assert first.returncode == 0, first.stderr
    second = uploads.run(["upload", str(source)])
    assert second.returncode == 0, second.stderr
    assert "nothing produced again" in second.stderr
    assert len(uploads.read(4)) == 4
    forced = uploads.run(["upload", "--new-execution", str(source)])
    assert forced.returncode == 0, forced.stderr
    messages = uploads.read(8)
    assert len(messages) == 8
    executions = {decode(m.value())["execution_id"] for m in messages}
    assert len(executions) == 2
    store = uploads.store
    for eid in executions:
        execution = store.get(eid)
        assert execution is not None
        assert (execution.status, execution.commands_produced) == (Status.SUCCEEDED, 4)


def test_one_percent_bad_lines_are_rejected_and_the_rest_produced(
    uploads: Uploads, tmp_path: Path
) -> None:
    source = tmp_path / "fifty_k.ndjson"
    bad = mediarithmics_file(source, 50_000, bad_every=100)
    rejects = tmp_path / "rejects.ndjson"
    result = uploads.run(["upload", "--max-errors", "1%", "--rejects", str(rejects), str(source)])
    assert result.returncode == 0, result.stderr
    listed = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert {entry["line"] for entry in listed} == bad
    assert all(entry["field"] == "operation" and entry["raw"] for entry in listed)
    messages = uploads.read(50_000 - len(bad), timeout_s=120)
    assert len(messages) == 50_000 - len(bad)
    lines = {_line(m) for m in messages}
    assert lines == set(range(1, 50_001)) - bad
    eid = decode(messages[0].value())["execution_id"]
    execution = uploads.store.get(eid)
    assert execution is not None
    assert (execution.lines_read, execution.lines_rejected, execution.commands_produced) == (
        50_000,
        500,
        49_500,
    )


def test_max_errors_crossed_fails_the_execution(uploads: Uploads, tmp_path: Path) -> None:
    source = tmp_path / "eleven_bad.ndjson"
    bad = mediarithmics_file(source, 1100, bad_every=100)
    assert len(bad) == 11
    result = uploads.run(
        ["upload", "--max-errors", "10", "--rejects", str(tmp_path / "r.ndjson"), str(source)]
    )
    assert result.returncode == 1
    assert "exceed --max-errors 10" in result.stderr
    assert "Traceback" not in result.stderr
    assert len((tmp_path / "r.ndjson").read_text().splitlines()) == 11
    produced = uploads.read(1089, timeout_s=30)
    eid = decode(produced[0].value())["execution_id"]
    execution = uploads.store.get(eid)
    assert execution is not None
    assert execution.status is Status.FAILED
    assert execution.error is not None
    assert "--max-errors" in execution.error
    # Reading stopped at the 11th bad line (line 1100): the 1089 lines before it were sent.
    assert execution.commands_produced == len(produced) == 1089


def test_killed_upload_rerun_completes_the_same_execution(uploads: Uploads, tmp_path: Path) -> None:
    source = tmp_path / "big.ndjson"
    mediarithmics_file(source, 300_000)
    store = uploads.store
    proc = uploads.start(
        ["upload", str(source)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(
            lambda: uploads.topic_size() > 0,
            120,
            "the upload to start producing",
            every_s=0.02,
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    killed = uploads.latest()
    assert killed is not None
    assert killed.status is Status.RUNNING
    rerun = uploads.run(["upload", str(source)])
    assert rerun.returncode == 0, rerun.stderr
    assert f"reusing execution {killed.execution_id}" in rerun.stderr
    done = store.get(killed.execution_id)
    assert done is not None
    assert (done.status, done.commands_produced) == (Status.SUCCEEDED, 300_000)
    total = uploads.topic_size()
    assert total >= 300_000
    messages = uploads.read(total, timeout_s=300)
    assert len(messages) == total
    sequences = {int(dict(m.headers())[SEQUENCE]) for m in messages}
    assert sequences == set(range(300_000)), "the re-run left a gap"
    ids: dict[str, tuple[int, Any]] = {}
    for message in messages:
        record = decode(message.value())
        previous = ids.setdefault(record["command_id"], (record["version"], record["origin"]))
        assert previous == (record["version"], record["origin"])


def _line(message: Any) -> int:
    origin = decode(message.value())["origin"]
    assert origin is not None
    return origin["line"]


def test_ctrl_c_flushes_and_marks_the_execution_canceled(uploads: Uploads, tmp_path: Path) -> None:
    source = tmp_path / "interrupted.ndjson"
    lines = 1_000_000
    # Large enough that the upload (~125-170k lines/s) is still producing 1 s after it starts.
    mediarithmics_file(source, lines)
    proc = uploads.start(["upload", str(source)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # RUNNING is recorded just before the first record is produced; a fresh topic-size
        # probe can take longer than the whole upload on a cold broker, so it is not the cue.
        wait_until(
            lambda: getattr(uploads.latest(), "status", None) is Status.RUNNING,
            120,
            "the upload to start",
            every_s=0.02,
        )
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    execution = uploads.latest()
    assert execution is not None
    assert execution.status is Status.CANCELED
    # Everything counted as produced was flushed to the topic before exiting.
    assert uploads.topic_size() == execution.commands_produced
    assert 0 < execution.commands_produced < lines


def test_document_cut_off_fails_the_execution_and_never_clears(
    uploads: Uploads, tmp_path: Path
) -> None:
    source = tmp_path / "cut.json"
    source.write_text(
        '{"id": "seg-cut", "name": "Cut", "persons": [{"externalId": "a"}, '
        '{"externalId": "b"}, {"extern'
    )
    result = uploads.run(
        ["upload", "--max-errors", "100%", "--rejects", str(tmp_path / "r"), str(source)]
    )
    assert result.returncode == 1
    assert "the rest of the file was not read" in result.stderr
    messages = uploads.read(3, timeout_s=20)
    operations = [decode(m.value())["operation"] for m in messages]
    assert "REPLACE_END" not in operations
    execution = uploads.latest()
    assert execution is not None
    assert execution.status is Status.FAILED


def test_wait_reports_the_final_counts_and_fails_on_dead_letters(
    uploads: Uploads, tmp_path: Path
) -> None:
    from segflow.db.registry import SegmentRegistry
    from tests.support.consumer_harness import consume_settings, running_consumer

    registry = SegmentRegistry(uploads.session, 4, 0)
    registry.create("4242", bucket_count=4)
    known = EXAMPLES / "village_overrides.ndjson"
    unknown = tmp_path / "unknown_segment.ndjson"
    unknown.write_text('{"user": "u-1", "segment_id": 999999999, "user_status": "add"}\n')
    with running_consumer(consume_settings(uploads.kafka, uploads.cassandra)):
        ok = uploads.run(["upload", "--wait", "--timeout", "60", str(known)])
        assert ok.returncode == 0, ok.stderr
        assert "4 applied, 0 dead-lettered" in ok.stderr.splitlines()[-1]
        dead = uploads.run(["upload", "--wait", "--timeout", "60", str(unknown)])
    assert dead.returncode == 1
    assert "0 applied, 1 dead-lettered" in dead.stderr


def test_dry_run_validates_without_producing_and_cancel_ends_an_execution(
    uploads: Uploads, tmp_path: Path
) -> None:
    source = tmp_path / "dry.ndjson"
    bad = mediarithmics_file(source, 500, bad_every=50)
    rejects = tmp_path / "dry.rejects.ndjson"
    result = uploads.run(
        ["upload", "--dry-run", "--max-errors", "10", "--rejects", str(rejects), str(source)]
    )
    assert result.returncode == 0, result.stderr
    assert "490 valid commands, 10 rejected" in result.stderr
    assert {json.loads(line)["line"] for line in rejects.read_text().splitlines()} == bad
    assert uploads.topic_size() == 0
    assert uploads.latest() is None

    store = uploads.store
    pending = store.create(uploads.import_name, "x.ndjson", "village", uuid.uuid4().hex, 1)
    canceled = uploads.run(["executions", "cancel", pending.execution_id])
    assert canceled.returncode == 0, canceled.stderr
    after = store.get(pending.execution_id)
    assert after is not None
    assert after.status is Status.CANCELED
    again = uploads.run(["executions", "cancel", pending.execution_id])
    assert again.returncode == 1
    assert "already finished" in again.stderr
    shown = uploads.run(["executions", "show", pending.execution_id])
    assert json.loads(shown.stdout)["status"] == "CANCELED"
