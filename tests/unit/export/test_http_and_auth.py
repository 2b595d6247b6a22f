"""Accept-Encoding parsing and API key checks (pure)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from http_api.export.auth import ApiKeys, key_id
from http_api.export.routes import accepts_gzip


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("deflate, gzip;q=0.5", True),
        ("GZIP", True),
        ("gzip;q=0", False),
        ("br, *", True),
        ("identity", False),
        ("gzip;q=zero", False),
    ],
)
def test_accepts_gzip(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_configured_keys_are_identified_by_a_non_secret_id() -> None:
    keys = ApiKeys([SecretStr("alpha"), SecretStr("beta")], None)
    assert keys.identify("beta") == key_id("beta")
    assert keys.identify("gamma") is None
    assert keys.identify(None) is None
    assert keys.identify("") is None
    assert "beta" not in key_id("beta")


def test_key_files_are_reread_when_the_directory_changes(tmp_path: Path) -> None:
    (tmp_path / "one").write_text("k-one\n")
    (tmp_path / ".hidden").write_text("k-hidden")
    keys = ApiKeys([], tmp_path)
    assert keys.count() == 1
    assert keys.identify("k-one") == key_id("k-one")
    assert keys.identify("k-hidden") is None
    (tmp_path / "one").unlink()
    (tmp_path / "two").write_text("k-two")
    later = os.stat(tmp_path).st_mtime + 5
    os.utime(tmp_path, (later, later))
    assert keys.identify("k-one") is None
    assert keys.identify("k-two") == key_id("k-two")
