"""``GET /openapi.json``: OpenAPI 3.1 description of every ingestion and export route.

Written out rather than generated: the routes stream their bodies and keep the seeds' own
envelopes, which no schema generator infers from the handlers. A test checks the document
with openapi-spec-validator and that every route of the app is described here.
"""

from __future__ import annotations

from typing import Any

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _errors(schema: str, *codes: int) -> dict[str, Any]:
    meaning = {
        400: "invalid body; the error names the field",
        401: "missing or invalid API key (checked before the body is read)",
        403: "the key lacks the permission or is bound to another tenant",
        404: "unknown import or execution",
        409: "the execution already ended",
        410: "expired: the export, or the error file (serve.ingest_errors_retention_days)",
        413: "body larger than serve.max_stream_body_bytes (counted while streaming)",
        415: "Content-Type does not match the import's mime type",
        422: "unknown segment (create it first)",
        429: "too many requests of this key in flight (see Retry-After)",
        503: "Kafka did not acknowledge in time (see Retry-After); nothing was answered 200",
    }
    return {str(code): _json(_ref(schema), meaning[code]) for code in codes}


MEDIA = ["mediarithmics"]
DATAMART = _param("datamart_id", "mediarithmics datamart id (the key must be bound to it)")
IMPORT = _param("import_id", "document import id")
EXECUTION = _param("execution_id", "execution id (as in `segflow executions`)")
MEDIA_ERRORS = (401, 403, 404, 429)


def _ok(schema: dict[str, Any], description: str) -> dict[str, Any]:
    envelope = {
        "type": "object",
        "required": ["status", "data"],
        "properties": {"status": {"const": "ok"}, "data": schema},
    }
    return {"200": _json(envelope, description)}


def _paths() -> dict[str, Any]:
    imports = "/v1/datamarts/{datamart_id}/document_imports"
    executions = imports + "/{import_id}/executions"
    one = executions + "/{execution_id}"
    secured_media: list[dict[str, list[str]]] = [{"mediarithmicsToken": []}]
    secured_key: list[dict[str, list[str]]] = [{"apiKey": []}]
    return {
        imports: {
            "post": {
                "summary": "Create a USER_SEGMENT document import (seed 000/001)",
                "operationId": "createDocumentImport",
                "tags": MEDIA,
                "security": secured_media,
                "parameters": [DATAMART],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("DocumentImportRequest")}},
                },
                "responses": {
                    **_ok(_ref("DocumentImport"), "the import"),
                    **_errors("MediarithmicsError", 400, 401, 403, 413, 429),
                },
            }
        },
        imports + "/{import_id}": {
            "get": {
                "summary": "One document import",
                "operationId": "getDocumentImport",
                "tags": MEDIA,
                "security": secured_media,
                "parameters": [DATAMART, IMPORT],
                "responses": {
                    **_ok(_ref("DocumentImport"), "the import"),
                    **_errors("MediarithmicsError", *MEDIA_ERRORS),
                },
            }
        },
        executions: {
            "post": {
                "summary": "Create an execution: the body (NDJSON or CSV) is streamed",
                "operationId": "createExecution",
                "tags": MEDIA,
                "security": secured_media,
                "parameters": [DATAMART, IMPORT],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-ndjson": {"schema": {"type": "string"}},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                "responses": {
                    **_ok(_ref("Execution"), "the finished execution (every line acknowledged)"),
                    **_errors("MediarithmicsError", 401, 403, 404, 413, 415, 429, 503),
                },
            },
            "get": {
                "summary": "The import's executions, newest first",
                "operationId": "listExecutions",
                "tags": MEDIA,
                "security": secured_media,
                "parameters": [DATAMART, IMPORT],
                "responses": {
                    **_ok({"type": "array", "items": _ref("Execution")}, "executions"),
                    **_errors("MediarithmicsError", *MEDIA_ERRORS),
                },
            },
        },
        one: {
            "get": {
                "summary": "One execution: status, counts, first rejected lines",
                "operationId": "getExecution",
                "tags": MEDIA,
                "security": secured_media,
                "parameters": [DATAMART, IMPORT, EXECUTION],
                "responses": {
                    **_ok(_ref("Execution"), "the execution"),
                    **_errors("MediarithmicsError", *MEDIA_ERRORS),
                },
            }
        },
        one + "/errors": {
            "get": {
                "summary": "The execution's error file: one rejected line per NDJSON line",
                "operationId": "getExecutionErrors",
                "tags": MEDIA,
                "security": secured_media,
                "parameters": [DATAMART, IMPORT, EXECUTION],
                "responses": {
                    "200": {
                        "description": "NDJSON of {line, field, reason, raw}",
                        "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
                    },
                    **_errors("MediarithmicsError", *MEDIA_ERRORS, 410),
                },
            }
        },
        one + "/action": {
            "post": {
                "summary": 'Cancel a running execution ({"action": "CANCEL"})',
                "operationId": "cancelExecution",
                "tags": MEDIA,
                "security": secured_media,
                "parameters": [DATAMART, IMPORT, EXECUTION],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "required": ["action"],
                                "properties": {"action": {"const": "CANCEL"}},
                            }
                        }
                    },
                },
                "responses": {
                    **_ok(_ref("Execution"), "the execution, CANCELED"),
                    **_errors("MediarithmicsError", 400, 401, 403, 404, 409, 429),
                },
            }
        },
        "/networks/{network_id}/segments": {
            "post": {
                "summary": "Village: add, block or reset a user's segment status (seed 002)",
                "operationId": "villageSegmentStatus",
                "tags": ["village"],
                "security": [{"mediarithmicsToken": []}, {"apiKey": []}],
                "parameters": [_param("network_id", "Village network id")],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("VillageSegmentStatus")}},
                },
                "responses": {
                    "200": _json(_ref("VillageAccepted"), "durable in Kafka (acks=all)"),
                    **_errors("VillageError", 400, 401, 403, 413, 422, 429, 503),
                },
            }
        },
        "/segments/{segment_id}": {
            "put": {
                "summary": "Segmenter: replace the segment's persons (seed 003), streamed",
                "operationId": "segmenterReplace",
                "tags": ["segmenter"],
                "security": secured_key,
                "parameters": [_param("segment_id", "segment id (the body's id must match)")],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("SegmenterSegment")}},
                },
                "responses": {
                    "200": _json(_ref("SegmenterUpdated"), "every record acknowledged"),
                    **_errors("SegmenterError", 400, 401, 403, 413, 429, 503),
                },
            }
        },
        **_export_paths(secured_key),
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "tags": ["meta"],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document")},
            }
        },
    }


