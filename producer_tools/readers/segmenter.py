"""Segmenter replace-all documents (seed 003): one segment and its complete person list.

A document ``{id, name, description, broadcastMediumId, segmentType, persons: [...]}`` replaces
the segment's whole feed membership with the listed persons (``persons: []`` empties it). A
replace may list 100M persons, so it cannot be one record: it becomes

* ``REPLACE_BEGIN`` (position 0): the segment definition read before ``persons`` (the
  consumer upserts it; the clear comes with ``REPLACE_END``);
* one ``REPLACE_MEMBER`` per valid person (position k = ``persons[k-1]``), user key
  ``user_id:{externalId}``, with the person's fields and substitution tags;
* ``REPLACE_END`` (position n + 1): ``member_count`` and the definition as read from the
  whole document. It is yielded only once the document parsed to its end, so its presence
  says the member list is complete.

All records share one version (``created_at_us + 1``). Persons are streamed with ijson's
event parser (``basic_parse``: no per-event prefix strings, whose cost grows with nesting
depth), so memory holds one person at a time. A person is capped at ``max_person_events``
JSON events. Known limit: the parser assembles one JSON string token whole before it can be
measured, so a single giant string is bounded only by ``max_decompressed_bytes``.

Key order: the segment ``id`` is needed before the first member. When ``persons`` comes
before ``id`` and the input can be read twice (a path, or a seekable stream), a first pass
reads the top-level fields while skipping the persons; otherwise the document is refused.
Definition fields after ``persons`` are carried by ``REPLACE_END``. A document without
``persons`` updates the definition only: it yields a lone ``REPLACE_BEGIN`` (once the whole
document parsed) and no ``REPLACE_END``, so the members are left alone. A person that fails
validation is reported and left out: it will not be a member after the replace.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, cast

import ijson

from producer_tools.readers.base import ReadContext, Reader, ReadItem
from producer_tools.readers.fields import (
    FieldError,
    as_identifier,
    as_text,
    encodable,
    type_name,
)
from producer_tools.readers.lines import (
    STREAM_ERRORS,
    InputSource,
    OpenedInput,
    describe_stream_error,
    open_input,
)
from segflow.contract.enums import Operation, Source
from segflow.contract.errors import RecordError
from segflow.contract.models import MAX_SEGMENT_REF_CHARS
from segflow.contract.records import (
    CommandRecord,
    PersonRecord,
    SegmentDefinitionRecord,
    SubstitutionTagRecord,
)
from segflow.contract.user_keys import MAX_IDENTIFIER_CHARS

DEFINITION_FIELDS = {
    "id": "id",
    "name": "name",
    "description": "description",
    "broadcastMediumId": "broadcast_medium_id",
    "segmentType": "segment_type",
}
PERSON_FIELDS = {
    "externalId": "external_id",
    "firstName": "first_name",
    "lastName": "last_name",
    "email": "email",
    "phone": "phone",
    "substitutionTags": "substitution_tags",
}
TAG_FIELDS = frozenset({"tag", "value"})
_PERSON_TEXT = (
    ("firstName", "first_name"),
    ("lastName", "last_name"),
    ("email", "email"),
    ("phone", "phone"),
)
_BEGIN = Operation.REPLACE_BEGIN.value
_MEMBER = Operation.REPLACE_MEMBER.value
_END = Operation.REPLACE_END.value
# The C backend (yajl) replaces unpaired surrogate escapes; only the pure-Python fallback
# can hand back text that UTF-8 (hence Avro) cannot carry.
_CHECK_SURROGATES = not ijson.backend.startswith("yajl2")


def _checked(text: str, field: str) -> str:
    return encodable(text, field) if _CHECK_SURROGATES else text


_SCALARS = frozenset({"string", "number", "boolean", "null", "integer", "double"})
_STARTS = frozenset({"start_map", "start_array"})
_ENDS = frozenset({"end_map", "end_array"})
# Errors ijson raises on bad input. SystemError: the C backend leaks Python's int-size limit
# (a number with thousands of digits) as one.
PARSE_ERRORS: tuple[type[BaseException], ...] = (
    ijson.JSONError,
    ValueError,
    SystemError,
    *STREAM_ERRORS,
)

Event = tuple[str, Any]


class _FatalError(Exception):
    """The document cannot be read further (or must not be replaced)."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


class _PrescanNeededError(Exception):
    """``persons`` came before ``id``: the top-level fields must be read first."""


