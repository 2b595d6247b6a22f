"""Village ``POST /networks/{network_id}/segments`` (seed 002): add, block or reset a user.

The body is one JSON object (``user``, ``segment_id``, ``user_status``, ``metadata``,
``reference_id``, ``status_change_timestamp``, ``description``), read by the uploader's
Village reader as a one-line execution. The answer comes only once the command is
acknowledged by Kafka (acks=all): 200 ``{"success": true, "execution_id", "command_id"}``.
A field error is a 400 naming the field; a segment the registry does not know is a 422
(seed: "You must create a Segment ... before it will be accepted"), decided at request time.
"""

from __future__ import annotations

import io

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from http_api.export.auth import Grant
from http_api.ingest.body import BodyTooLargeError, read_small
from http_api.ingest.context import IngestContext
from http_api.ingest.guard import Route, json_response, village_error
from http_api.ingest.pipeline import Outcome
from producer_tools.readers.detect import VILLAGE
from producer_tools.upload import ErrorBudget
from segflow.contract.errors import RecordError
from segflow.contract.records import CommandRecord

NO_ERRORS = ErrorBudget.parse("0")
UNKNOWN_SEGMENT = "unknown segment"


def network_tenant(request: Request, grant: Grant) -> bool:
    """The key must be bound to the path's network."""
    return grant.network(str(request.path_params["network_id"]))


class VillageRoutes:
    """The Village handler over the shared ingestion context."""

    def __init__(self, ctx: IngestContext, max_body: int) -> None:
        self.ctx = ctx
        self.route = Route("village_segments", village_error, network_tenant, max_body)

    async def post(self, request: Request, grant: Grant) -> Response:
        """Add, block or reset one user's segment override."""
        guard = self.ctx.guard
        try:
            body = await read_small(request, self.route.max_body)
        except BodyTooLargeError as exc:
            return guard.error(self.route, 413, str(exc))
        except ClientDisconnect:
            return guard.error(self.route, 400, "the request body was cut off")
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return guard.error(self.route, 400, f"not valid JSON: {exc}")
        if not isinstance(document, dict):
            return guard.error(self.route, 400, "the body must be a JSON object")
        # One NDJSON line for the reader (a pretty-printed body spans several lines).
        line = orjson.dumps(document)
        network = str(request.path_params["network_id"])
        outcome = await self.ctx.blocking(lambda: self._ingest(network, line))
        if outcome.kafka_unavailable:
            return guard.error(self.route, 503, "Kafka did not acknowledge the command in time")
        if outcome.first_reject is not None:
            reject = outcome.first_reject
            status = 422 if reject.reason.startswith(UNKNOWN_SEGMENT) else 400
            return guard.error(self.route, status, reject.reason, reject.field)
        if not outcome.ok:
            return guard.error(self.route, 400, outcome.execution.error or "not accepted")
        return json_response(200, {"success": True, "execution_id": outcome.execution.execution_id})

    def _ingest(self, network: str, line: bytes) -> Outcome:
        pipeline = self.ctx.pipeline
        execution = pipeline.new_execution(
            f"village:network:{network}", f"POST /networks/{network}/segments", VILLAGE
        )
        return pipeline.run(execution, io.BytesIO(line), NO_ERRORS, admit=self._admit)

    def _admit(self, position: int, record: CommandRecord) -> RecordError | None:
        for segment_id in record["segment_ids"]:
            if not self.ctx.segment_known(segment_id):
                return RecordError(
                    "request",
                    position,
                    "segment_id",
                    f"{UNKNOWN_SEGMENT} {segment_id}: you must create the segment before it "
                    "will be accepted",
                )
        return None
