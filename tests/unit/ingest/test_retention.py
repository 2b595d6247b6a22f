"""Retention of ingestion error files (``http_api.ingest.retention``) on a real directory."""

from __future__ import annotations

import os
from pathlib import Path

from http_api.ingest.retention import ErrorFileRetention

DAY = 86400.0
NOW = 1_800_000_000.0


def error_file(directory: Path, name: str, age_days: float) -> Path:
    path = directory / name
    path.write_text('{"line": 1}\n')
    os.utime(path, (NOW - age_days * DAY, NOW - age_days * DAY))
    return path


def test_files_older_than_the_retention_are_deleted_and_nothing_else(tmp_path: Path) -> None:
    old = error_file(tmp_path, "a.rejects.ndjson", 31)
    young = error_file(tmp_path, "b.rejects.ndjson", 29)
    other = error_file(tmp_path, "notes.txt", 400)
    deleted: list[int] = []
    retention = ErrorFileRetention(tmp_path, 30, clock=lambda: NOW, on_deleted=deleted.append)
    assert retention.maybe_prune() == 1
    assert (old.exists(), young.exists(), other.exists()) == (False, True, True)
    assert deleted == [1]


def test_pruning_runs_at_most_once_per_interval_and_never_with_zero_days(tmp_path: Path) -> None:
    clock = [NOW]
    retention = ErrorFileRetention(tmp_path, 30, every_s=3600, clock=lambda: clock[0])
    assert retention.maybe_prune() == 0
    error_file(tmp_path, "a.rejects.ndjson", 31)
    clock[0] += 60
    assert retention.maybe_prune() == 0  # within the hour: no scan
    clock[0] += 3600
    assert retention.maybe_prune() == 1
    error_file(tmp_path, "b.rejects.ndjson", 3650)
    assert ErrorFileRetention(tmp_path, 0, clock=lambda: NOW).maybe_prune() == 0


def test_a_missing_directory_is_not_an_error(tmp_path: Path) -> None:
    assert ErrorFileRetention(tmp_path / "absent", 1, clock=lambda: NOW).maybe_prune() == 0
