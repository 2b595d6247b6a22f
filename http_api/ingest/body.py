"""A request body as a blocking binary stream, read by the uploader's readers in a thread.

The readers (``producer_tools/readers``) are synchronous and pull bytes; the ASGI server
pushes chunks to the event loop. ``StreamedBody`` runs in a worker thread and fetches the
next chunk from the loop only when the reader asks for more, so at most one chunk (plus the
reader's buffer) is in memory whatever the body size, and a slow Kafka slows the client down
(TCP backpressure) instead of buffering. The size cap is counted on the bytes as received.

A body that does not arrive whole (client gone, server shutting down) or grows past the cap
raises an ``OSError`` subclass: the readers turn that into a fatal ``RecordError``, so the
upload stops there and, for a Segmenter document, never reaches REPLACE_END.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import BinaryIO

import anyio.from_thread
from starlette.requests import ClientDisconnect, Request

READ_SIZE = 1 << 16


class BodyTooLargeError(OSError):
    """The body grew past ``serve.max_stream_body_bytes`` (the answer is 413)."""


class BodyIncompleteError(OSError):
    """The body ended before the client said it was complete (disconnect, shutdown)."""


class StreamedBody(io.RawIOBase):
    """``read``/``readinto`` over an ASGI request body, callable from a worker thread only."""

    def __init__(self, request: Request, max_bytes: int) -> None:
        super().__init__()
        self._chunks: AsyncIterator[bytes] = request.stream().__aiter__()
        self._max = max_bytes
        self._pending = memoryview(b"")
        self._done = False
        self.received = 0
        self.too_large = False
        self.incomplete = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._done:
            self._pending = memoryview(self._next())
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def drain(self) -> None:
        """Read what is left (a reader may stop early) so the whole body is accounted for."""
        while not self._done:
            self._next()
        self._pending = memoryview(b"")

    def _next(self) -> bytes:
        try:
            chunk = anyio.from_thread.run(self._receive)
        except StopAsyncIteration:
            self._done = True
            return b""
        except ClientDisconnect:
            self.incomplete = True
            raise BodyIncompleteError("the request body was cut off by the client") from None
        except Exception as exc:  # the loop is stopping (SIGTERM past the grace period)
            self.incomplete = True
            raise BodyIncompleteError(f"the request body could not be read: {exc}") from None
        self.received += len(chunk)
        if self.received > self._max:
            self.too_large = True
            raise BodyTooLargeError(
                f"the request body exceeds {self._max} bytes (max_stream_body_bytes)"
            )
        return chunk

    async def _receive(self) -> bytes:
        return await self._chunks.__anext__()

    def stream(self) -> BinaryIO:
        """The body as the binary stream the readers take."""
        return io.BufferedReader(self, READ_SIZE)


async def read_small(request: Request, max_bytes: int) -> bytes:
    """A whole small body (one command), refused past ``max_bytes`` while it streams."""
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLargeError(f"the request body exceeds {max_bytes} bytes")
        parts.append(chunk)
    return b"".join(parts)
