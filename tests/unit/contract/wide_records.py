"""Contract-valid records over the full range of every field, and damaged encodings of them.

Hypothesis draws cost ~100 µs per structured record, so the boundary tests let hypothesis draw
a seed (shrinkable, printed on failure) and expand it here into a batch of records with
``random.Random``: every operation, longs to the ends of their ranges (versions 1 to
``MAX_VERSION``, ``member_count`` and ``origin.line`` to ±2^63), strings from empty to hundreds
of thousands of characters (any code point Avro can carry), segment lists up to the contract's
1000, thousands of substitution tags. Every record built here passes ``validate_record``
(a test checks a sample), so the consumer must apply it: never dead-letter, never crash.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from segflow.contract.ids import MAX_LONG, MAX_TIMESTAMP_MS, MAX_VERSION
from segflow.contract.models import MAX_SEGMENT_REF_CHARS, MAX_SEGMENTS_PER_COMMAND
from segflow.contract.records import CommandRecord, command_record
from segflow.contract.user_keys import MAX_IDENTIFIER_CHARS

OPERATIONS = (
    "FEED_ADD",
    "FEED_REMOVE",
    "OVERRIDE_ADD",
    "OVERRIDE_BLOCK",
    "OVERRIDE_RESET",
    "REPLACE_BEGIN",
    "REPLACE_MEMBER",
    "REPLACE_END",
)
SOURCES = ("MEDIARITHMICS", "VILLAGE", "SEGMENTER", "PRODUCER")
MIN_LONG = -(1 << 63)
# Printable characters from every plane Avro can carry as UTF-8 (no surrogates).
_ALPHABET = (
    "abcXYZ019-_.@+ "
    "éßÆİıﬃ"  # letters whose case mapping changes length
    "中文日本語한국어"
    "\u00a0\u2028\u200b\ufeff"  # odd spaces and invisibles
    "😀𝔘𐍈\U0010fffd"
)


def _edge_long(rng: random.Random, low: int, high: int) -> int:
    """A value in [low, high], biased to the ends and to powers of two."""
    pick = rng.random()
    if pick < 0.2:
        return rng.choice((low, high, low + 1, high - 1))
    if pick < 0.4:
        candidates = [v for b in (7, 14, 31, 32, 53, 62, 63) for v in (1 << b, (1 << b) - 1)]
        candidates += [-v for v in candidates]
        fitting = [v for v in candidates if low <= v <= high]
        if fitting:
            return rng.choice(fitting)
    return rng.randint(low, high)


def _text(rng: random.Random, huge: bool = True, low: int = 0, high: int | None = None) -> str:
    pick = rng.random()
    if huge and pick < 0.03:
        size = rng.choice((65_535, 65_536, 100_000, 300_000)) if pick < 0.01 else 4000
    elif pick < 0.5:
        size = rng.randint(0, 8)
    else:
        size = rng.randint(0, 300)
    size = max(low, size if high is None else min(size, high))
    if rng.random() < 0.5:
        # Varied characters, built from a repeated random chunk so huge texts stay cheap.
        chunk = "".join(rng.choices(_ALPHABET, k=min(size, 64)))
        return (chunk * (size // 64 + 1))[:size]
    return rng.choice(_ALPHABET) * size


def _identifier(rng: random.Random, colon: bool = True) -> str:
    """A clean identifier (trimmed, non-empty, no control characters, ≤ 512 chars)."""
    size = rng.choice((1, 2, 12, 40, MAX_IDENTIFIER_CHARS))
    text = "".join(rng.choices(_ALPHABET.replace(" ", "") + (":" if colon else ""), k=size))
    return text.strip() or "x"


def _user_key(rng: random.Random) -> str:
    kind = rng.choice(("account", "email_hash", "user_agent", "email", "user_id"))
    if kind == "account":
        return f"account:{_identifier(rng, colon=False)}:{_identifier(rng)}"
    if kind == "email":
        local = _identifier(rng).lower()[:200] or "x"
        domain = _identifier(rng).lower()[:200].replace("@", "") or "y"
        return f"email:{local.strip() or 'x'}@{domain.strip() or 'y'}"
    return f"{kind}:{_identifier(rng)}"


def _refs(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct segment references of 1 to 256 characters."""
    if count == 1:
        size = rng.choice((1, 8, MAX_SEGMENT_REF_CHARS))
        return ["".join(rng.choices(_ALPHABET, k=size))]
    base = "".join(rng.choices(_ALPHABET, k=rng.choice((0, 8, MAX_SEGMENT_REF_CHARS - 4))))
    return [f"{i}{base}" for i in range(count)]


def _count(rng: random.Random, maximum: int) -> int:
    pick = rng.random()
    if pick < 0.003:
        return maximum
    if pick < 0.008:
        return rng.randint(0, maximum)
    return rng.choice((0, 1, 1, 1, 2, 3))


