"""Format auto-detection and the format registry."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from producer_tools.readers import FORMATS, FormatDetectionError, detect_format, make_reader
from producer_tools.readers.detect import detect_content
from segflow.errors import ExitCode
from tests.unit.contract.helpers import FIXTURES, context


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("seed000_mediarithmics.ndjson", "mediarithmics-ndjson"),
        ("seed001_mediarithmics.ndjson", "mediarithmics-ndjson"),
        ("seed001_mediarithmics.csv", "mediarithmics-csv"),
        ("seed002_village.ndjson", "village"),
        ("seed003_segmenter_update.json", "segmenter"),
        ("seed003_segmenter_empty.json", "segmenter"),
    ],
)
def test_every_seed_fixture_is_detected(fixture: str, expected: str, tmp_path: Path) -> None:
    path = FIXTURES / fixture
    assert detect_format(path).format == expected
    packed = tmp_path / (fixture + ".gz")
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert detect_format(packed).format == expected
    renamed = tmp_path / "upload.bin"
    renamed.write_bytes(path.read_bytes())
    if not expected.endswith("csv"):
        assert detect_format(renamed).format == expected


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("a.json", b'{"id": "s", "persons": []}', "segmenter"),
        ("a.json", b'{"persons": [\n{"externalId": "x"}]}', "segmenter"),
        ("a.ndjson", b'\n\n{"user": "u", "segment_id": 1, "user_status": "add"}\n', "village"),
        (
            "a.csv",
            b"operation;segment_id;expiration_duration;email_hash\nUPDATE;1;0;h\n",
            "mediarithmics-csv",
        ),
        ("a.txt", b"segment_id\toperation\texpiration_duration\n", "mediarithmics-csv"),
        ("a.csv", b"x,y\n1,2\n", "mediarithmics-csv"),
        # The mediarithmics seed's curl body: one object spread over several lines.
        (
            "body.json",
            b'{ \n        "operation": "UPDATE",\n        "expiration_duration": 60,\n'
            b'        "compartment_id": "1", \n        "user_account_id": "u",\n'
            b'        "segment_id": "42"\n      }',
            "mediarithmics-ndjson",
        ),
        (
            "v.json",
            b'{\n  "user": "a@b.c",\n  "segment_id": 1,\n  "user_status": "reset"\n}\n',
            "village",
        ),
    ],
)
def test_content_decides(name: str, head: bytes, expected: str) -> None:
    assert detect_content(name, head).format == expected


@pytest.mark.parametrize(
    ("name", "head", "message"),
    [
        ("a.json", b"", "empty file"),
        ("a.json", b'{"foo": 1}\n', "match no known format"),
        ("a.json", b"{ not json at all", "neither NDJSON nor a Segmenter"),
        ("a.txt", b"hello world\n", "pass --format"),
        ("a.json", b'{"segment_id": "1"}\n', "match no known format"),
    ],
)
def test_undecidable_inputs_ask_for_format(name: str, head: bytes, message: str) -> None:
    with pytest.raises(FormatDetectionError) as caught:
        detect_content(name, head)
    assert message in str(caught.value)
    assert caught.value.exit_code is ExitCode.USAGE


def test_detecting_a_stream_rewinds_it() -> None:
    stream = io.BytesIO((FIXTURES / "seed002_village.ndjson").read_bytes())
    stream.seek(0)
    assert detect_format(stream, "v.ndjson").format == "village"
    assert stream.tell() == 0


def test_registry() -> None:
    assert FORMATS == ("mediarithmics-ndjson", "mediarithmics-csv", "village", "segmenter")
    for name in FORMATS:
        assert make_reader(name, context()).format_name == name
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        make_reader("xml", context())


def test_a_stream_that_cannot_be_rewound_needs_format() -> None:
    class OneWay(io.BytesIO):
        def seekable(self) -> bool:
            return False

    with pytest.raises(FormatDetectionError, match="cannot be rewound"):
        detect_format(OneWay(b"{}"), "x.json")
