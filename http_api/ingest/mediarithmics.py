"""mediarithmics bulk imports (seeds 000/001): document imports and their executions.

Routes, under ``Authorization: <token>`` bound to the path's datamart:

* ``POST /v1/datamarts/{datamart_id}/document_imports`` with ``{document_type: USER_SEGMENT,
  mime_type: APPLICATION_X_NDJSON | TEXT_CSV, encoding: utf-8, name}`` -> the import;
* ``GET .../document_imports/{import_id}`` -> the import;
* ``POST .../document_imports/{import_id}/executions`` with the commands as the body
  (``application/x-ndjson`` or ``text/csv``, matching the import's mime type), streamed
  through the uploader's mediarithmics reader -> the finished execution (answered once every
  valid line was acknowledged by Kafka);
* ``GET .../executions`` (newest first), ``GET .../executions/{execution_id}`` -> status,
  counts and the first rejected lines with their reasons;
* ``GET .../executions/{execution_id}/errors`` -> the whole error file (NDJSON, one
  ``{line, field, reason, raw}`` per rejected line);
* ``POST .../executions/{execution_id}/action`` with ``{"action": "CANCEL"}`` -> cancels a
  running execution (it stops at the next line).

Answers use mediarithmics' envelope ``{"status": "ok", "data": ...}``; errors
``{"status": "error", "error": ..., "error_code": ...}``. Rejected lines do not fail an
execution (they are its error file), as in mediarithmics' UI.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response

from http_api.export.auth import Grant
from http_api.ingest.body import BodyTooLargeError, StreamedBody, read_small
from http_api.ingest.context import IngestContext
from http_api.ingest.guard import Route, mediarithmics_error
from http_api.ingest.imports import DocumentImport
from http_api.ingest.pipeline import CancelWatch, Outcome
from http_api.responses import json_response
from producer_tools.readers.detect import MEDIARITHMICS_CSV, MEDIARITHMICS_NDJSON
from producer_tools.upload import ErrorBudget
from segflow.db.executions import Execution

ALL_ERRORS = ErrorBudget.parse("100%")
MIME_FORMATS = {"APPLICATION_X_NDJSON": MEDIARITHMICS_NDJSON, "TEXT_CSV": MEDIARITHMICS_CSV}
CONTENT_TYPES = {"APPLICATION_X_NDJSON": "application/x-ndjson", "TEXT_CSV": "text/csv"}
REJECTS_SHOWN = 100
EXECUTIONS_LISTED = 100


def datamart_tenant(request: Request, grant: Grant) -> bool:
    """The key must be bound to the path's datamart."""
    return grant.datamart(str(request.path_params["datamart_id"]))


