"""The one ASGI app of ``segflow serve``: the ingestion routes (issue 15) beside the export
API (seed 004), one settings model (``ServeSettings``), one API-key store.

Ingestion routes:

* mediarithmics (seeds 000/001): ``/v1/datamarts/{datamart_id}/document_imports[...]``;
* Village (seed 002): ``POST /networks/{network_id}/segments``;
* Segmenter (seed 003): ``PUT /segments/{segment_id}``.

Export routes are those of ``http_api.export.routes``; ``GET /openapi.json`` describes all.
Tenancy is one organisation per deployment: segment ids are those the seeds' clients send,
unprefixed, shared by every route (a Village ``segment_id`` 42 is segment ``42`` in
``segflow members``); each key is bound to the datamart and network ids it may write to.
"""

from __future__ import annotations

import logging
from types import FrameType
from typing import Any

from anyio import CapacityLimiter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from http_api.export.auth import ApiKeys
from http_api.export.routes import ExportApi
from http_api.ingest.context import IngestContext
from http_api.ingest.guard import Guard, Handler
from http_api.ingest.guard import Route as Route_
from http_api.ingest.imports import DocumentImportStore
from http_api.ingest.mediarithmics import MediarithmicsRoutes
from http_api.ingest.metrics import IngestMetrics
from http_api.ingest.openapi import openapi_document
from http_api.ingest.pipeline import IngestPipeline, SharedProducer
from http_api.ingest.segmenter import SegmenterRoutes
from http_api.ingest.village import VillageRoutes
from http_api.responses import json_response
from http_api.unavailable import unavailable_handler
from segflow.db.executions import ExecutionStore
from segflow.db.registry import SegmentRegistry
from segflow.errors import ExitCode, SegflowError
from segflow.settings import ServeSettings

log = logging.getLogger(__name__)
DOCUMENT_IMPORTS = "/v1/datamarts/{datamart_id}/document_imports"
EXECUTIONS = DOCUMENT_IMPORTS + "/{import_id}/executions"


def ingest_routes(ctx: IngestContext, settings: ServeSettings) -> list[BaseRoute]:
    """Every ingestion route, each behind the guard."""
    options = settings.serve
    wrap = ctx.guard.wrap
    media = MediarithmicsRoutes(ctx, options.max_stream_body_bytes, options.max_command_body_bytes)
    village = VillageRoutes(ctx, options.max_command_body_bytes)
    segmenter = SegmenterRoutes(ctx, options.max_stream_body_bytes)
    small, big = media.small, media.route
    table: list[tuple[str, str, Route_, Handler]] = [
        ("POST", DOCUMENT_IMPORTS, small, media.create_import),
        ("GET", DOCUMENT_IMPORTS + "/{import_id}", small, media.get_import),
        ("POST", EXECUTIONS, big, media.create_execution),
        ("GET", EXECUTIONS, small, media.list_executions),
        ("GET", EXECUTIONS + "/{execution_id}", small, media.get_execution),
        ("GET", EXECUTIONS + "/{execution_id}/errors", small, media.execution_errors),
        ("POST", EXECUTIONS + "/{execution_id}/action", small, media.execution_action),
        ("POST", "/networks/{network_id}/segments", village.route, village.post),
        ("PUT", "/segments/{segment_id}", segmenter.route, segmenter.put),
    ]
    return [
        Route(path, wrap(guarded, handler, method, path), methods=[method])
        for method, path, guarded, handler in table
    ]


def build_app(export: ExportApi, ctx: IngestContext, settings: ServeSettings) -> Starlette:
    """Ingestion + export routes + ``/openapi.json`` as one Starlette app."""
    document = openapi_document()

    async def openapi(request: Request) -> Response:
        return json_response(200, document)

    routes: list[BaseRoute] = [
        *ingest_routes(ctx, settings),
        *export.app.routes,
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    unavailable = unavailable_handler(settings.serve.unavailable_retry_after_s)
    return Starlette(routes=routes, exception_handlers={Exception: unavailable})


def ingest_context(
    session: Any, keys: ApiKeys, settings: ServeSettings, metrics: IngestMetrics | None = None
) -> IngestContext:
    """The ingestion side of one process over a Cassandra session (``metrics``: in the export
    API's registry, so one ``/metrics`` shows both)."""
    options = settings.serve
    metrics = metrics or IngestMetrics()
    producer = SharedProducer(settings.kafka, settings.upload, options)
    return IngestContext(
        pipeline=IngestPipeline(ExecutionStore(session), producer, options, metrics),
        registry=SegmentRegistry(session, default_bucket_count=1, cache_ttl_s=30),
        imports=DocumentImportStore(session),
        guard=Guard(keys, options, metrics),
        limiter=CapacityLimiter(options.ingest_threads),
    )


def graceful_server(config: Any) -> Any:
    """A uvicorn server whose SIGTERM/SIGINT is a clean exit (code 0).

    uvicorn shuts down gracefully on the signal, then re-raises it, which kills the process
    before ``serve`` flushes the producer and stops the export workers; not re-raising lets
    those ``finally`` blocks run.
    """
    import uvicorn

    class GracefulServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

    return GracefulServer(config)


def serve(settings: ServeSettings) -> int:
    """``segflow serve``: run the app until SIGTERM/SIGINT (uvicorn's graceful shutdown:
    stop accepting, let requests in flight finish within ``serve.shutdown_timeout_s``)."""
    import uvicorn

    from http_api.export.jobs import utc_now
    from http_api.export.metrics import ExportMetrics
    from http_api.export.worker import ExportService
    from segflow.db.probe import CassandraProbe
    from segflow.db.session import connect_or_fail

    options = settings.serve
    keys = ApiKeys(options.api_keys, options.api_key_dir, options.api_key_grants)
    if keys.count() == 0:
        raise SegflowError(
            "no API keys configured: set SEGFLOW_SERVE__API_KEYS, SEGFLOW_SERVE__API_KEY_GRANTS "
            "or SEGFLOW_SERVE__API_KEY_DIR",
            ExitCode.USAGE,
        )
    cluster, session = connect_or_fail(settings.cassandra, settings.cassandra.keyspace)
    try:
        export_metrics = ExportMetrics()
        service = ExportService(session, options, export_metrics, utc_now)
        ctx = ingest_context(session, keys, settings, IngestMetrics(export_metrics.registry))
        export = ExportApi(service, keys, ctx.registry, CassandraProbe(session))
        server = graceful_server(
            uvicorn.Config(
                build_app(export, ctx, settings),
                host=options.host,
                port=options.port,
                log_config=None,
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=int(options.shutdown_timeout_s),
            )
        )
        service.start()
        log.info(
            "segflow API listening",
            extra={
                "fields": {"host": options.host, "port": options.port, "workers": options.workers}
            },
        )
        try:
            server.run()
        finally:
            service.stop()
            ctx.pipeline.producer.close()
    finally:
        cluster.shutdown()
    return ExitCode.OK
