"""Prometheus metrics of ``segflow serve``, in one registry so dashboards and alerts can be
checked against it. Labels carry outcomes and HTTP routes only: never API keys, segment ids or
user keys. ``MetricsApp`` serves them with prometheus_client's own ASGI app (OpenMetrics when
the scraper's ``Accept`` asks for it, gzip when accepted).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_asgi_app

from segflow.process_metrics import register_process_metrics


class ExportMetrics:
    """All export API metrics, registered in their own ``CollectorRegistry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        reg = self.registry
        register_process_metrics(reg)
        self.requests = Counter(
            "segflow_export_http_requests_total",
            "HTTP requests answered by the export API, by route and status code.",
            ["route", "status"],
            registry=reg,
        )
        self.request_duration = Histogram(
            "segflow_export_http_request_duration_seconds",
            "Time until the export API starts its answer, by route (body read and auth included).",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=reg,
        )
        self.jobs_finished = Counter(
            "segflow_export_jobs_finished_total",
            "Export jobs that ended, by outcome (ready, failed, retried).",
            ["outcome"],
            registry=reg,
        )
        self.jobs_queued = Gauge(
            "segflow_export_jobs_queued",
            "Export jobs waiting for a worker (seen by this replica's last scan).",
            registry=reg,
        )
        self.jobs_running = Gauge(
            "segflow_export_jobs_running",
            "Export jobs running in this replica.",
            registry=reg,
        )
        self.profiles = Counter(
            "segflow_export_profiles_written_total",
            "Profiles written into export files.",
            registry=reg,
        )
        self.bytes = Counter(
            "segflow_export_bytes_written_total",
            "Compressed bytes of finished export files.",
            registry=reg,
        )
        self.job_duration = Histogram(
            "segflow_export_job_duration_seconds",
            "Time to build one export file.",
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
            registry=reg,
        )
        self.files_deleted = Counter(
            "segflow_export_files_expired_total",
            "Export files deleted because their poll URL expired.",
            registry=reg,
        )
        self.ready = Gauge(
            "segflow_export_ready",
            "1 when Cassandra answers and the export directory is writable, else 0.",
            registry=reg,
        )


Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class MetricsApp:
    """``/metrics`` as an ASGI app: prometheus_client's, plus ``HEAD`` and a Content-Length.

    prometheus_client's ASGI app answers every method with a body and no length; a ``HEAD``
    (load balancers, ``curl -I``) gets the ``GET`` answer's headers and no body here. A class,
    not a function: Starlette mounts callables that are not functions as raw ASGI apps.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._inner = make_asgi_app(registry)

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        """Run prometheus_client's app as a ``GET``; send its answer with its length."""
        head = scope.get("method") == "HEAD"
        start: Message = {}

        async def with_length(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body = bytes(message.get("body", b""))
            length = (b"content-length", str(len(body)).encode())
            await send({**start, "headers": [*start.get("headers", []), length]})
            await send({**message, "body": b"" if head else body})

        await self._inner({**scope, "method": "GET"}, receive, with_length)
