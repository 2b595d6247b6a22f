"""``/metrics``, ``/healthz`` and ``/readyz`` on one port, served from a daemon thread.

Liveness answers as long as the poll loop has run recently (a wedged loop gets the pod
restarted); readiness needs assigned partitions and a Cassandra that answers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Check = Callable[[], tuple[bool, dict[str, object]]]


class HealthServer:
    """A tiny HTTP server; ``port=0`` picks a free port (see ``.port``)."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, alive: Check, ready: Check
    ) -> None:
        handler = _handler(registry, alive, ready)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
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


def _handler(
    registry: CollectorRegistry, alive: Check, ready: Check
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, detail = (alive if path == "/healthz" else ready)()
                body = json.dumps({"status": "ok" if ok else "unavailable", **detail})
                self._send(200 if ok else 503, body.encode(), "application/json")
            else:
                self._send(404, b'{"error": "not found"}', "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Scrapes are not worth a log line each."""

    return Handler