def _export_paths(secured: list[dict[str, list[str]]]) -> dict[str, Any]:
    export_id = _param("export_id", "export id")
    error = {
        "type": "object",
        "properties": {"error": {"type": "string"}, "field": {"type": ["string", "null"]}},
    }

    def get(
        summary: str, op: str, *codes: int, params: list[Any] | None = None, public: bool = False
    ) -> Any:
        responses: dict[str, Any] = {"200": _json({"type": "object"}, summary)}
        for code in codes:
            responses[str(code)] = _json(error, "see the export API (README)")
        return {
            "get": {
                "summary": summary,
                "operationId": op,
                "tags": ["export"],
                "security": [] if public else secured,
                "parameters": params or [],
                "responses": responses,
            }
        }

    return {
        "/v1/exports": {
            "post": {
                "summary": "Request an export (seed 004)",
                "operationId": "createExport",
                "tags": ["export"],
                "security": secured,
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": {"type": "object"}}},
                },
                "responses": {
                    "201": _json(
                        {
                            "type": "object",
                            "properties": {
                                "export_id": {"type": "string"},
                                "poll_url": {"type": "string"},
                                "expires_at": {"type": "string"},
                            },
                        },
                        "queued",
                    ),
                    "400": _json(error, "invalid request; names the field"),
                    "401": _json(error, "missing or invalid x-api-key"),
                    "429": _json(error, "too many pending exports for this key"),
                },
            }
        },
        "/v1/exports/{export_id}": get(
            "Poll: 404 pending, 200 the file, 410 gone, 503 failed",
            "pollExport",
            401,
            404,
            410,
            503,
            params=[export_id],
        ),
        "/v1/exports/{export_id}/status": get(
            "The export job's state", "exportStatus", 401, 410, params=[export_id]
        ),
        "/v1/attributes": get("Attribute ids an export may request", "attributes", 401),
        "/v1/tags": get("Tag ids: the registered segments", "tags", 401),
        "/v1/events": get("Event type ids", "events", 401),
        "/healthz": get("Liveness", "healthz", 503, public=True),
        "/readyz": get("Readiness (Cassandra answers)", "readyz", 503, public=True),
        "/metrics": get("Prometheus metrics", "metrics", public=True),
    }