class MediarithmicsRoutes:
    """Document import handlers over the shared ingestion context."""

    def __init__(self, ctx: IngestContext, max_body: int, max_small_body: int) -> None:
        self.ctx = ctx
        self.small = Route("document_imports", mediarithmics_error, datamart_tenant, max_small_body)
        self.route = Route(
            "document_import_executions", mediarithmics_error, datamart_tenant, max_body
        )

    # -- imports ---------------------------------------------------------------------------

    async def create_import(self, request: Request, grant: Grant) -> Response:
        """Create a USER_SEGMENT document import."""
        guard = self.ctx.guard
        try:
            body = orjson.loads(await read_small(request, self.small.max_body))
        except BodyTooLargeError as exc:
            return guard.error(self.small, 413, str(exc))
        except ClientDisconnect:
            return guard.error(self.small, 400, "the request body was cut off")
        except orjson.JSONDecodeError as exc:
            return guard.error(self.small, 400, f"not valid JSON: {exc}")
        if not isinstance(body, dict):
            return guard.error(self.small, 400, "the body must be a JSON object")
        problem = _import_problem(body)
        if problem is not None:
            return guard.error(self.small, 400, problem[1], problem[0])
        datamart = str(request.path_params["datamart_id"])
        created = await self.ctx.blocking(
            lambda: self.ctx.imports.create(
                datamart,
                "USER_SEGMENT",
                str(body["mime_type"]),
                str(body.get("encoding") or "utf-8").lower(),
                str(body.get("name") or ""),
            )
        )
        return _ok(_import_json(created))

    async def get_import(self, request: Request, grant: Grant) -> Response:
        """One document import."""
        found = await self._import(request)
        if found is None:
            return self._not_found()
        return _ok(_import_json(found))

    # -- executions ------------------------------------------------------------------------

    async def create_execution(self, request: Request, grant: Grant) -> Response:
        """Stream the body through the reader and producer as a new execution."""
        guard = self.ctx.guard
        found = await self._import(request)
        if found is None:
            return self._not_found()
        expected = CONTENT_TYPES[found.mime_type]
        given = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if given != expected:
            return guard.error(
                self.route,
                415,
                f"this import takes {expected} bodies ({found.mime_type}), got {given or 'none'}",
                "Content-Type",
            )
        body = StreamedBody(request, self.route.max_body)
        outcome = await self.ctx.blocking(lambda: self._ingest(found, body))
        if body.too_large:
            return guard.error(self.route, 413, f"the body exceeds {self.route.max_body} bytes")
        if outcome.kafka_unavailable:
            return guard.error(self.route, 503, "Kafka did not acknowledge every line in time")
        return _ok(self._execution_json(found, outcome.execution))

    def _ingest(self, found: DocumentImport, body: StreamedBody) -> Outcome:
        pipeline = self.ctx.pipeline
        execution = pipeline.new_execution(
            found.import_name, f"{found.name or found.import_id}", MIME_FORMATS[found.mime_type]
        )
        self.ctx.imports.add_execution(
            found.import_id, execution.execution_id, execution.created_at
        )
        watch = CancelWatch()
        self.ctx.running[execution.execution_id] = watch
        try:
            return pipeline.run(execution, body.stream(), ALL_ERRORS, cancel=watch)
        finally:
            self.ctx.running.pop(execution.execution_id, None)

    async def list_executions(self, request: Request, grant: Grant) -> Response:
        """The import's executions, newest first."""
        found = await self._import(request)
        if found is None:
            return self._not_found()

        def load() -> list[dict[str, Any]]:
            out = []
            for execution_id in self.ctx.imports.execution_ids(found.import_id, EXECUTIONS_LISTED):
                execution = self.ctx.pipeline.store.get(execution_id)
                if execution is not None:
                    out.append(self._execution_json(found, execution, rejects=False))
            return out

        executions = await self.ctx.blocking(load)
        return json_response(200, {"status": "ok", "data": executions, "count": len(executions)})

    async def get_execution(self, request: Request, grant: Grant) -> Response:
        """One execution: status, counts, the first rejected lines."""
        found, execution = await self._execution(request)
        if found is None or execution is None:
            return self._not_found()
        return _ok(self._execution_json(found, execution))

    async def execution_errors(self, request: Request, grant: Grant) -> Response:
        """The execution's error file (NDJSON), empty when no line was rejected; 410 once it
        expired (``retention.py``)."""
        found, execution = await self._execution(request)
        if found is None or execution is None:
            return self._not_found()
        path = self.ctx.pipeline.rejects_path(execution.execution_id)
        headers = {
            "Content-Disposition": f'attachment; filename="{execution.execution_id}.errors.ndjson"'
        }
        if not path.exists():
            if execution.lines_rejected:
                return self.ctx.guard.error(
                    self.small,
                    410,
                    "the error file of this execution expired "
                    f"(serve.ingest_errors_retention_days = "
                    f"{self.ctx.pipeline.options.ingest_errors_retention_days:g})",
                )
            return Response(b"", media_type="application/x-ndjson", headers=headers)
        return FileResponse(path, media_type="application/x-ndjson", headers=headers)

    async def execution_action(self, request: Request, grant: Grant) -> Response:
        """``{"action": "CANCEL"}``: stop a running execution."""
        guard = self.ctx.guard
        try:
            body = orjson.loads(await read_small(request, self.small.max_body))
        except (BodyTooLargeError, ClientDisconnect, orjson.JSONDecodeError) as exc:
            return guard.error(self.small, 400, f'expected {{"action": "CANCEL"}}: {exc}')
        if not isinstance(body, dict) or body.get("action") != "CANCEL":
            return guard.error(self.small, 400, "the only action is CANCEL", "action")
        found, execution = await self._execution(request)
        if found is None or execution is None:
            return self._not_found()
        execution_id = execution.execution_id
        watch = self.ctx.running.get(execution_id)
        if watch is not None:
            watch.cancel()
        canceled = await self.ctx.blocking(
            lambda: self.ctx.pipeline.store.cancel(execution_id, "canceled by a CANCEL action")
        )
        if not canceled and watch is None:
            return guard.error(
                self.small, 409, f"execution is already {execution.status.value}", None
            )
        latest = await self.ctx.blocking(lambda: self.ctx.pipeline.store.get(execution_id))
        return _ok(self._execution_json(found, latest or execution))

    # -- helpers ---------------------------------------------------------------------------

    async def _import(self, request: Request) -> DocumentImport | None:
        datamart = str(request.path_params["datamart_id"])
        import_id = str(request.path_params["import_id"])
        return await self.ctx.blocking(lambda: self.ctx.imports.get(datamart, import_id))

    async def _execution(self, request: Request) -> tuple[DocumentImport | None, Execution | None]:
        found = await self._import(request)
        if found is None:
            return None, None
        execution_id = str(request.path_params["execution_id"])
        execution = await self.ctx.blocking(lambda: self.ctx.pipeline.store.get(execution_id))
        if execution is None or execution.import_name != found.import_name:
            return found, None
        return found, execution

    def _not_found(self) -> Response:
        return self.ctx.guard.error(self.small, 404, "no such document import or execution")

    def _execution_json(
        self, found: DocumentImport, execution: Execution, rejects: bool = True
    ) -> dict[str, Any]:
        base = (
            f"/v1/datamarts/{found.datamart_id}/document_imports/{found.import_id}"
            f"/executions/{execution.execution_id}"
        )
        data: dict[str, Any] = {
            "id": execution.execution_id,
            "parent_id": found.import_id,
            "parent_type": "DOCUMENT_IMPORT",
            "status": execution.status.value,
            # SUCCEEDED = every command produced; APPLIED = also applied by the consumer.
            "applied": execution.applied.value,
            "creation_date": _ms(execution),
            "end_date": None
            if execution.finished_at is None
            else int(execution.finished_at.timestamp() * 1000),
            "result": {
                "lines_read": execution.lines_read,
                "commands_produced": execution.commands_produced,
                "lines_rejected": execution.lines_rejected,
                "commands_applied": execution.commands_applied,
                "commands_dead_lettered": execution.commands_dead_lettered,
            },
            "error": None if execution.error is None else {"message": execution.error},
            "error_file_uri": f"{base}/errors" if execution.lines_rejected else None,
        }
        if rejects:
            data["rejected_lines"] = _first_rejects(
                self.ctx.pipeline.rejects_path(execution.execution_id)
            )
        return data


def _import_problem(body: dict[str, Any]) -> tuple[str, str] | None:
    if body.get("document_type") != "USER_SEGMENT":
        return "document_type", "must be USER_SEGMENT (segment imports are what segflow takes)"
    if body.get("mime_type") not in MIME_FORMATS:
        return "mime_type", "must be APPLICATION_X_NDJSON or TEXT_CSV"
    encoding = body.get("encoding", "utf-8")
    if not isinstance(encoding, str) or encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
        return "encoding", "must be utf-8 (the only encoding segflow reads)"
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        return "name", "must be a string"
    return None


def _import_json(found: DocumentImport) -> dict[str, Any]:
    return {
        "id": found.import_id,
        "datamart_id": found.datamart_id,
        "document_type": found.document_type,
        "mime_type": found.mime_type,
        "encoding": found.encoding,
        "name": found.name,
        "creation_date": int(found.created_at.timestamp() * 1000),
    }


def _ms(execution: Execution) -> int:
    return execution.created_at_us // 1000


def _first_rejects(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in itertools.islice(handle, REJECTS_SHOWN)]


def _ok(data: Any) -> Response:
    return json_response(200, {"status": "ok", "data": data})
