"""What every ingestion request passes before any work: key, tenant, size, concurrency.

In this order, all from the headers and the path, before a single body byte is read:

1. the key (``Authorization: <token>``, ``Authorization: Bearer <token>`` or ``x-api-key``)
   must be accepted -> else 401;
2. it must carry the ``ingest`` permission and be bound to the tenant of the path (datamart,
   network, Segmenter) -> else 403;
3. a declared ``Content-Length`` over the route's cap -> 413 (an undeclared length is
   counted while streaming, see ``body.py``);
4. the key's requests in flight must stay under ``serve.max_concurrent_per_key`` -> else
   429 with ``Retry-After``.

Each API keeps its own error envelope (``ErrorStyle``), so a client of a seed API parses
segflow's errors the way it parses the original's.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from http_api.export.auth import ApiKeys, Grant
from http_api.ingest.metrics import IngestMetrics
from http_api.responses import json_response
from segflow.settings import ServeOptions

ErrorStyle = Callable[[int, str, str | None], dict[str, Any]]
Tenant = Callable[[Request, Grant], bool]
Handler = Callable[[Request, Grant], Awaitable[Response]]


def mediarithmics_error(status: int, message: str, field: str | None) -> dict[str, Any]:
    """mediarithmics' error envelope: ``{"status": "error", "error": ..., "error_code": ...}``."""
    body: dict[str, Any] = {"status": "error", "error": message, "error_code": _code(status)}
    if field is not None:
        body["field"] = field
    return body


def village_error(status: int, message: str, field: str | None) -> dict[str, Any]:
    """Village documents no error body; segflow answers ``{success, error, field}``."""
    return {"success": False, "error": message, "field": field}


def segmenter_error(status: int, message: str, field: str | None) -> dict[str, Any]:
    """Seed 003's failure body: ``{"success": false, "message": ..., "error": ...}``."""
    return {
        "success": False,
        "message": _REASONS.get(status, "Error"),
        "error": message if field is None else f"{field}: {message}",
    }


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    410: "Gone",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _code(status: int) -> str:
    return _REASONS.get(status, "Error").upper().replace(" ", "_")


@dataclass(frozen=True)
class Route:
    """How one ingestion route is guarded."""

    name: str
    style: ErrorStyle
    tenant: Tenant
    max_body: int


class Guard:
    """Runs the checks of the module docstring around an ingestion handler."""

    def __init__(
        self, keys: ApiKeys, options: ServeOptions, metrics: IngestMetrics | None = None
    ) -> None:
        self.keys = keys
        self.options = options
        self.metrics = metrics or IngestMetrics()
        self._in_flight: Counter[str] = Counter()
        self._lock = threading.Lock()

    def error(self, route: Route, status: int, message: str, field: str | None = None) -> Response:
        """An error in the route's envelope, with Retry-After where one applies."""
        headers = None
        if status == 429:
            headers = {"Retry-After": str(self.options.busy_retry_after_s)}
        elif status == 503:
            headers = {"Retry-After": str(self.options.unavailable_retry_after_s)}
        return json_response(status, route.style(status, message, field), headers)

    def wrap(
        self, route: Route, handler: Handler, method: str, template: str
    ) -> Callable[[Request], Awaitable[Response]]:
        """The Starlette endpoint of ``handler`` at ``method template`` (the metrics' labels:
        the route template, never the filled-in path)."""
        metrics = self.metrics
        requests = metrics.requests
        duration = metrics.request_duration.labels(method, template)
        body_bytes = metrics.body_bytes.labels(method, template)

        async def endpoint(request: Request) -> Response:
            begin = time.perf_counter()
            receive = request.receive

            async def counted() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    body_bytes.inc(len(message.get("body", b"")))
                return message

            status = 500
            try:
                response = await self._guarded(route, handler, Request(request.scope, counted))
                status = response.status_code
                return response
            finally:  # an exception is answered 503 by the app's handler
                requests.labels(method, template, str(503 if status == 500 else status)).inc()
                duration.observe(time.perf_counter() - begin)

        endpoint.__name__ = route.name
        endpoint.__doc__ = handler.__doc__
        return endpoint

    async def _guarded(self, route: Route, handler: Handler, request: Request) -> Response:
        grant = self.keys.grant(presented_key(request))
        if grant is None:
            return self.error(route, 401, "missing or invalid API key (Authorization header)")
        if not grant.allows("ingest"):
            return self.error(route, 403, "this API key has no ingest permission")
        if not route.tenant(request, grant):
            return self.error(route, 403, "this API key is not bound to this tenant")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > route.max_body:
            return self.error(route, 413, f"the request body exceeds {route.max_body} bytes", None)
        if not self._enter(grant.key_id):
            return self.error(
                route,
                429,
                f"more than {self.options.max_concurrent_per_key} requests of this API key "
                "in flight; retry later",
            )
        self.metrics.in_flight.inc()
        try:
            return await handler(request, grant)
        finally:
            self.metrics.in_flight.dec()
            self._leave(grant.key_id)

    def _enter(self, key: str) -> bool:
        with self._lock:
            if self._in_flight[key] >= self.options.max_concurrent_per_key:
                return False
            self._in_flight[key] += 1
            return True

    def _leave(self, key: str) -> None:
        with self._lock:
            self._in_flight[key] -= 1
            if self._in_flight[key] <= 0:
                del self._in_flight[key]


def presented_key(request: Request) -> str | None:
    """The key of a request: ``Authorization`` (raw or Bearer) or ``x-api-key``."""
    value = request.headers.get("authorization")
    if value:
        scheme, _, rest = value.partition(" ")
        return rest.strip() if scheme.lower() == "bearer" and rest.strip() else value.strip()
    return request.headers.get("x-api-key")
