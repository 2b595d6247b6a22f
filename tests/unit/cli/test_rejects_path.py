"""``upload --rejects`` never destroys a file it was not meant to write (issue 13).

Dry runs, in process: the rejects file is handled exactly as in a real upload, without
Kafka or Cassandra. Each case used to destroy a file: the default path was written through a
symlink, a clean run deleted whatever ``--rejects`` named, and ``--rejects`` equal to the
input truncated (or, on a clean run, deleted) the input.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from tests.unit.cli.conftest import Run

GOOD = json.dumps(
    {
        "operation": "UPDATE",
        "expiration_duration": 0,
        "compartment_id": "1",
        "user_account_id": "a",
        "segment_ids": ["s"],
    }
)
BAD = json.dumps({"operation": "UPSERT", "segment_ids": ["s"]})


def _input(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "in.ndjson"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_a_symlink_at_the_default_rejects_path_is_refused(
    tmp_path: Path, segflow: Callable[..., Run]
) -> None:
    source = _input(tmp_path, GOOD, BAD)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "in.ndjson.rejects.ndjson").symlink_to(victim)
    run = segflow("upload", "--dry-run", "--max-errors", "5", str(source))
    assert run.code == 2, run.err
    assert "symlink" in run.err_lines[-1]
    assert victim.read_text() == "precious\n"


def test_a_clean_run_deletes_no_file(tmp_path: Path, segflow: Callable[..., Run]) -> None:
    source = _input(tmp_path, GOOD)
    named = tmp_path / "notes.txt"
    named.write_text("not a rejects file\n")
    stale = tmp_path / "in.ndjson.rejects.ndjson"
    stale.write_text("old\n")
    assert segflow("upload", "--dry-run", "--rejects", str(named), str(source)).code == 0
    assert named.read_text() == "not a rejects file\n"
    run = segflow("upload", "--dry-run", str(source))
    assert run.code == 0, run.err
    assert stale.read_text() == "old\n"
    assert any("earlier run" in line for line in run.err_lines)


def test_rejects_equal_to_the_input_is_refused(tmp_path: Path, segflow: Callable[..., Run]) -> None:
    source = _input(tmp_path, GOOD, BAD, GOOD)
    content = source.read_bytes()
    link = tmp_path / "hard.ndjson"
    os.link(source, link)
    for rejects in (source, link, tmp_path / "." / "in.ndjson"):
        for lines in ((GOOD, BAD, GOOD), (GOOD,)):
            source.write_text("".join(line + "\n" for line in lines))
            content = source.read_bytes()
            run = segflow(
                "upload", "--dry-run", "--max-errors", "5", "--rejects", str(rejects), str(source)
            )
            assert run.code == 2, run.err
            assert "is the input file" in run.err_lines[-1]
            assert source.read_bytes() == content
