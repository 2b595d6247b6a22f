"""What the ingestion routes share: the pipeline, the registry, the guard, the thread pool."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

from http_api.ingest.guard import Guard
from http_api.ingest.imports import DocumentImportStore
from http_api.ingest.pipeline import CancelWatch, IngestPipeline
from segflow.db.registry import SegmentRegistry

T = TypeVar("T")


@dataclass
class IngestContext:
    """Shared by every ingestion route of one process."""

    pipeline: IngestPipeline
    registry: SegmentRegistry
    imports: DocumentImportStore
    guard: Guard
    limiter: CapacityLimiter
    # Running document import executions of this process, by execution id (cancel).
    running: dict[str, CancelWatch] = field(default_factory=dict)

    async def blocking(self, function: Callable[[], T]) -> T:
        """Run blocking work (Cassandra, the reader and producer) off the event loop."""
        return await anyio.to_thread.run_sync(function, limiter=self.limiter)

    def segment_known(self, segment_id: str) -> bool:
        """Registry lookup (cached); a miss is re-read, so a new segment is seen at once."""
        return (
            self.registry.get(segment_id) is not None
            or self.registry.get(segment_id, fresh=True) is not None
        )
