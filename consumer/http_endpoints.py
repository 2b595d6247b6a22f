"""``/metrics``, ``/healthz`` and ``/readyz`` on one port, served from a daemon thread.

Liveness answers as long as the poll loop has run recently (a wedged loop gets the pod
restarted); readiness needs assigned partitions and a Cassandra that answers.

``/metrics`` is prometheus_client's own WSGI app, so a scrape gets what Prometheus asks for:
the OpenMetrics format when its ``Accept`` header prefers it, gzip when it accepts it, and
``?name[]=`` filtering. The server is the standard library's WSGI server (the one
prometheus_client's ``start_http_server`` uses) with one thread per request. Every path
answers ``GET`` and ``HEAD`` (probes and load balancers send ``HEAD``); other methods get 405.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

Check = Callable[[], tuple[bool, dict[str, object]]]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
_ALLOWED = "GET, HEAD"


class HealthServer:
    """A tiny HTTP server; ``port=0`` picks a free port (see ``.port``)."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, alive: Check, ready: Check
    ) -> None:
        self._server = make_server(
            host,
            port,
            endpoints_app(registry, alive, ready),
            ThreadingWSGIServer,
            _QuietHandler,
        )
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="segflow-http", daemon=True
        )

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes are not worth a log line each."""


def endpoints_app(registry: CollectorRegistry, alive: Check, ready: Check) -> WsgiApp:
    """The WSGI application behind the consumer's port (a function of its three checks)."""
    metrics: WsgiApp = make_wsgi_app(registry)
    checks = {"/healthz": alive, "/readyz": ready}

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        if method not in ("GET", "HEAD"):
            return _answer(start_response, 405, b'{"error": "method not allowed"}', method)
        if path == "/metrics":
            # prometheus_client's app only knows GET: HEAD gets the GET answer's headers.
            captured: list[Any] = []
            body = b"".join(
                metrics(
                    {**environ, "REQUEST_METHOD": "GET"},
                    lambda status, headers, *_: captured.extend((status, headers)),
                )
            )
            status, headers = captured
            start_response(status, [*headers, ("Content-Length", str(len(body)))])
            return [b""] if method == "HEAD" else [body]
        check = checks.get(path)
        if check is None:
            return _answer(start_response, 404, b'{"error": "not found"}', method)
        ok, detail = check()
        body = json.dumps({"status": "ok" if ok else "unavailable", **detail}).encode()
        return _answer(start_response, 200 if ok else 503, body, method)

    return app


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


def _answer(start_response: StartResponse, status: int, body: bytes, method: str) -> list[bytes]:
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if status == 405:
        headers.append(("Allow", _ALLOWED))
    start_response(f"{status} {_REASONS[status]}", headers)
    return [b""] if method == "HEAD" else [body]