def _json_text(rng: random.Random, obj: bool) -> str:
    value: Any
    pick = rng.random()
    if pick < 0.05:
        value = {"big": "x" * rng.choice((10_000, 200_000))}
    elif pick < 0.1:
        depth = rng.randint(1, 1000)  # orjson's limit is 1024 levels
        return '{"deep":' + "[" * depth + "]" * depth + "}"
    else:
        value = {
            _text(rng, huge=False): rng.choice(
                (None, True, rng.randint(-(2**63), 2**64 - 1), rng.random(), _text(rng, huge=False))
            )
            for _ in range(rng.randint(0, 5))
        }
    if not obj and rng.random() < 0.3:
        value = rng.choice((1, "s", [1, 2], None, 1.5e300))
    return json.dumps(value, ensure_ascii=rng.random() < 0.5)


def _tags(rng: random.Random, count: int) -> list[dict[str, str]]:
    """``count`` substitution tags; long lists repeat a few names (the last value wins)."""
    pool = [
        {"tag": _text(rng, huge=False, low=1) or "t", "value": _text(rng, huge=False)}
        for _ in range(min(count, 3))
    ]
    if count <= 3:
        return pool
    return [
        {"tag": f"{i % 97}{pool[0]['tag']}", "value": pool[i % 3]["value"]} for i in range(count)
    ]


def wide_record(rng: random.Random) -> CommandRecord:
    """One contract-valid record, any operation, fields anywhere in their ranges."""
    operation = rng.choice(OPERATIONS)
    fields: dict[str, Any] = {
        "origin": None
        if rng.random() < 0.2
        else {"file": _text(rng), "line": _edge_long(rng, MIN_LONG, MAX_LONG)}
    }
    user_key: str | None = _user_key(rng)
    ids = _refs(rng, _count(rng, MAX_SEGMENTS_PER_COMMAND))
    names = _refs(rng, _count(rng, MAX_SEGMENTS_PER_COMMAND))
    if not ids and not names:
        ids = _refs(rng, 1)
    if operation.startswith("REPLACE"):
        ids, names = _refs(rng, 1), []
    if operation == "FEED_ADD":
        if rng.random() < 0.7:
            fields["expires_at_ms"] = _edge_long(rng, 0, MAX_TIMESTAMP_MS)
        if rng.random() < 0.5:
            fields["data_bag"] = _json_text(rng, obj=False)
    elif operation.startswith("OVERRIDE"):
        if rng.random() < 0.5:
            fields["metadata"] = _json_text(rng, obj=True)
        for name in ("reference_id", "description"):
            if rng.random() < 0.5:
                fields[name] = _text(rng)
    elif operation in ("REPLACE_BEGIN", "REPLACE_END"):
        user_key = None
        if operation == "REPLACE_BEGIN" or rng.random() < 0.5:
            fields["segment"] = {
                "id": ids[0],
                **{
                    name: None if rng.random() < 0.3 else _text(rng)
                    for name in ("name", "description", "broadcast_medium_id", "segment_type")
                },
            }
        if operation == "REPLACE_END":
            fields["member_count"] = _edge_long(rng, 0, MAX_LONG)
    elif operation == "REPLACE_MEMBER":
        external_id = _identifier(rng)
        user_key = f"user_id:{external_id}"
        pick = rng.random()
        tags = rng.choice((0, 1, 3)) if pick < 0.98 else rng.choice((5000, 20_000))
        fields["person"] = {
            "external_id": external_id,
            **{
                name: None if rng.random() < 0.3 else _text(rng)
                for name in ("first_name", "last_name", "email", "phone")
            },
            "substitution_tags": _tags(rng, tags),
        }
    return command_record(
        command_id=_text(rng, huge=False, low=1, high=128),
        execution_id=_text(rng, huge=False, low=1, high=128),
        source=rng.choice(SOURCES),
        operation=operation,
        version=_edge_long(rng, 1, MAX_VERSION),
        user_key=user_key,
        segment_ids=ids,
        segment_technical_names=names,
        **fields,
    )


def damaged(rng: random.Random, data: bytes) -> bytes:
    """``data`` with a few bytes flipped, cut, inserted, or a length/count pushed to extremes."""
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4))):
        pick = rng.random()
        at = rng.randrange(len(out) + 1)
        if pick < 0.35 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif pick < 0.5:
            del out[at:]
        elif pick < 0.65:
            out[at:at] = rng.randbytes(rng.randint(1, 12))
        elif pick < 0.8:
            # A varint of ±2^62..2^63 (or an over-long one) where a length or count may be.
            out[at:at] = rng.choice(
                (b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01", b"\xff" * 11, b"\x01", b"\x7f")
            )
        elif out:
            del out[at : at + rng.randint(1, 8)]
    return bytes(out)


# Records per hypothesis example, and the profiles: the "ci" profile (tests/conftest.py, the
# default) runs 1000 examples = 100k records per boundary test; "dev" runs 60.
BATCH = 100
settings.register_profile(
    "boundary-ci",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "boundary-dev", parent=settings.get_profile("boundary-ci"), max_examples=60
)
BOUNDARY = settings.get_profile(f"boundary-{os.environ.get('HYPOTHESIS_PROFILE', 'ci')}")
seeds = st.integers(0, 2**64 - 1)
