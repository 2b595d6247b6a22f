"""``segflow serve`` (the export API) and ``segflow export`` (one export to a local file).

Both use the same request validation and the same builder; ``export`` just runs it in the
foreground instead of a background worker.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from http_api.export.build import ExportBuilder
from http_api.export.file_writer import JsonObjectWriter
from http_api.export.jobs import utc_now
from http_api.export.request import (
    ExportRequestBody,
    ExportRequestError,
    validate,
)
from segflow.cli_flags import COMPLETE_FILE, SettingFlags, settings_from
from segflow.db.registry import SegmentRegistry
from segflow.db.session import connect_or_fail
from segflow.errors import ExitCode, SegflowError
from segflow.settings import ServeSettings

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve`` and ``export``."""
    serve = subparsers.add_parser(
        "serve",
        help="run the ingestion API (seeds 000-003), the export API (seed 004) and its "
        "background export workers",
        description="At least one API key is required (serve.api_keys, serve.api_key_grants "
        "or serve.api_key_dir).",
    )
    SettingFlags(serve, ServeSettings).section(
        "serve", only=("host", "port", "workers", "api_key_dir", "export_dir")
    )
    serve.set_defaults(handler=_serve)

    export = subparsers.add_parser(
        "export",
        help="export a segment's profiles (or every profile) to a local file",
        description="The same file as the export API's, built in the foreground.",
    )
    export.add_argument(
        "segment", nargs="?", help="segment id or technical name (default: every profile)"
    )
    export.add_argument("--attributes", default="", help="comma-separated attribute ids")
    export.add_argument("--tags", default="", help="comma-separated tag ids (segment ids)")
    export.add_argument("--events", default="", help="comma-separated event type ids")
    export.add_argument("--start-at", help="events window start (ISO 8601; UTC if no zone)")
    export.add_argument("--end-at", help="events window end (default start + 7 days)")
    out = export.add_argument("--out", required=True, type=Path, help="file to write (atomically)")
    out.complete = COMPLETE_FILE  # type: ignore[attr-defined]
    SettingFlags(export, ServeSettings)
    export.add_argument("--gzip", action="store_true", help="gzip the file")
    export.set_defaults(handler=_export)


def _serve(args: argparse.Namespace) -> int:
    from http_api.app import serve

    return serve(settings_from(args, ServeSettings))


def _export(args: argparse.Namespace) -> int:
    settings = settings_from(args, ServeSettings)
    cluster, session = connect_or_fail(settings.cassandra, settings.cassandra.keyspace)
    try:
        registry = SegmentRegistry(session, default_bucket_count=1, cache_ttl_s=0)
        segment_id = None
        if args.segment:
            segment = registry.find(args.segment)
            if segment is None:
                raise SegflowError(f"unknown segment {args.segment!r}", ExitCode.USAGE)
            segment_id = segment.segment_id
        try:
            body = ExportRequestBody(
                segment_filter=segment_id,
                attributes=_split(args.attributes),
                tags=_split(args.tags),
                events=_split(args.events),
                start_at=args.start_at,
                end_at=args.end_at,
            )
            spec = validate(body, lambda ref: registry.get(ref, fresh=True) is not None)
        except ExportRequestError as exc:
            raise SegflowError(
                f"--{(exc.field or 'request').split('[')[0]}: {exc.message}", ExitCode.USAGE
            ) from None
        except ValueError as exc:
            raise SegflowError(f"invalid export request: {exc}", ExitCode.USAGE) from None
        out: Path = args.out
        builder = ExportBuilder(session, settings.serve.page_size, out.parent)
        started = time.monotonic()
        with JsonObjectWriter(out, compress=args.gzip) as writer:
            profiles = builder.build(spec, writer, utc_now(), lambda _count: None, out.name)
            stats = writer.commit()
        elapsed = time.monotonic() - started
        rate = profiles / elapsed if elapsed > 0 else 0.0
        print(
            f"exported {profiles} profiles to {out} ({stats.file_bytes} bytes, "
            f"{elapsed:.1f} s, {rate:,.0f} profiles/s)",
            file=sys.stderr,
        )
    finally:
        cluster.shutdown()
    return ExitCode.OK


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]
