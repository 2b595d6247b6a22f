"""mediarithmics USER_SEGMENT imports (seeds 000/001): NDJSON and CSV, one command per line.

This is the uploader's hot path (a 1M-line file must go through parse + validate + encode in
a few µs per line), so ``MediarithmicsBuilder.build`` works on the parsed dict with plain
comparisons and copies a per-execution template dict instead of building a pydantic model;
the model tests hold it to the same rules.

Rules (each failure names the field):

* ``operation`` mandatory, ``UPDATE`` -> FEED_ADD, ``DELETE`` -> FEED_REMOVE.
* Exactly one identifier: ``compartment_id`` + ``user_account_id`` together, or
  ``email_hash``, or ``user_agent_id`` (null or empty text = absent).
* At least one segment among ``segment_id``, ``segment_ids``, ``segment_technical_name``,
  ``segment_technical_names``; ids and names are merged, duplicates collapse.
* ``expiration_duration`` mandatory integer >= 0 (minutes, 0 = never); ``expiration_ts``
  optional, ms since the epoch, 0 = never, and when non-zero it wins. A non-zero value below
  1e11 can only be seconds and is rejected (naming the unit); an UPDATE whose
  ``expiration_ts`` is not after the execution's creation removes the user: it is produced
  with a notice in the rejects file, or rejected under ``--strict``. Absolute expiry =
  ``expiration_ts``, or the execution's created time + ``expiration_duration``. Only UPDATE
  carries an expiry and a data bag (they are checked on DELETE too, then dropped).
* ``data_bag``: a string holding JSON text (size-capped), kept verbatim.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

from producer_tools.readers.base import LineBuilder, NdjsonReader, ReadContext, Reader, ReadItem
from producer_tools.readers.fields import (
    FieldError,
    as_identifier,
    as_int,
    as_number_floor,
    is_absent,
    json_list_cell,
    type_name,
)
from producer_tools.readers.lines import (
    InputSource,
    LineProblem,
    OpenedInput,
    iter_lines,
)
from segflow.contract.enums import Operation, Source
from segflow.contract.errors import RecordError
from segflow.contract.ids import MAX_TIMESTAMP_MS, MS_PER_MINUTE, US_PER_MS
from segflow.contract.jsontext import parse_json_text
from segflow.contract.models import MAX_SEGMENT_REF_CHARS
from segflow.contract.records import CommandRecord
from segflow.contract.user_keys import MAX_IDENTIFIER_CHARS

KNOWN_FIELDS = frozenset(
    {
        "operation",
        "compartment_id",
        "user_account_id",
        "email_hash",
        "user_agent_id",
        "segment_id",
        "segment_ids",
        "segment_technical_name",
        "segment_technical_names",
        "expiration_duration",
        "expiration_ts",
        "data_bag",
    }
)
LIST_FIELDS = ("segment_ids", "segment_technical_names")
REQUIRED_COLUMNS = ("operation", "expiration_duration")
# Plain strings (not enum attribute lookups) on the per-line path.
_FEED_ADD = Operation.FEED_ADD.value
_FEED_REMOVE = Operation.FEED_REMOVE.value
_OPERATIONS = {"UPDATE": _FEED_ADD, "DELETE": _FEED_REMOVE}
IDENTITY_FIELD = "user_identifier"
# ``expiration_ts`` is milliseconds since the epoch. A non-zero value below 1e11 is before
# 1973-03-03 in milliseconds but a plausible date (up to year 5138) in seconds: it can only be
# seconds, and reading it as milliseconds would silently remove the user (an expiry in 1970).
SECONDS_BELOW_MS = 100_000_000_000


def _seconds_reason(expiration_ts: int) -> str:
    return (
        f"{expiration_ts} is below 1e11: it can only be seconds since the epoch "
        f"({_iso_ms(expiration_ts * 1000)}); expiration_ts is milliseconds since the epoch: "
        f"send {expiration_ts * 1000}"
    )


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


def _segment_refs(
    single: Any, many: Any, single_name: str, many_name: str, limit: int
) -> list[str]:
    refs: list[str] = []
    if not is_absent(single):
        ref = as_identifier(single, single_name, MAX_SEGMENT_REF_CHARS)
        if ref is not None:
            refs.append(ref)
    if many is not None:
        if type(many) is not list:
            raise FieldError(many_name, f"must be an array of strings, got {type_name(many)}")
        if len(many) > limit:
            raise FieldError(many_name, f"more than {limit} segments")
        for index, value in enumerate(many):
            ref = as_identifier(value, f"{many_name}[{index}]", MAX_SEGMENT_REF_CHARS)
            if ref is None:
                raise FieldError(f"{many_name}[{index}]", "empty segment reference")
            refs.append(ref)
        if len(refs) > 1:
            refs = list(dict.fromkeys(refs))
    return refs


class MediarithmicsBuilder:
    """The validate stage: one parsed line (dict) -> a command dict or a ``RecordError``."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        ctx = reader.ctx
        self.created_at_ms = ctx.created_at_us // US_PER_MS
        self.line_version = reader.ids.line_version
        self.limits = ctx.limits
        self.id_base = reader.ids.hasher()
        self.file = reader.file
        self.template = reader.template
        # Set by ``build`` when the record it returned also needs a notice in the rejects file
        # (an expiry already passed); the reading loop yields it after the record and clears it.
        self.notice: RecordError | None = None

    def build(self, obj: Any, line: int, raw: bytes | str) -> CommandRecord | RecordError:
        """Validate one parsed line; ``raw`` is only used in error reports.

        Written for speed (it runs once per line, in one function): fields absent from the
        line cost one dict lookup, and the common shapes (one identifier, one segment_id,
        integer expiries) skip the general helpers.
        """
        if type(obj) is not dict:
            return self.reader.error(
                line, None, f"line is a JSON {type_name(obj)}, not an object", raw
            )
        if not KNOWN_FIELDS.issuperset(obj):
            problem = self.reader.unknown_fields(set(obj) - KNOWN_FIELDS, line, raw)
            if problem is not None:
                return problem
        try:
            get = obj.get
            operation_value = get("operation")
            operation = _OPERATIONS.get(operation_value) if type(operation_value) is str else None
            if operation is None and type(operation_value) is str:
                operation = _OPERATIONS.get(operation_value.strip())  # "UPDATE " from a CSV
            if operation is None:
                if is_absent(operation_value):
                    raise FieldError("operation", "missing (UPDATE or DELETE)")
                raise FieldError(
                    "operation", f"must be UPDATE or DELETE, got {str(operation_value)[:40]!r}"
                )

            compartment = as_identifier(
                get("compartment_id"), "compartment_id", MAX_IDENTIFIER_CHARS
            )
            account = as_identifier(get("user_account_id"), "user_account_id", MAX_IDENTIFIER_CHARS)
            email_hash = as_identifier(get("email_hash"), "email_hash", MAX_IDENTIFIER_CHARS)
            user_agent = as_identifier(get("user_agent_id"), "user_agent_id", MAX_IDENTIFIER_CHARS)
            if account is not None:
                if compartment is None:
                    raise FieldError("compartment_id", "user_account_id needs compartment_id")
                if ":" in compartment:
                    raise FieldError("compartment_id", "must not contain ':'")
            elif compartment is not None:
                raise FieldError("user_account_id", "compartment_id needs user_account_id")
            given = (account is not None) + (email_hash is not None) + (user_agent is not None)
            if given != 1:
                raise FieldError(
                    IDENTITY_FIELD,
                    "exactly one identifier is needed: compartment_id + user_account_id, "
                    "email_hash, or user_agent_id"
                    + (" (none given)" if given == 0 else f" ({given} given)"),
                )
            if account is not None:
                user_key = f"account:{compartment}:{account}"
            elif email_hash is not None:
                user_key = "email_hash:" + email_hash
            else:
                user_key = f"user_agent:{user_agent}"

            segment_id = get("segment_id")
            many_ids = get("segment_ids")
            name = get("segment_technical_name")
            many_names = get("segment_technical_names")
            names: list[str]
            if many_ids is None and name is None and many_names is None:
                names = []
                ref = (
                    None
                    if segment_id is None
                    else as_identifier(segment_id, "segment_id", MAX_SEGMENT_REF_CHARS)
                )
                segment_ids = [] if ref is None else [ref]
            else:
                limit = self.limits.max_segments_per_line
                segment_ids = _segment_refs(
                    segment_id, many_ids, "segment_id", "segment_ids", limit
                )
                names = _segment_refs(
                    name, many_names, "segment_technical_name", "segment_technical_names", limit
                )
                if len(segment_ids) + len(names) > limit:
                    raise FieldError("segment_ids", f"more than {limit} segments")
            if not segment_ids and not names:
                raise FieldError(
                    "segment_id",
                    "at least one of segment_id, segment_ids, segment_technical_name, "
                    "segment_technical_names is needed",
                )

            duration = get("expiration_duration")
            if type(duration) is not int:
                duration = as_int(duration, "expiration_duration")
                if duration is None:
                    raise FieldError("expiration_duration", "missing (integer minutes, 0 = never)")
            if duration < 0:
                raise FieldError("expiration_duration", "must be >= 0 (minutes, 0 = never)")
            expiration_ts = get("expiration_ts")
            if expiration_ts is not None:
                if type(expiration_ts) is not int:
                    expiration_ts = as_number_floor(expiration_ts, "expiration_ts")
                if expiration_ts is not None:
                    if expiration_ts < 0:
                        raise FieldError(
                            "expiration_ts", "must be >= 0 (ms since the epoch, 0 = never)"
                        )
                    if expiration_ts > MAX_TIMESTAMP_MS:
                        raise FieldError(
                            "expiration_ts", "after year 9999: ms since the epoch expected"
                        )
                    if 0 < expiration_ts < SECONDS_BELOW_MS:
                        raise FieldError("expiration_ts", _seconds_reason(expiration_ts))
            expires_at: int | None = None
            if expiration_ts:
                expires_at = expiration_ts
                if expiration_ts <= self.created_at_ms and operation is _FEED_ADD:
                    self._past_expiry(expiration_ts, line, raw)
            elif duration:
                expires_at = self.created_at_ms + duration * MS_PER_MINUTE
                if expires_at > MAX_TIMESTAMP_MS:
                    raise FieldError("expiration_duration", "expiry after year 9999")

            data_bag = get("data_bag")
            if data_bag is not None:
                data_bag = self._data_bag(data_bag)

            record = self.template.copy()
            digest = self.id_base.copy()
            digest.update(b"%d" % line)
            record["command_id"] = digest.hexdigest()
            record["version"] = self.line_version(line)
            record["user_key"] = user_key
            record["segment_ids"] = segment_ids
            record["segment_technical_names"] = names
            record["operation"] = operation
            if operation is _FEED_ADD:
                record["expires_at_ms"] = expires_at
                record["data_bag"] = data_bag
            record["origin"] = {"file": self.file, "line": line}
            return record

        except FieldError as exc:
            return self.reader.error(line, exc.field, exc.reason, raw)

    def _past_expiry(self, expiration_ts: int, line: int, raw: bytes | str) -> None:
        """An UPDATE whose expiry passed before the execution was created removes the user.

        Judged against the execution's creation time (not the clock at read time) so that
        reading the file again gives the same result. Under ``--strict`` it is a reject;
        otherwise the command is produced (the consumer applies it as a removal at its
        version) and a notice saying so goes to the rejects file.
        """
        when = _iso_ms(expiration_ts)
        created = _iso_ms(self.created_at_ms)
        if self.reader.ctx.strict:
            raise FieldError(
                "expiration_ts",
                f"expiry {when} is not after the execution's creation ({created}): the line "
                "would remove the user from the segment (rejected under --strict)",
            )
        self.notice = self.reader.error(
            line,
            "expiration_ts",
            f"expiry {when} is not after the execution's creation ({created}): "
            "applied as a removal of the user from the segment",
            raw,
            notice=True,
        )

    def _data_bag(self, data_bag: Any) -> str | None:
        if data_bag == "":
            return None
        if type(data_bag) is not str:
            raise FieldError(
                "data_bag", f"must be a string holding escaped JSON, got {type_name(data_bag)}"
            )
        cap = self.limits.max_data_bag_bytes
        if len(data_bag) > cap or (len(data_bag) * 4 > cap and len(data_bag.encode()) > cap):
            raise FieldError("data_bag", f"larger than {cap} bytes (max_data_bag_bytes)")
        try:
            parse_json_text(data_bag)
        except ValueError as exc:
            raise FieldError("data_bag", f"not valid JSON: {exc}") from None
        return data_bag


