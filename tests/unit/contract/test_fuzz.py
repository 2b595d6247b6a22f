"""Any input to any reader yields commands or per-record errors: never a crash, never a hang.

Random bytes exercise the framing (gzip, BOM, lines, CSV quoting, JSON syntax); generated
near-valid documents (known field names, values of every JSON type) exercise the validation.
Every command a reader yields must pass the contract model and encode.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producer_tools.readers import FORMATS, ReaderLimits, make_reader
from producer_tools.readers.mediarithmics import KNOWN_FIELDS as MEDIARITHMICS_FIELDS
from producer_tools.readers.segmenter import DEFINITION_FIELDS, PERSON_FIELDS
from producer_tools.readers.village import KNOWN_FIELDS as VILLAGE_FIELDS
from segflow.contract.codec import decode, encode
from segflow.contract.errors import RecordError
from segflow.contract.models import validate_record
from tests.unit.contract.helpers import context

FUZZ = settings(
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SMALL_LIMITS = ReaderLimits(
    max_line_bytes=512,
    max_decompressed_bytes=64 * 1024,
    max_data_bag_bytes=128,
    max_metadata_bytes=128,
    max_text_chars=64,
    max_segments_per_line=5,
    max_person_events=40,
)


def _check(format_name: str, data: bytes, strict: bool, limits: ReaderLimits) -> None:
    reader = make_reader(format_name, context("fuzz.input", strict=strict, limits=limits))
    for position, item in reader.read(io.BytesIO(data)):
        assert isinstance(position, int)
        assert position >= 0
        if isinstance(item, RecordError):
            assert item.file == "fuzz.input"
            assert item.reason
            assert item.raw is None or len(item.raw) <= limits.raw_preview_chars + 40
        else:
            validate_record(item)
            assert decode(encode(item)) == item
    for warning in reader.warnings:
        assert warning.count >= 1


@FUZZ
@given(
    st.sampled_from(FORMATS),
    st.binary(max_size=2000),
    st.booleans(),
    st.booleans(),
)
def test_any_bytes(format_name: str, data: bytes, compress: bool, strict: bool) -> None:
    if compress:
        data = gzip.compress(data)
    _check(format_name, data, strict, SMALL_LIMITS)


@FUZZ
@given(st.sampled_from(FORMATS), st.binary(min_size=10, max_size=400), st.integers(0, 400))
def test_damaged_gzip(format_name: str, data: bytes, cut: int) -> None:
    packed = gzip.compress(data)
    _check(format_name, packed[:cut] + packed[cut + 1 :], False, SMALL_LIMITS)


json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["UPDATE", "DELETE", "add", "block", "reset", "", " x ", "a@b.c", "0"])
)
json_value = st.recursive(
    json_scalar,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=6,
)


def _objects(fields: frozenset[str] | set[str]) -> st.SearchStrategy[dict[str, Any]]:
    keys = st.sampled_from(sorted(fields)) | st.text(max_size=6)
    return st.dictionaries(keys, json_value, max_size=8)


@FUZZ
@given(
    st.sampled_from(["mediarithmics-ndjson", "village"]),
    st.lists(_objects(MEDIARITHMICS_FIELDS | VILLAGE_FIELDS), max_size=8),
    st.booleans(),
)
def test_near_valid_ndjson(format_name: str, objects: list[dict[str, Any]], strict: bool) -> None:
    data = b"".join(json.dumps(o).encode() + b"\n" for o in objects)
    _check(format_name, data, strict, ReaderLimits())


@FUZZ
@given(
    st.lists(
        st.sampled_from(sorted(MEDIARITHMICS_FIELDS)) | st.text(max_size=4), min_size=1, max_size=8
    ),
    st.lists(st.lists(json_scalar.map(str) | json_value.map(json.dumps), max_size=9), max_size=6),
    st.sampled_from([",", ";", "\t"]),
)
def test_near_valid_csv(header: list[str], rows: list[list[str]], delimiter: str) -> None:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["operation", "expiration_duration", *header])
    writer.writerows(rows)
    _check(
        "mediarithmics-csv", out.getvalue().encode("utf-8", "surrogatepass"), False, ReaderLimits()
    )


@FUZZ
@given(
    _objects(set(DEFINITION_FIELDS)),
    st.lists(_objects(set(PERSON_FIELDS)) | json_value, max_size=6),
    st.integers(0, 3),
    st.integers(0, 10_000),
)
def test_near_valid_segmenter(
    definition: dict[str, Any], persons: list[Any], where: int, cut: int
) -> None:
    items = list(definition.items())
    items.insert(min(where, len(items)), ("persons", persons))
    data = json.dumps(dict(items)).encode()
    _check("segmenter", data, False, ReaderLimits())
    _check("segmenter", data[: cut % (len(data) + 1)], False, ReaderLimits())
