"""``segflow consume``, ``members``, ``user`` and ``segments create|list|show``."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from segflow.cli_flags import SettingFlags, add_output_flag, print_json, settings_from
from segflow.contract.codec import codec_with_writer_schemas
from segflow.contract.errors import SchemaEvolutionError
from segflow.contract.user_keys import UserKeyError, canonical_user_key
from segflow.db.membership import Member, MembershipReader
from segflow.db.registry import Segment, SegmentRegistry
from segflow.db.session import connect_or_fail
from segflow.errors import ExitCode, SegflowError
from segflow.settings import ConsumeSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the consumer's commands."""
    consume = subparsers.add_parser(
        "consume", help="run the consumer group that applies commands to Cassandra"
    )
    consume.add_argument(
        "--until-idle",
        action="store_true",
        help="exit once caught up and no record arrived for consumer.idle_exit_s",
    )
    SettingFlags(consume, ConsumeSettings).field("consumer.group_id", "--group").field(
        "consumer.workers"
    ).field("consumer.http_port").field("consumer.writer_schema_dir")
    consume.set_defaults(handler=_consume)

    members = subparsers.add_parser("members", help="list a segment's effective members")
    members.add_argument("segment", help="segment id or technical name")
    members.add_argument("--format", choices=["table", "ndjson", "csv"], default="table")
    members.set_defaults(handler=_members)

    user = subparsers.add_parser("user", help="list the segments a user is a member of")
    user.add_argument(
        "user_key",
        help="user key, e.g. email:jane@example.com or account:1000:acc-1 (canonicalised: "
        "the type is case-insensitive, e-mails are lower-cased, spaces trimmed)",
    )
    user.add_argument("--format", choices=["table", "ndjson", "csv"], default="table")
    user.set_defaults(handler=_user)

    segments = subparsers.add_parser("segments", help="the segment registry")
    actions = segments.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="register a segment (idempotent)")
    create.add_argument("segment_id")
    create.add_argument("--technical-name")
    create.add_argument("--name")
    create.add_argument("--description")
    create.add_argument("--type", dest="segment_type")
    SettingFlags(create, ConsumeSettings).field(
        "consumer.default_bucket_count",
        "--buckets",
        help_text="membership partitions of this segment, fixed at creation (default: "
        "consumer.default_bucket_count) [env: SEGFLOW_CONSUMER__DEFAULT_BUCKET_COUNT]",
    )
    add_output_flag(create)
    create.set_defaults(handler=_segments_create)
    listing = actions.add_parser("list", help="list registered segments")
    add_output_flag(listing)
    listing.set_defaults(handler=_segments_list)
    show = actions.add_parser("show", help="show one segment")
    show.add_argument("segment", help="segment id or technical name")
    add_output_flag(show)
    show.set_defaults(handler=_segments_show)


def _consume(args: argparse.Namespace) -> int:
    from consumer.supervisor import run_workers

    settings = settings_from(args, ConsumeSettings)
    try:  # once, here: a refused writer schema is one line and exit 2, not N worker tracebacks
        codec_with_writer_schemas(settings.consumer.writer_schema_dir)
    except SchemaEvolutionError as exc:
        raise SegflowError(f"consumer not started: {exc}", ExitCode.USAGE) from None
    return run_workers(settings, settings.consumer.workers, args.until_idle)


@contextmanager
def _session(args: argparse.Namespace) -> Iterator[tuple[Any, ConsumeSettings]]:
    settings = settings_from(args, ConsumeSettings)
    cluster, session = connect_or_fail(settings.cassandra, settings.cassandra.keyspace)
    try:
        yield session, settings
    finally:
        cluster.shutdown()


def _registry(session: Any, settings: ConsumeSettings) -> SegmentRegistry:
    return SegmentRegistry(session, settings.consumer.default_bucket_count, 0)


def _find(registry: SegmentRegistry, ref: str) -> Segment:
    segment = registry.find(ref)
    if segment is None:
        raise SegflowError(f"unknown segment {ref!r} (neither an id nor a technical name)")
    return segment


def _members(args: argparse.Namespace) -> int:
    with _session(args) as (session, settings):
        segment = _find(_registry(session, settings), args.segment)
        count = _print_members(MembershipReader(session).members(segment), args.format)
    if args.format == "table":
        print(f"({count} members)", file=sys.stderr)
    return 0


def _user(args: argparse.Namespace) -> int:
    try:
        key = canonical_user_key(args.user_key)
    except UserKeyError as exc:
        raise SegflowError(f"user key: {exc}", ExitCode.USAGE) from None
    with _session(args) as (session, _settings):
        found = MembershipReader(session).user_segments(key)
        count = _print_members(iter(found), args.format)
    if args.format == "table":
        print(f"({count} segments for {key})", file=sys.stderr)
    return 0


FIELDS = (
    "segment_id",
    "user_key",
    "via",
    "expires_at",
    "data_bag",
    "metadata",
    "reference_id",
    "description",
)


def _print_members(members: Iterator[Member], fmt: str) -> int:
    """Table, NDJSON or CSV; the Village fields (override members) close each row."""
    out = sys.stdout
    writer = csv.writer(out) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(FIELDS)
    elif fmt == "table":
        print(f"{'segment_id':<20} {'user_key':<40} {'via':<8} {'expires_at':<25} data_bag")
    count = 0
    for member in members:
        count += 1
        expires = member.expires_at.isoformat() if member.expires_at else None
        values = (
            member.segment_id,
            member.user_key,
            member.via,
            expires,
            member.data_bag,
            member.metadata,
            member.reference_id,
            member.description,
        )
        if fmt == "ndjson":
            out.write(json.dumps(dict(zip(FIELDS, values, strict=True))) + "\n")
        elif writer is not None:
            writer.writerow(["" if value is None else value for value in values])
        else:
            village = " ".join(
                f"{name}={value}"
                for name, value in zip(FIELDS[5:], values[5:], strict=True)
                if value
            )
            print(
                f"{member.segment_id:<20} {member.user_key:<40} {member.via:<8} "
                f"{expires or '':<25} {member.data_bag or ''}" + (f" {village}" if village else "")
            )
    return count


def _segments_create(args: argparse.Namespace) -> int:
    with _session(args) as (session, settings):
        try:
            segment, created = _registry(session, settings).create(
                args.segment_id,
                args.technical_name,
                args.name,
                args.description,
                args.segment_type,
                None,
                settings.consumer.default_bucket_count,
            )
        except ValueError as exc:
            raise SegflowError(str(exc)) from None
    if args.output == "json":
        print_json({**_segment_dict(segment), "created": created})
    else:
        print(
            f"{segment.segment_id}: {'created' if created else 'already exists'} "
            f"({segment.bucket_count} buckets)"
        )
    return 0


def _segments_list(args: argparse.Namespace) -> int:
    with _session(args) as (session, settings):
        segments = list(_registry(session, settings).all())
    if args.output == "json":
        print_json([_segment_dict(segment) for segment in segments])
        return 0
    for segment in segments:
        print(f"{segment.segment_id:<24} {segment.technical_name or '-':<24} {segment.name or '-'}")
    return 0


def _segments_show(args: argparse.Namespace) -> int:
    with _session(args) as (session, settings):
        segment = _find(_registry(session, settings), args.segment)
    if args.output == "json":
        print_json(_segment_dict(segment))
    else:
        print(json.dumps(_segment_dict(segment), indent=2, default=str))
    return 0


def _segment_dict(segment: Segment) -> dict[str, Any]:
    return dataclasses.asdict(segment)