class MediarithmicsNdjsonReader(NdjsonReader):
    """NDJSON: one JSON object per line; blank lines ignored, CRLF and a BOM accepted.

    An object spread over several lines (pretty-printed, as in the seed's curl example) is one
    command, reported at its first line (``lines.JsonRecords``).
    """

    format_name: ClassVar[str] = "mediarithmics-ndjson"
    source: ClassVar[Source] = Source.MEDIARITHMICS

    def __init__(self, ctx: ReadContext) -> None:
        super().__init__(ctx)
        self.builder = MediarithmicsBuilder(self)

    def line_builder(self) -> LineBuilder:
        """The shared builder's bound method: no wrapper call per line."""
        return self.builder.build

    def take_notice(self) -> RecordError | None:
        """The builder's pending notice (an expiry already passed), cleared once taken."""
        notice, self.builder.notice = self.builder.notice, None
        return notice


class _LineSignalError(Exception):
    """Raised through ``csv.reader`` when the line source hit a problem."""

    def __init__(self, line: int, reason: str, raw: bytes, fatal: bool) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason
        self.raw = raw
        self.fatal = fatal


class _CsvLines:
    """Decoded lines for ``csv.reader``, remembering where the current record started.

    A class, not a generator: it must raise ``_LineSignalError`` through ``csv.reader`` and keep
    going afterwards, and a generator that raises is finished.
    """

    def __init__(self, lines: Iterator[tuple[int, bytes | LineProblem]], max_record: int) -> None:
        self._lines = lines
        self._max_record = max_record
        self._parts: list[str] = []
        self._size = 0
        self.start = 0
        self.last = 0

    def __iter__(self) -> _CsvLines:
        return self

    def new_record(self) -> None:
        """Forget the previous record's lines."""
        self._parts.clear()
        self._size = 0

    def raw(self) -> str:
        """The current record's text as read (newlines included)."""
        return "".join(self._parts)

    def __next__(self) -> str:
        line, raw = next(self._lines)
        self.last = line
        if type(raw) is not bytes:
            assert isinstance(raw, LineProblem)
            self.new_record()
            raise _LineSignalError(line, raw.reason, raw.raw, raw.fatal)
        try:
            text = raw.decode()
        except UnicodeDecodeError as exc:
            self.new_record()
            raise _LineSignalError(
                line, f"not valid UTF-8: {exc.reason} at byte {exc.start}", raw, False
            ) from None
        if not self._parts:
            self.start = line
        self._size += len(raw)
        if self._size > self._max_record:
            start, head = self.start, self.raw()[:200].encode()
            self.new_record()
            raise _LineSignalError(
                start,
                f"quoted record longer than {self._max_record} bytes (max_line_bytes)",
                head,
                False,
            )
        self._parts.append(text)
        return text


