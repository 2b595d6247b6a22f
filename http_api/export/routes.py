"""The export API over HTTP (Starlette): seed 004's request / poll / download contract.

Routes (all under ``x-api-key`` except the probes and metrics):

* ``POST /v1/exports`` -> 201 ``{export_id, poll_url, expires_at}``; 400 naming the field;
  429 over the pending-exports limit of the key.
* ``GET /v1/exports/{id}`` (the poll URL) -> 404 + Retry-After while pending; 200 streaming
  the file (``Content-Encoding: gzip`` when accepted, plain JSON otherwise); 410 after expiry,
  for an unknown id or another key's export; 503 when the export failed.
* ``GET /v1/exports/{id}/status`` -> the job as JSON (for people and scripts).
* ``GET /v1/attributes``, ``/v1/tags``, ``/v1/events`` -> what the ids mean.
* ``GET /healthz``, ``/readyz``, ``/metrics``.

Handlers are plain functions: Starlette runs them in its thread pool, never on the event
loop, and export files are built by the workers, never here.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import wraps
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from http_api.export.auth import ApiKeys
from http_api.export.catalog import ATTRIBUTES, EVENT_TYPES
from http_api.export.jobs import ExportJob, JobStatus
from http_api.export.metrics import MetricsApp
from http_api.export.request import ExportRequestError, parse_body, validate
from http_api.export.worker import ExportService, export_file
from http_api.responses import json_response
from http_api.unavailable import unavailable_handler
from segflow.db.registry import SegmentRegistry

CHUNK = 256 * 1024
ADMIT_ATTEMPTS = 20
# Refusing a body unread: close the connection after the answer, or the server would go on
# reading (and discarding) whatever the client still sends, gigabytes included.
CLOSE = {"Connection": "close"}
Handler = Callable[[Request], Response]


def accepts_gzip(header: str | None) -> bool:
    """Whether an Accept-Encoding header allows gzip (``gzip;q=0`` refuses it)."""
    for part in (header or "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        return q > 0
    return False


class ExportApi:
    """Request handling over one ExportService; ``app`` is the ASGI application."""

    def __init__(
        self,
        service: ExportService,
        keys: ApiKeys,
        registry: SegmentRegistry,
        ready_check: Callable[[], bool],
    ) -> None:
        self.service = service
        self.keys = keys
        self.registry = registry
        self.ready_check = ready_check
        self.metrics = service.metrics
        # Evaluated at every scrape: right whether or not anything polls /readyz.
        self.metrics.ready.set_function(lambda: 1.0 if self._is_ready() else 0.0)
        self.app = Starlette(
            routes=[
                Route("/v1/exports", self._route("create", self.create), methods=["POST"]),
                Route("/v1/exports/{export_id}", self._route("poll", self.poll)),
                Route("/v1/exports/{export_id}/status", self._route("status", self.status)),
                Route("/v1/attributes", self._route("attributes", self.attributes)),
                Route("/v1/tags", self._route("tags", self.tags)),
                Route("/v1/events", self._route("events", self.events)),
                Route("/healthz", self._route("healthz", self.healthz, auth=False)),
                Route("/readyz", self._route("readyz", self.readyz, auth=False)),
                Route("/metrics", MetricsApp(self.metrics.registry), methods=["GET", "HEAD"]),
            ],
            exception_handlers={Exception: unavailable_handler(service.options.retry_after_s)},
        )

    # -- routes ----------------------------------------------------------------------------

    def create(self, request: Request, key_id: str, body: bytes) -> Response:
        """Validate, check the pending limit, queue the job."""
        try:
            spec = validate(parse_body(body), self._known_segment)
        except ExportRequestError as exc:
            return _error(400, exc.message, exc.field)
        now = self.service.clock()
        export_id = uuid.uuid4().hex
        expires_at = now + timedelta(seconds=self.service.options.poll_url_ttl_s)
        refused = self._admit(key_id, export_id, spec.to_json(), now, expires_at)
        if refused is not None:
            return refused
        poll_url = f"{self._base_url(request)}/v1/exports/{export_id}"
        payload: dict[str, Any] = {
            "export_id": export_id,
            "poll_url": poll_url,
            "expires_at": expires_at.isoformat(),
        }
        if not spec.lists_profiles:
            payload["warning"] = (
                "no attribute and no tag requested: the file will list no profiles (seed 004)"
            )
        return json_response(201, payload, {"Location": poll_url})

    def _admit(
        self, key_id: str, export_id: str, spec: str, now: Any, expires_at: Any
    ) -> Response | None:
        """Queue the job within the key's limits; the refusal, or None once it is queued.

        Count, queue, then move the key's version on (``V006``): a request that loses that
        race withdraws its job and counts again, so concurrent requests cannot all pass.
        """
        store, options = self.service.store, self.service.options
        for _ in range(ADMIT_ATTEMPTS):
            seen = store.key_version(key_id)
            live = [job for job in store.of_key(key_id) if job.expires_at > now]
            pending = sum(1 for job in live if job.open)
            ready = sum(1 for job in live if job.status == JobStatus.READY)
            retry = {"Retry-After": str(options.retry_after_s)}
            if pending >= options.max_pending_per_key:
                return _error(
                    429,
                    f"{pending} exports of this API key are still pending (limit "
                    f"{options.max_pending_per_key}); download or wait for them first",
                    None,
                    retry,
                )
            if ready >= options.max_ready_per_key:
                return _error(
                    429,
                    f"{ready} finished exports of this API key are still downloadable (limit "
                    f"{options.max_ready_per_key}); they expire {options.poll_url_ttl_s} s "
                    "after their request",
                    None,
                    retry,
                )
            job = store.create(export_id, key_id, spec, now, expires_at)
            try:
                won = store.bump_key(key_id, seen)
            except Exception:
                # A timed-out LWT (its outcome unknown) answers 503: withdraw the job so a
                # request told to retry leaves nothing behind that counts against the key.
                with contextlib.suppress(Exception):
                    store.delete(job)
                raise
            if won:
                return None
            store.delete(job)  # another request of this key won the race: count again
            time.sleep(random.uniform(0.005, 0.05))
        return _error(
            503,
            "too many concurrent export requests for this API key; retry",
            None,
            {"Retry-After": str(options.retry_after_s)},
        )

    def poll(self, request: Request, key_id: str, body: bytes) -> Response:
        """Seed 004's poll URL: 404 pending, 200 file, 410 gone, 503 failed."""
        job = self._job(request, key_id)
        if job is None:
            return _error(410, "unknown or expired export", None)
        if job.open:
            return _error(
                404,
                f"export is {job.status.value.lower()}; poll again later",
                None,
                {"Retry-After": str(self.service.options.retry_after_s)},
            )
        if job.status == JobStatus.FAILED:
            return _error(503, f"export failed: {job.error}; request a new export", None)
        path = export_file(self.service.export_dir, job.export_id)
        if not path.exists():
            return _error(
                503,
                "export file is missing on this server (is the export directory shared "
                "by every replica?); request a new export",
                None,
            )
        headers = {"Content-Disposition": f'attachment; filename="{job.export_id}.json"'}
        if accepts_gzip(request.headers.get("accept-encoding")):
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept-Encoding"
            return FileResponse(path, media_type="application/json", headers=headers)
        headers["Vary"] = "Accept-Encoding"
        if job.json_bytes is not None:
            headers["Content-Length"] = str(job.json_bytes)
        return StreamingResponse(_gunzip(path), media_type="application/json", headers=headers)

    def status(self, request: Request, key_id: str, body: bytes) -> Response:
        """The job's state, counts and timings."""
        job = self._job(request, key_id)
        if job is None:
            return _error(410, "unknown or expired export", None)
        return json_response(200, _job_json(job))

    def attributes(self, request: Request, key_id: str, body: bytes) -> Response:
        """Attribute ids an export may request."""
        return json_response(
            200,
            {
                "attributes": [
                    {"id": a.id, "type": a.type, "description": a.description} for a in ATTRIBUTES
                ]
            },
        )

    def tags(self, request: Request, key_id: str, body: bytes) -> Response:
        """Tag ids: the registered segments."""
        return json_response(
            200,
            {
                "tags": [
                    {"id": s.segment_id, "name": s.name, "technical_name": s.technical_name}
                    for s in self.registry.all()
                ]
            },
        )

    def events(self, request: Request, key_id: str, body: bytes) -> Response:
        """Event type ids."""
        return json_response(
            200, {"events": [{"id": k, "description": v} for k, v in EVENT_TYPES.items()]}
        )

    def healthz(self, request: Request, key_id: str, body: bytes) -> Response:
        """Liveness: the worker threads run."""
        ok = self.service.alive()
        return json_response(200 if ok else 503, {"status": "ok" if ok else "workers stopped"})

    def readyz(self, request: Request, key_id: str, body: bytes) -> Response:
        """Readiness: Cassandra answers and the export directory is writable."""
        ok = self._is_ready()
        return json_response(200 if ok else 503, {"status": "ok" if ok else "unavailable"})

    def _is_ready(self) -> bool:
        return self.ready_check() and _writable(self.service.export_dir)

    # -- helpers ---------------------------------------------------------------------------

    def _route(
        self, name: str, handler: Callable[[Request, str, bytes], Response], auth: bool = True
    ) -> Callable[[Request], Any]:
        """Wrap a handler: authenticate, read the body (bounded), count and time the answer."""

        @wraps(handler)
        async def endpoint(request: Request) -> Response:
            with self.metrics.request_duration.labels(name).time():
                return await answer(request)

        async def answer(request: Request) -> Response:
            # The key first: an unauthenticated request is answered before one byte of its
            # body is read, whatever it announces.
            key_id = ""
            if auth:
                found = self.keys.identify(request.headers.get("x-api-key"))
                if found is None:
                    response = _error(401, "missing or invalid x-api-key header", None, CLOSE)
                    self.metrics.requests.labels(name, "401").inc()
                    return response
                key_id = found
            body = await _read_body(request, self.service.options.max_command_body_bytes)
            if body is None:
                limit = self.service.options.max_command_body_bytes
                self.metrics.requests.labels(name, "413").inc()
                return _error(413, f"request body larger than {limit} bytes", None, CLOSE)
            response = await run_in_threadpool(handler, request, key_id, body)
            self.metrics.requests.labels(name, str(response.status_code)).inc()
            return response

        return endpoint

    def _job(self, request: Request, key_id: str) -> ExportJob | None:
        """The caller's job, if it exists and has not expired."""
        job = self.service.store.get(key_id, str(request.path_params["export_id"]))
        if job is None or job.key_id != key_id or job.expires_at <= self.service.clock():
            return None
        return job

    def _known_segment(self, segment_id: str) -> bool:
        return self.registry.get(segment_id) is not None

    def _base_url(self, request: Request) -> str:
        configured = self.service.options.public_base_url
        if configured:
            return configured.rstrip("/")
        return f"{request.url.scheme}://{request.url.netloc}"


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, read as it streams in; None as soon as it exceeds ``limit`` bytes.

    A declared Content-Length over the limit is refused before reading; a chunked body is
    cut off at the limit, so memory per request stays bounded either way.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                return None
        except ValueError:
            return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _gunzip(path: Path) -> Iterator[bytes]:
    """Stream a gzip file decompressed, chunk by chunk (identity downloads)."""
    decompressor = zlib.decompressobj(wbits=31)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            data = decompressor.decompress(chunk)
            if data:
                yield data
        tail = decompressor.flush()
        if tail:
            yield tail


def _job_json(job: ExportJob) -> dict[str, Any]:
    return {
        "export_id": job.export_id,
        "status": job.status.value,
        "attempts": job.attempts,
        "created_at": job.created_at.isoformat(),
        "expires_at": job.expires_at.isoformat(),
        "started_at": None if job.started_at is None else job.started_at.isoformat(),
        "finished_at": None if job.finished_at is None else job.finished_at.isoformat(),
        "profiles": job.profiles,
        "file_bytes": job.file_bytes,
        "json_bytes": job.json_bytes,
        "error": job.error,
    }


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".ready-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        return False
    return True


def _error(
    status: int, message: str, field: str | None, headers: dict[str, str] | None = None
) -> Response:
    return json_response(status, {"error": message, "field": field}, headers)