def _skip(events: Iterator[Event], event: str) -> None:
    """Consume the rest of a value whose first event was ``event`` (constant memory)."""
    if event in _STARTS:
        _skip_depth(events, 1)


def _build(events: Iterator[Event], event: str, value: Any, max_events: int) -> Any:
    """Build one JSON value from its events (raises ``_TooLargeError`` past ``max_events``).

    A hand-rolled builder: ijson's ``ObjectBuilder`` costs a method call per event, and a
    person is ~20 events, so this loop is most of the Segmenter reader's time.
    """
    if event in _SCALARS:
        return value
    root: Any = {} if event == "start_map" else []
    top: Any = root
    stack: list[Any] = []
    key: Any = None
    keys: list[Any] = []
    count = 1
    for kind, item in events:
        count += 1
        if count > max_events:
            depth = len(stack) + 1
            if kind in _STARTS:
                depth += 1
            elif kind in _ENDS:
                depth -= 1
            if depth:
                _skip_depth(events, depth)
            raise _TooLargeError
        if kind == "map_key":
            key = item
        elif kind == "end_map" or kind == "end_array":  # noqa: PLR1714 - identity-fast
            if not stack:
                return root
            top = stack.pop()
            key = keys.pop()
        elif kind == "start_map" or kind == "start_array":  # noqa: PLR1714
            new: Any = {} if kind == "start_map" else []
            if type(top) is dict:
                top[key] = new
            else:
                top.append(new)
            stack.append(top)
            keys.append(key)
            top = new
        elif type(top) is dict:
            top[key] = item
        else:
            top.append(item)
    raise _FatalError(None, "document ends inside a value")


class _TooLargeError(Exception):
    """A person with more JSON events than ``max_person_events``."""


def _skip_depth(events: Iterator[Event], depth: int) -> None:
    """Consume events until ``depth`` open containers are closed."""
    for kind, _ in events:
        if kind in _STARTS:
            depth += 1
        elif kind in _ENDS:
            depth -= 1
            if depth == 0:
                return
    raise _FatalError(None, "document ends inside a value")


def _top_level(events: Iterator[Event]) -> Iterator[tuple[Any, str, Any]]:
    """(key, first event, value) of each top-level field of the document ``events`` hold.

    The caller consumes the rest of each value (its persons, or ``_skip``) from ``events``
    before asking for the next field; a document that is not an object, or ends early, raises.
    """
    kind, _ = next(events, ("eof", None))
    if kind == "eof":
        raise _FatalError(None, "empty document")
    if kind != "start_map":
        raise _FatalError(None, "the document must be a JSON object")
    for kind, key in events:
        if kind == "end_map":
            return
        event, value = next(events, ("eof", None))
        if event == "eof":
            raise _FatalError(None, "document ends after a key")
        yield key, event, value
    raise _FatalError(None, "document ends before its closing brace")


def _definition_field(definition: dict[str, Any], key: str, event: str, value: Any) -> None:
    """Keep one top-level definition field (a scalar) under its record name."""
    if event not in _SCALARS:
        raise _FatalError(key, f"must be a string, got {event.removeprefix('start_')}")
    definition[DEFINITION_FIELDS[key]] = value


