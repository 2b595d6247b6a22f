"""The export file writer (atomic, gzip or plain) and the on-disk event spill."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from http_api.export.events import EventSpill
from http_api.export.file_writer import JsonObjectWriter
from http_api.export.profile_entry import ExportEvent

entries = st.dictionaries(
    st.text(max_size=20),
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=8,
    ),
    max_size=20,
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=100)
@given(data=entries, compress=st.booleans())
def test_written_object_reads_back_equal(
    tmp_path: Path, data: dict[str, object], compress: bool
) -> None:
    target = tmp_path / "out.json"
    with JsonObjectWriter(target, compress=compress) as writer:
        for key, value in data.items():
            writer.add(key, value)
        stats = writer.commit()
    raw = target.read_bytes()
    text = gzip.decompress(raw) if compress else raw
    assert json.loads(text) == data
    assert stats.entries == len(data)
    assert stats.json_bytes == len(text)
    assert stats.file_bytes == len(raw)
    assert not list(tmp_path.glob("*.tmp"))


def test_nothing_appears_until_commit_and_abort_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.json.gz"

    def build_then_fail() -> None:
        with JsonObjectWriter(target, compress=True) as writer:
            writer.add("a", {"x": 1})
            assert not target.exists()
            assert writer.tmp_path.exists()
            raise RuntimeError("build failed")

    with pytest.raises(RuntimeError):
        build_then_fail()
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_spill_takes_each_users_events_once_and_leaves_the_rest(tmp_path: Path) -> None:
    spill = EventSpill(tmp_path / "spill.sqlite")
    events = [ExportEvent("s", f"u{i % 5}", 1000 + i, f"c{i}", "add", i) for i in range(50)]
    assert spill.fill(iter(events)) == 50
    taken = spill.take("u1")
    assert sorted(e.command_id for e in taken) == sorted(f"c{i}" for i in range(1, 50, 5))
    assert spill.take("u1") == []
    left = dict(spill.leftovers())
    assert sorted(left) == ["u0", "u2", "u3", "u4"]
    assert sum(len(v) for v in left.values()) == 40
    assert left["u0"][0] == next(e for e in events if e.user_key == "u0")
    spill.close()
    assert not (tmp_path / "spill.sqlite").exists()
