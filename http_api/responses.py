"""The JSON answer every route of the app gives (export, ingestion, errors)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer (orjson: compact, and byte-exact for the Segmenter success body)."""
    return Response(
        orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers
    )