class SegmenterReader(Reader):
    """One Segmenter JSON document -> one replace (BEGIN, MEMBER..., END)."""

    format_name: ClassVar[str] = "segmenter"
    source: ClassVar[Source] = Source.SEGMENTER

    def __init__(self, ctx: ReadContext) -> None:
        super().__init__(ctx)
        self.version = self.ids.replace_version()
        self.persons_read = 0
        self.members = 0

    def read(self, source: InputSource) -> Iterator[ReadItem]:
        """Stream the replace's records; see the module docstring for the key-order rule."""
        start = None
        if not isinstance(source, str | Path):
            try:
                start = source.tell() if source.seekable() else None
            except OSError:
                start = None
        try:
            yield from super().read(source)
            return
        except _PrescanNeededError:
            pass
        if not isinstance(source, str | Path) and start is None:
            yield (
                0,
                self.error(
                    0,
                    "id",
                    "the segment id must come before persons when the input cannot be read twice",
                    fatal=True,
                ),
            )
            return
        with self._reopened(source, start) as opened:
            try:
                definition = self._prescan(opened)
            except _FatalError as exc:
                yield 0, self.error(0, exc.field, exc.reason, fatal=True)
                return
            except PARSE_ERRORS as exc:
                yield 0, self.error(0, None, _parse_reason(exc), fatal=True)
                return
        with self._reopened(source, start) as opened:
            yield from self._document(opened, definition)

    @contextmanager
    def _reopened(self, source: InputSource, start: int | None) -> Iterator[OpenedInput]:
        """The input again from its start (a path, or a stream rewound), warnings forgotten."""
        if start is not None and not isinstance(source, str | Path):
            source.seek(start)
        self._unknown.clear()
        with open_input(source, self.limits.max_decompressed_bytes) as opened:
            self._opened = opened
            yield opened

    def _read_opened(self, opened: OpenedInput, source: InputSource) -> Iterator[ReadItem]:
        yield from self._document(opened, None)

    def _events(self, opened: OpenedInput) -> Iterator[Event]:
        return cast(Iterator[Event], ijson.basic_parse(opened.stream, use_float=True))

    def _prescan(self, opened: OpenedInput) -> dict[str, Any]:
        """First pass: the top-level definition fields, persons skipped (constant memory)."""
        events = self._events(opened)
        definition: dict[str, Any] = {}
        for key, event, value in _top_level(events):
            if key in DEFINITION_FIELDS:
                _definition_field(definition, key, event, value)
            else:
                _skip(events, event)
        return definition

    def _document(
        self, opened: OpenedInput, prescanned: dict[str, Any] | None
    ) -> Iterator[ReadItem]:
        events = self._events(opened)
        definition: dict[str, Any] = {}
        position = 0
        persons_seen = False
        begin_sent = False
        try:
            for key, event, value in _top_level(events):
                if key == "persons":
                    if persons_seen:
                        raise _FatalError("persons", "appears more than once")
                    persons_seen = True
                    if event != "start_array":
                        raise _FatalError("persons", f"must be an array, got {event}")
                    if prescanned is not None:
                        definition = dict(prescanned)
                    if "id" not in definition:
                        if prescanned is None:
                            raise _PrescanNeededError
                        raise _FatalError("id", "missing: the segment id is required")
                    segment = self._definition(definition)
                    yield 0, self._record(_BEGIN, 0, segment=segment)
                    begin_sent = True
                    for item in self._persons(events, segment["id"]):
                        position = item[0]
                        yield item
                    position = self.persons_read
                elif key in DEFINITION_FIELDS:
                    _definition_field(definition, key, event, value)
                else:
                    problem = self.unknown_fields([key], 0, None)
                    if problem is not None:
                        raise _FatalError(problem.field, problem.reason)
                    _skip(events, event)
            for _ in events:  # trailing content after the document is an error (ijson raises)
                raise _FatalError(None, "content after the document")
            segment = self._definition(definition)
            if not persons_seen:
                # Seed 003: persons are optional ("you have the possibility to send it with
                # people"). Without them the document updates the definition only: a lone
                # REPLACE_BEGIN, whose consumer effect is the definition upsert; no END, so
                # nothing is cleared and the members stay as they are.
                yield 0, self._record(_BEGIN, 0, segment=segment)
                return
            end = self._record(_END, self.persons_read + 1, segment=segment)
            end["member_count"] = self.members
            yield self.persons_read + 1, end
        except _PrescanNeededError:
            raise
        except _FatalError as exc:
            where = position + 1 if begin_sent else 0
            yield where, self.error(where, exc.field, exc.reason, fatal=True)
        except PARSE_ERRORS as exc:
            where = position + 1 if begin_sent else 0
            yield where, self.error(where, None, _parse_reason(exc), fatal=True)

    def _definition(self, fields: dict[str, Any]) -> SegmentDefinitionRecord:
        """Validate the top-level fields into a definition (a bad one ends the document)."""
        try:
            segment_id = as_identifier(fields.get("id"), "id", MAX_SEGMENT_REF_CHARS)
            if segment_id is None:
                raise FieldError("id", "missing: the segment id is required")
            limit = self.limits.max_text_chars
            definition: SegmentDefinitionRecord = {
                "id": encodable(segment_id, "id"),
                "name": None,
                "description": None,
                "broadcast_medium_id": None,
                "segment_type": None,
            }
            for source_name, name in DEFINITION_FIELDS.items():
                if name != "id":
                    text = as_text(fields.get(name), source_name, limit)
                    definition[name] = None if text is None else encodable(text, source_name)  # type: ignore[literal-required]
        except FieldError as exc:
            raise _FatalError(exc.field, exc.reason) from None
        return definition

    def _persons(self, events: Iterator[Event], segment_id: str) -> Iterator[ReadItem]:
        max_events = self.limits.max_person_events
        self.members = 0
        for kind, value in events:
            if kind == "end_array":
                return
            self.persons_read += 1
            self.lines_read = self.persons_read
            position = self.persons_read
            try:
                person = _build(events, kind, value, max_events)
            except _TooLargeError:
                reason = f"more than {max_events} JSON events (max_person_events)"
                yield position, self.error(position, f"persons[{position - 1}]", reason)
                continue
            yield position, self._member(person, position, segment_id)
        raise _FatalError("persons", "document ends inside the persons array")

    def _member(self, person: Any, position: int, segment_id: str) -> CommandRecord | RecordError:
        # Field paths (persons[41].substitutionTags[0].value) are only built for errors:
        # formatting them for every person would cost more than validating it.
        where = f"persons[{position - 1}]"
        if type(person) is not dict:
            return self.error(position, where, f"must be an object, got {type_name(person)}")
        unknown = person.keys() - PERSON_FIELDS.keys()
        if unknown:
            problem = self.unknown_fields(unknown, position, None, prefix="persons[].")
            if problem is not None:
                return problem
        try:
            record = self._person(person)
        except FieldError as exc:
            field = exc.field if exc.field.startswith("persons[]") else f"{where}.{exc.field}"
            return self.error(position, field, exc.reason, _person_preview(person))
        command = self._record(_MEMBER, position, segment_id=segment_id)
        command["user_key"] = "user_id:" + record["external_id"]
        command["person"] = record
        self.members += 1
        return command

    def _person(self, person: dict[str, Any]) -> PersonRecord:
        get = person.get
        external_id = as_identifier(get("externalId"), "externalId", MAX_IDENTIFIER_CHARS)
        if external_id is None:
            raise FieldError("externalId", "missing: every person needs an externalId")
        limit = self.limits.max_text_chars
        record: PersonRecord = {
            "external_id": _checked(external_id, "externalId"),
            "first_name": None,
            "last_name": None,
            "email": None,
            "phone": None,
            "substitution_tags": [],
        }
        for source_name, name in _PERSON_TEXT:
            value = get(source_name)
            if value is not None:
                text = as_text(value, source_name, limit)
                record[name] = None if text is None else _checked(text, source_name)  # type: ignore[literal-required]
        tags = get("substitutionTags")
        if tags is not None:
            if type(tags) is not list:
                raise FieldError("substitutionTags", f"must be an array, got {type_name(tags)}")
            out = []
            for index, tag in enumerate(tags):
                try:
                    out.append(self._tag(tag))
                except FieldError as exc:
                    if exc.field.startswith("persons[]"):
                        raise
                    field = f"substitutionTags[{index}]" + (f".{exc.field}" if exc.field else "")
                    raise FieldError(field, exc.reason) from None
            record["substitution_tags"] = out
        return record

    def _tag(self, tag: Any) -> SubstitutionTagRecord:
        if type(tag) is not dict:
            raise FieldError("", f"must be an object, got {type_name(tag)}")
        unknown = tag.keys() - TAG_FIELDS
        if unknown:
            problem = self.unknown_fields(
                unknown, self.persons_read, None, prefix="persons[].substitutionTags[]."
            )
            if problem is not None:
                raise FieldError(problem.field or "", problem.reason)
        limit = self.limits.max_text_chars
        name = as_text(tag.get("tag"), "tag", limit)
        if not name:
            raise FieldError("tag", "missing: a substitution tag needs a name")
        value = as_text(tag.get("value"), "value", limit)
        if value is None:
            raise FieldError("value", "missing: a substitution tag needs a value")
        return {"tag": _checked(name, "tag"), "value": _checked(value, "value")}

    def _record(
        self,
        operation: str,
        position: int,
        segment: SegmentDefinitionRecord | None = None,
        segment_id: str | None = None,
    ) -> CommandRecord:
        ident = segment["id"] if segment is not None else segment_id
        assert ident is not None
        record = self.template.copy()
        record["command_id"] = self.ids.command_id(position)
        record["operation"] = operation
        record["version"] = self.version
        record["segment_ids"] = [ident]
        record["segment"] = segment
        record["origin"] = {"file": self.file, "line": position}
        return record


def _parse_reason(exc: BaseException) -> str:
    if isinstance(exc, STREAM_ERRORS):
        return describe_stream_error(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"not valid JSON: {first[:200]}"


def _person_preview(person: dict[str, Any]) -> str:
    from segflow.contract.jsontext import compact_json

    try:
        return compact_json(person)
    except ValueError:
        return repr(person)
