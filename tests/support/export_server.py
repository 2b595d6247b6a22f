"""Run the export API in-process on a real socket, with an injectable clock, and call it.

The API is the real ASGI app served by uvicorn on 127.0.0.1; tests talk HTTP to it with the
standard library, so status codes, headers and bodies are exactly what a client sees.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import uvicorn

from http_api.export.routes import ExportApi


@dataclass
class FakeClock:
    """A clock tests move by hand (``advance``)."""

    now: datetime = field(default_factory=lambda: datetime.now(tz=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass(frozen=True)
class Reply:
    """One HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@contextmanager
def serving(api: ExportApi) -> Iterator[str]:
    """Serve ``api.app`` on a free port; yields the base URL."""
    with serving_app(api.app) as url:
        yield url


@contextmanager
def serving_app(app: Any) -> Iterator[str]:
    """Serve an ASGI app (``segflow serve``'s composed one too) on a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "export API did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def call(
    method: str,
    url: str,
    key: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request; 4xx/5xx are returned, not raised."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if key is not None:
        request.add_header("x-api-key", key)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Reply(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers.items()), error.read())
