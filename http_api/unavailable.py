"""The answer to an unexpected error in a request: 503 with Retry-After, never a 500.

What escapes a handler is almost always the store being slow or away (a driver timeout, an
LWT that timed out at SERIAL): the request may succeed if retried, so clients are told to
retry. Logged by exception type only, because the message may quote request data.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from http_api.responses import json_response

log = logging.getLogger(__name__)


def unavailable_handler(retry_after_s: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    """A Starlette exception handler answering 503 ``retry`` with ``Retry-After``."""

    async def unavailable(request: Request, exc: Exception) -> Response:
        log.error("request failed", extra={"fields": {"error": type(exc).__name__}})
        return json_response(
            503, {"error": "temporarily unavailable; retry"}, {"Retry-After": str(retry_after_s)}
        )

    return unavailable
