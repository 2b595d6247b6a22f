"""Export requests: the POST body, its validation rules (seed 004) and the normalized spec.

Pure: the only outside knowledge needed (which segment ids exist) is passed in as a
function, so every rule is unit-tested without Cassandra. Every failure names the field.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from http_api.export.catalog import EVENT_TYPES, is_known_attribute

MAX_ATTRIBUTES = 75
MAX_TAGS = 25
MAX_WINDOW_MONTHS = 3
DEFAULT_WINDOW = timedelta(days=7)


class ExportRequestError(ValueError):
    """A request the API answers with 400 ``{"error": message, "field": field}``."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class ExportRequestBody(BaseModel):
    """The JSON body of ``POST /v1/exports``; unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", strict=False)

    segment_filter: str | None = None
    attributes: list[str] = []
    tags: list[str] = []
    events: list[str] = []
    start_at: datetime | None = None
    end_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ExportSpec:
    """A validated export: what to read and what to write (persisted with the job)."""

    segment_filter: str | None
    attributes: tuple[str, ...]
    tags: tuple[str, ...]
    events: tuple[str, ...]
    start_at: datetime | None
    end_at: datetime | None

    @property
    def lists_profiles(self) -> bool:
        """Seed 004: without an attribute or a tag, no profile shows up in the file."""
        return bool(self.attributes or self.tags)

    def to_json(self) -> str:
        """Stable JSON for the job row."""
        return orjson.dumps(
            {
                "segment_filter": self.segment_filter,
                "attributes": list(self.attributes),
                "tags": list(self.tags),
                "events": list(self.events),
                "start_at": _iso(self.start_at),
                "end_at": _iso(self.end_at),
            }
        ).decode()

    @classmethod
    def from_json(cls, text: str) -> ExportSpec:
        """Inverse of ``to_json`` (the stored spec was validated when it was requested)."""
        data: dict[str, Any] = orjson.loads(text)
        return cls(
            segment_filter=data["segment_filter"],
            attributes=tuple(data["attributes"]),
            tags=tuple(data["tags"]),
            events=tuple(data["events"]),
            start_at=_parse(data["start_at"]),
            end_at=_parse(data["end_at"]),
        )


def parse_body(raw: bytes) -> ExportRequestBody:
    """Decode and type-check the body; the first problem becomes an ExportRequestError."""
    try:
        data = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise ExportRequestError(None, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ExportRequestError(None, "body must be a JSON object")
    try:
        return ExportRequestBody.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ExportRequestError(_field_path(first["loc"]), first["msg"]) from None


def validate(body: ExportRequestBody, known_segment: Callable[[str], bool]) -> ExportSpec:
    """Apply seed 004's rules; returns the normalized spec or raises ExportRequestError."""
    _check_list("attributes", body.attributes, MAX_ATTRIBUTES)
    _check_list("tags", body.tags, MAX_TAGS)
    _check_list("events", body.events, len(EVENT_TYPES))
    if not (body.attributes or body.tags or body.events):
        raise ExportRequestError(
            "attributes", "request at least one attribute, tag or event (an export of nothing)"
        )
    for index, attribute in enumerate(body.attributes):
        if not is_known_attribute(attribute):
            raise ExportRequestError(
                f"attributes[{index}]", f"unknown attribute {attribute!r} (see GET /v1/attributes)"
            )
    for index, event in enumerate(body.events):
        if event not in EVENT_TYPES:
            raise ExportRequestError(
                f"events[{index}]", f"unknown event type {event!r} (see GET /v1/events)"
            )
    for index, tag in enumerate(body.tags):
        if not known_segment(tag):
            raise ExportRequestError(f"tags[{index}]", f"unknown tag {tag!r} (see GET /v1/tags)")
    if body.segment_filter is not None and not known_segment(body.segment_filter):
        raise ExportRequestError("segment_filter", f"unknown segment {body.segment_filter!r}")
    try:
        start_at, end_at = _window(body)
    except (OverflowError, ValueError) as exc:  # datetime arithmetic past year 1 or 9999
        if isinstance(exc, ExportRequestError):
            raise
        field = "end_at" if body.end_at is not None else "start_at"
        raise ExportRequestError(
            field, "the events window must lie between years 1 and 9999 (UTC)"
        ) from None
    return ExportSpec(
        segment_filter=body.segment_filter,
        attributes=tuple(body.attributes),
        tags=tuple(body.tags),
        events=tuple(body.events),
        start_at=start_at,
        end_at=end_at,
    )


def _window(body: ExportRequestBody) -> tuple[datetime | None, datetime | None]:
    if body.start_at is None:
        if body.events:
            raise ExportRequestError("start_at", "start_at is required when events are requested")
        if body.end_at is not None:
            raise ExportRequestError("end_at", "end_at needs a start_at")
        return None, None
    start_at = _utc(body.start_at)
    end_at = _utc(body.end_at) if body.end_at is not None else start_at + DEFAULT_WINDOW
    if end_at <= start_at:
        raise ExportRequestError("end_at", "end_at must be after start_at")
    if end_at > add_months(start_at, MAX_WINDOW_MONTHS):
        raise ExportRequestError(
            "end_at", f"the events window is limited to {MAX_WINDOW_MONTHS} months"
        )
    return start_at, end_at


def add_months(moment: datetime, months: int) -> datetime:
    """Same day-of-month ``months`` later, clamped to the month's last day (Jan 31 -> Apr 30)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    if year > datetime.max.year:  # past the calendar's end: no window can reach it anyway
        return datetime.max.replace(tzinfo=moment.tzinfo)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _check_list(field: str, values: list[str], limit: int) -> None:
    if len(values) > limit:
        raise ExportRequestError(field, f"at most {limit} {field} per export, got {len(values)}")
    seen: set[str] = set()
    for index, value in enumerate(values):
        if not value:
            raise ExportRequestError(f"{field}[{index}]", "must not be empty")
        if value in seen:
            raise ExportRequestError(f"{field}[{index}]", f"{value!r} is listed twice")
        seen.add(value)


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are read as UTC (documented); aware ones are converted."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
