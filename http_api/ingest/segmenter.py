"""Segmenter ``PUT /segments/{segment_id}`` with ``x-api-key`` (seed 003): replace-all.

The body is the segment document, streamed into the uploader's Segmenter reader: ``persons``
is never held in memory, whatever its length. The reader yields REPLACE_END only once the
whole document parsed to its end, and the body stream ends only when the client said the
body is complete, so a cut-off body never replaces (never clears) the segment. A body
without ``persons`` updates the definition only.

Success, once every record is acknowledged by Kafka, is exactly seed 003's body
``{"data": {"isUpdated": true}, "errorMessage": ""}``; a failure is
``{"success": false, "message": <reason phrase>, "error": <what was wrong>}``: 400 for a
document or person error (named by its field, e.g. ``persons[3].externalId``; the replace
stops there), 413 past ``serve.max_stream_body_bytes``, 503 when Kafka did not acknowledge.

The body's ``id`` must be the path's segment id and come before ``persons`` (the body is
read once, as it arrives).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from http_api.export.auth import Grant
from http_api.ingest.body import StreamedBody
from http_api.ingest.context import IngestContext
from http_api.ingest.guard import Route, segmenter_error
from http_api.ingest.pipeline import Outcome
from producer_tools.readers.detect import SEGMENTER
from producer_tools.upload import ErrorBudget
from segflow.contract.errors import RecordError
from segflow.contract.records import CommandRecord

UPDATED = b'{"data": {"isUpdated": true}, "errorMessage": ""}'
NO_ERRORS = ErrorBudget.parse("0")


def segmenter_tenant(request: Request, grant: Grant) -> bool:
    """The key must be allowed to PUT Segmenter documents."""
    return grant.segmenter


class SegmenterRoutes:
    """The Segmenter handler over the shared ingestion context."""

    def __init__(self, ctx: IngestContext, max_body: int) -> None:
        self.ctx = ctx
        self.route = Route("segmenter_segment", segmenter_error, segmenter_tenant, max_body)

    async def put(self, request: Request, grant: Grant) -> Response:
        """Replace the segment's persons (or update its definition only)."""
        segment_id = str(request.path_params["segment_id"])
        body = StreamedBody(request, self.route.max_body)
        outcome = await self.ctx.blocking(lambda: self._ingest(segment_id, body))
        guard = self.ctx.guard
        if body.too_large:
            return guard.error(self.route, 413, f"the body exceeds {self.route.max_body} bytes")
        if body.incomplete:
            return guard.error(self.route, 400, "the request body was cut off; nothing replaced")
        if outcome.kafka_unavailable:
            return guard.error(self.route, 503, "Kafka did not acknowledge every record in time")
        if outcome.first_reject is not None:
            reject = outcome.first_reject
            return guard.error(self.route, 400, reject.reason, reject.field)
        if not outcome.ok:
            return guard.error(self.route, 400, outcome.execution.error or "not updated")
        return Response(UPDATED, status_code=200, media_type="application/json")

    def _ingest(self, segment_id: str, body: StreamedBody) -> Outcome:
        pipeline = self.ctx.pipeline
        execution = pipeline.new_execution(
            f"segmenter:{segment_id}", f"PUT /segments/{segment_id}", SEGMENTER
        )

        def admit(position: int, record: CommandRecord) -> RecordError | None:
            if record["segment_ids"] != [segment_id]:
                return RecordError(
                    "request", position, "id", "must be the segment id of the request path"
                )
            return None

        return pipeline.run(execution, body.stream(), NO_ERRORS, admit=admit)
