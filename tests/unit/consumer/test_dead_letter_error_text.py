"""``dlq.error`` never quotes a user key, whatever rule produced the text (issue 13).

The texts are produced exactly as the planner does (``str(exc)`` of ``validate_record``'s
``InvalidCommandError``) for records whose user key carries a marker; the dead letter's
headers must not contain the marker. The Kafka key is
unrelated on purpose (a direct producer may key records otherwise), so the redaction of
quoted literals is what is tested, not only the removal of the record's key. (The codec's
``DecodeError`` texts carry no record content at all: sizes, hex of the marker, exception
names.)
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.dead_letter import DeadLetter, headers_of, scrub_error
from segflow.contract.models import InvalidCommandError, validate_record
from segflow.contract.records import command_record

MARKER = "Qz7Mk"
FUZZ = settings(
    deadline=timedelta(seconds=5),
    max_examples=400,
    suppress_health_check=[HealthCheck.too_slow],
)
around = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
prefixes = st.sampled_from(
    ["", "email:", "Email:", "user_id:", "user_agent:", "account:", "email_hash:", "bogus:"]
)


def _dlq_error(error: str, kafka_key: bytes | None) -> bytes:
    letter = DeadLetter("t", 0, 1, kafka_key, b"v", "invalid", error, None, [])
    value = dict(headers_of(letter))["dlq.error"]
    assert isinstance(value, bytes)
    return value


def _record(user_key: str, operation: str = "FEED_ADD") -> dict[str, object]:
    return dict(
        command_record(
            command_id="c1",
            execution_id="e1",
            operation=operation,
            version=1,
            user_key=user_key,
            segment_ids=["s1"],
        )
    )


def _error_of(record: dict[str, object]) -> str | None:
    """The planner's ``invalid`` text for ``record`` (None when it is valid)."""
    try:
        validate_record(record)
    except InvalidCommandError as exc:
        return str(exc)
    return None


@FUZZ
@given(prefix=prefixes, before=around, after=around, kafka_key=st.none() | st.binary(max_size=8))
def test_invalid_user_keys_are_never_quoted(
    prefix: str, before: str, after: str, kafka_key: bytes | None
) -> None:
    user_key = f"{prefix}{before}{MARKER}{after}"
    for operation in ("FEED_ADD", "OVERRIDE_ADD", "REPLACE_BEGIN"):
        error = _error_of(_record(user_key, operation))
        if error is not None:
            assert MARKER.encode() not in _dlq_error(error, kafka_key)


def test_what_stays_readable() -> None:
    # Segment references and enum symbols are kept: they say what to fix, and are no PII.
    assert scrub_error("segment 'seg-1' is not registered", b"user_id:u1") == (
        "segment 'seg-1' is not registered"
    )
    assert "'FEED_ADD'" in scrub_error("operation: Input should be 'FEED_ADD'", None)
    assert scrub_error("user key 'jane@x.com' has no type prefix", None) == (
        "user key '<redacted>' has no type prefix"
    )
    assert "user_id:u1" not in scrub_error("failed for user_id:u1 here", None)
