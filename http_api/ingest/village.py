"""Village ``POST /networks/{network_id}/segments`` (seed 002): add, block or reset a user.

The body is one JSON object (``user``, ``segment_id``, ``user_status``, ``metadata``,
``reference_id``, ``status_change_timestamp``, ``description``), read by the uploader's
Village reader as one line of an execution. POSTs for the same network that wait at the same
time share that execution (``batching.GroupCommit``: line k is the k-th request), so the
execution row and the producer wait are paid once per group, not per request. Each answer
comes only once the whole group's records are acknowledged by Kafka (acks=all): 200
``{"success": true, "execution_id", "line"}``. A field error is a 400 naming the field; a
segment the registry does not know is a 422 (seed: "You must create a Segment ... before it
will be accepted"), decided at request time; the other lines of the group are not affected.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from http_api.export.auth import Grant
from http_api.ingest.batching import CreatedClock, GroupCommit
from http_api.ingest.body import BodyTooLargeError, read_small
from http_api.ingest.context import IngestContext
from http_api.ingest.guard import Route, village_error
from http_api.ingest.pipeline import LineRejects, Outcome
from http_api.responses import json_response
from producer_tools.readers.detect import VILLAGE
from producer_tools.upload import ErrorBudget
from segflow.contract.errors import RecordError
from segflow.contract.records import CommandRecord

# A group's lines are separate requests: one line's error never stops the others.
EVERY_LINE = ErrorBudget.parse("100%")
UNKNOWN_SEGMENT = "unknown segment"


@dataclass(frozen=True)
class LineOutcome:
    """The answer of one request of a group: its status code, or its error."""

    execution_id: str
    line: int
    status: int
    error: str | None = None
    field: str | None = None


def network_tenant(request: Request, grant: Grant) -> bool:
    """The key must be bound to the path's network."""
    return grant.network(str(request.path_params["network_id"]))


def line_outcomes(outcome: Outcome, rejects: LineRejects, lines: int) -> list[LineOutcome]:
    """What each line of a grouped execution answers.

    A rejected line: 422 (unknown segment) or 400 naming the field. Kafka not acknowledging
    the group: 503 for every other line (nothing answered 200 that is not durable). A line
    the reader never reached (the execution stopped before it): 503, retry. Else 200.
    """
    execution = outcome.execution
    eid = execution.execution_id
    answers = []
    for line in range(1, lines + 1):
        reject = rejects.by_line.get(line)
        if reject is not None:
            status = 422 if reject.reason.startswith(UNKNOWN_SEGMENT) else 400
            answers.append(LineOutcome(eid, line, status, reject.reason, reject.field))
        elif outcome.kafka_unavailable:
            answers.append(
                LineOutcome(eid, line, 503, "Kafka did not acknowledge the command in time")
            )
        elif line > execution.lines_read:
            answers.append(LineOutcome(eid, line, 503, execution.error or "not read; retry"))
        else:
            answers.append(LineOutcome(eid, line, 200))
    return answers


class VillageRoutes:
    """The Village handler over the shared ingestion context."""

    def __init__(self, ctx: IngestContext, max_body: int) -> None:
        self.ctx = ctx
        self.route = Route("village_segments", village_error, network_tenant, max_body)
        options = ctx.pipeline.options
        self.groups: GroupCommit[bytes, LineOutcome] = GroupCommit(
            self._run_group, options.village_batch_max, options.village_batches_in_flight
        )
        self.clock = CreatedClock(lambda: time.time_ns() // 1000)

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
        # One NDJSON line for the reader (orjson output holds no raw newline).
        line = orjson.dumps(document)
        answer = await self.groups.submit(str(request.path_params["network_id"]), line)
        if answer.status != 200:
            return guard.error(self.route, answer.status, answer.error or "", answer.field)
        return json_response(
            200, {"success": True, "execution_id": answer.execution_id, "line": answer.line}
        )

    async def _run_group(self, network: str, lines: list[bytes]) -> list[LineOutcome]:
        created = self.clock.take(len(lines))  # on the loop: groups are stamped in order
        self.ctx.pipeline.metrics.village_group_size.observe(len(lines))
        return await self.ctx.blocking(lambda: self._ingest(network, lines, created))

    def _ingest(self, network: str, lines: list[bytes], created_at_us: int) -> list[LineOutcome]:
        pipeline = self.ctx.pipeline
        execution = pipeline.new_execution(
            f"village:network:{network}", f"POST /networks/{network}/segments", VILLAGE,
            created_at_us,
        )  # fmt: skip
        rejects = LineRejects(pipeline.rejects_path(execution.execution_id))
        outcome = pipeline.run(
            execution,
            io.BytesIO(b"\n".join(lines)),
            EVERY_LINE,
            admit=self._admit,
            rejects=rejects,
        )
        return line_outcomes(outcome, rejects, len(lines))

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
