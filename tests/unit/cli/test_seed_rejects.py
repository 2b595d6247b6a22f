"""Rejects-file notices (issue 14): a past expiry is stated as a removal, not a reject."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.cli.conftest import Run


def _lines(*objects: dict[str, object]) -> bytes:
    return b"".join(json.dumps(obj).encode() + b"\n" for obj in objects)


BASE = {"operation": "UPDATE", "expiration_duration": 0, "email_hash": "h", "segment_id": "1"}


def test_past_expiry_is_a_notice_in_the_rejects_file_not_a_rejected_line(
    segflow: Callable[..., Run], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "past.ndjson"
    path.write_bytes(_lines({**BASE, "expiration_ts": 1_000_000_000_000}, BASE))
    run = segflow("upload", str(path), "--dry-run", "-o", "json")
    assert run.code == 0, run.err
    report = json.loads(run.out.splitlines()[0])
    assert report["commands_produced"] == 2
    assert report["lines_rejected"] == 0
    rejects = [json.loads(line) for line in (tmp_path / "past.ndjson.rejects.ndjson").open()]
    assert len(rejects) == 1
    assert rejects[0]["line"] == 1
    assert rejects[0]["notice"] is True
    assert "applied as a removal" in rejects[0]["reason"]


def test_past_expiry_under_strict_and_seconds_are_rejected_lines(
    segflow: Callable[..., Run], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.ndjson"
    path.write_bytes(
        _lines({**BASE, "expiration_ts": 1_000_000_000_000}, {**BASE, "expiration_ts": 1893456000})
    )
    run = segflow("upload", str(path), "--dry-run", "--strict", "--max-errors", "10", "-o", "json")
    report = json.loads(run.out.splitlines()[0])
    assert report["commands_produced"] == 0
    assert report["lines_rejected"] == 2
    rejects = [json.loads(line) for line in (tmp_path / "bad.ndjson.rejects.ndjson").open()]
    assert [r["field"] for r in rejects] == ["expiration_ts", "expiration_ts"]
    assert "--strict" in rejects[0]["reason"]
    assert "seconds since the epoch" in rejects[1]["reason"]
    assert "send 1893456000000" in rejects[1]["reason"]
    assert all("notice" not in r for r in rejects)