def _schemas() -> dict[str, Any]:
    text = {"type": "string"}
    nullable_text = {"type": ["string", "null"]}
    return {
        "DocumentImportRequest": {
            "type": "object",
            "required": ["document_type", "mime_type"],
            "properties": {
                "document_type": {"const": "USER_SEGMENT"},
                "mime_type": {"enum": ["APPLICATION_X_NDJSON", "TEXT_CSV"]},
                "encoding": {"type": "string", "default": "utf-8"},
                "name": text,
            },
        },
        "DocumentImport": {
            "type": "object",
            "properties": {
                "id": text,
                "datamart_id": text,
                "document_type": text,
                "mime_type": text,
                "encoding": text,
                "name": text,
                "creation_date": {"type": "integer", "description": "ms since the epoch"},
            },
        },
        "Execution": {
            "type": "object",
            "properties": {
                "id": text,
                "parent_id": text,
                "parent_type": {"const": "DOCUMENT_IMPORT"},
                "status": {"enum": ["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED"]},
                "applied": {
                    "enum": ["APPLYING", "APPLIED", "APPLIED_WITH_DEAD_LETTERS"],
                    "description": "SUCCEEDED means every command was produced; APPLIED that "
                    "the consumer also applied every one (APPLIED_WITH_DEAD_LETTERS: every one "
                    "landed, some dead-lettered).",
                },
                "creation_date": {"type": "integer"},
                "end_date": {"type": ["integer", "null"]},
                "result": {
                    "type": "object",
                    "properties": {
                        name: {"type": "integer"}
                        for name in (
                            "lines_read",
                            "commands_produced",
                            "lines_rejected",
                            "commands_applied",
                            "commands_dead_lettered",
                        )
                    },
                },
                "error": {
                    "type": ["object", "null"],
                    "properties": {"message": text},
                },
                "error_file_uri": nullable_text,
                "rejected_lines": {"type": "array", "items": _ref("RejectedLine")},
            },
        },
        "RejectedLine": {
            "type": "object",
            "properties": {
                "line": {"type": "integer"},
                "field": nullable_text,
                "reason": text,
                "raw": nullable_text,
            },
        },
        "MediarithmicsError": {
            "type": "object",
            "required": ["status", "error"],
            "properties": {
                "status": {"const": "error"},
                "error": text,
                "error_code": text,
                "field": text,
            },
        },
        "VillageSegmentStatus": {
            "type": "object",
            "required": ["user", "segment_id", "user_status"],
            "properties": {
                "user": {"type": "string", "description": "email or user_id"},
                "segment_id": {"type": "integer"},
                "user_status": {"enum": ["add", "block", "reset"]},
                "metadata": {"type": "object"},
                "reference_id": text,
                "status_change_timestamp": {"type": "integer", "description": "Unix seconds"},
                "description": text,
            },
        },
        "VillageAccepted": {
            "type": "object",
            "properties": {
                "success": {"const": True},
                "execution_id": text,
                "line": {
                    "type": "integer",
                    "description": "this command's line in the execution (concurrent POSTs "
                    "of a network share one)",
                },
            },
        },
        "VillageError": {
            "type": "object",
            "properties": {
                "success": {"const": False},
                "error": text,
                "field": nullable_text,
            },
        },
        "SegmenterSegment": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": text,
                "name": text,
                "description": text,
                "broadcastMediumId": text,
                "segmentType": text,
                "persons": {"type": "array", "items": _ref("SegmenterPerson")},
            },
        },
        "SegmenterPerson": {
            "type": "object",
            "required": ["externalId"],
            "properties": {
                "externalId": text,
                "firstName": text,
                "lastName": text,
                "phone": text,
                "email": text,
                "substitutionTags": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["tag", "value"],
                        "properties": {"tag": text, "value": text},
                    },
                },
            },
        },
        "SegmenterUpdated": {
            "type": "object",
            "properties": {
                "data": {"type": "object", "properties": {"isUpdated": {"const": True}}},
                "errorMessage": {"const": ""},
            },
        },
        "SegmenterError": {
            "type": "object",
            "properties": {"success": {"const": False}, "message": text, "error": text},
        },
    }


def openapi_document() -> dict[str, Any]:
    """The whole document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "segflow",
            "version": "1",
            "description": "Seed-compatible ingestion (mediarithmics document imports, Village "
            "segments, Segmenter replace) and the export API, served by `segflow serve`.",
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "mediarithmicsToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "The API token as is (or 'Bearer <token>').",
                },
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    }