class MediarithmicsCsvReader(Reader):
    """CSV with a header row naming the columns (any order; ``,``, ``;`` or tab delimited).

    Quoted fields (also spanning lines), CRLF and a BOM are accepted; blank lines are
    ignored; list columns hold a JSON array. A record is reported at its first line (the
    header is line 1). A header that misses ``operation`` or ``expiration_duration``, repeats
    a column, or (strict) names an unknown column ends the file with one error: every line
    would fail the same way.
    """

    format_name: ClassVar[str] = "mediarithmics-csv"
    source: ClassVar[Source] = Source.MEDIARITHMICS

    def __init__(self, ctx: ReadContext) -> None:
        super().__init__(ctx)
        self.builder = MediarithmicsBuilder(self)
        if csv.field_size_limit() < ctx.limits.max_line_bytes:
            csv.field_size_limit(ctx.limits.max_line_bytes)

    def _read_opened(self, opened: OpenedInput, source: InputSource) -> Iterator[ReadItem]:
        lines = _CsvLines(
            iter_lines(opened.stream, self.limits.max_line_bytes), self.limits.max_line_bytes
        )
        header: list[str] | None = None
        delimiter = ","
        rows: Iterator[list[str]] = csv.reader(lines)
        while True:
            lines.new_record()
            try:
                row = next(rows)
            except StopIteration:
                if header is None:
                    yield (
                        1,
                        self.error(1, None, "empty file: a CSV header row is required", fatal=True),
                    )
                return
            except _LineSignalError as signal:
                self.lines_read = lines.last
                yield (
                    signal.line,
                    self.error(signal.line, None, signal.reason, signal.raw, signal.fatal),
                )
                if signal.fatal:
                    return
                rows = csv.reader(lines, delimiter=delimiter)
                continue
            except csv.Error as exc:
                self.lines_read = lines.last
                yield lines.start, self.error(lines.start, None, f"CSV syntax: {exc}", lines.raw())
                rows = csv.reader(lines, delimiter=delimiter)
                continue
            self.lines_read = lines.last
            line = lines.start
            raw = lines.raw()
            if not row or all(not cell.strip() for cell in row):
                continue
            if header is None:
                delimiter, header, problem = self._header(row, raw, line)
                if problem is not None:
                    yield line, problem
                    return
                if delimiter != ",":
                    rows = csv.reader(lines, delimiter=delimiter)
                continue
            yield line, self._row(header, row, line, raw)
            if self.builder.notice is not None:
                yield line, self.builder.notice
                self.builder.notice = None

    def _header(
        self, row: list[str], raw: str, line: int
    ) -> tuple[str, list[str], RecordError | None]:
        delimiter = ","
        if len(row) == 1:
            for candidate in (";", "\t"):
                split = next(csv.reader([raw], delimiter=candidate))
                if len(split) > 1:
                    delimiter, row = candidate, split
                    break
        header = [cell.strip() for cell in row]
        header[0] = header[0].lstrip("\ufeff")
        missing = [name for name in REQUIRED_COLUMNS if name not in header]
        if missing:
            return (
                delimiter,
                header,
                self.error(
                    line,
                    missing[0],
                    "a header row naming the columns is required; missing column(s): "
                    + ", ".join(missing),
                    raw,
                    fatal=True,
                ),
            )
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            return (
                delimiter,
                header,
                self.error(
                    line,
                    duplicates[0],
                    "column appears more than once in the header",
                    raw,
                    fatal=True,
                ),
            )
        unknown = [name for name in header if name not in KNOWN_FIELDS]
        if unknown:
            problem = self.unknown_fields(unknown, line, raw)
            if problem is not None:
                return (
                    delimiter,
                    header,
                    RecordError(
                        problem.file, problem.line, problem.field, problem.reason, problem.raw, True
                    ),
                )
        return delimiter, header, None

    def _row(
        self, header: list[str], row: list[str], line: int, raw: str
    ) -> CommandRecord | RecordError:
        if len(row) != len(header):
            return self.error(
                line, None, f"row has {len(row)} cells, the header has {len(header)}", raw
            )
        obj: dict[str, Any] = {}
        for name, cell in zip(header, row, strict=True):
            if name in KNOWN_FIELDS and cell != "":
                obj[name] = cell
        try:
            for name in LIST_FIELDS:
                if name in obj:
                    obj[name] = json_list_cell(obj[name], name)
        except FieldError as exc:
            return self.error(line, exc.field, exc.reason, raw)
        return self.builder.build(obj, line, raw)
