"""Strict JSON parsing shared by the readers and the models (orjson).

orjson is both the fastest parser available (~0.3 µs for a mediarithmics line against
~1.1 µs for ``json``, a quarter of the per-record budget) and the strictest: it refuses
``NaN``/``Infinity`` (which Python's ``json`` accepts and no downstream JSON parser does),
invalid UTF-8, unpaired surrogate escapes (which Avro could not carry as UTF-8) and nesting
deeper than 1024. So a text accepted here is JSON for every consumer of the data.
"""

from __future__ import annotations

from typing import Any

import orjson

# orjson.JSONDecodeError is a ValueError (json.JSONDecodeError); RecursionError never occurs
# (orjson has its own depth limit) but is kept so callers need not know which parser runs.
JSON_ERRORS: tuple[type[Exception], ...] = (ValueError, RecursionError)

strict_loads = orjson.loads


def parse_json_text(text: str | bytes) -> Any:
    """Parse ``text`` as strict JSON (raises ``ValueError`` with the parser's message)."""
    return orjson.loads(text)


def compact_json(value: Any) -> str:
    """Compact, key-order-preserving JSON text (Village metadata objects).

    Raises ``ValueError`` for what JSON cannot hold (non-finite floats, integers beyond 64
    bits, non-string keys).
    """
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise ValueError(f"cannot be written as JSON: {exc}") from None
