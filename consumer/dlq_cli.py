"""``segflow dlq inspect|replay``: look into the dead-letter topic and re-drive letters."""

from __future__ import annotations

import argparse
import sys

from consumer.dlq import inspect, replay, sample_line
from segflow.cli_flags import SettingFlags, add_output_flag, print_json, settings_from
from segflow.settings import DeadLetterSettings

FILTERS = ("reason", "execution_id", "partition", "from_offset", "to_offset", "read_timeout_s")
FLAG_NAMES = {"execution_id": "--execution"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``segflow dlq inspect`` and ``segflow dlq replay``."""
    dlq = subparsers.add_parser("dlq", help="inspect and replay dead letters")
    actions = dlq.add_subparsers(dest="action", metavar="ACTION", required=True)
    inspect_cmd = actions.add_parser(
        "inspect",
        help="count dead letters by reason, execution and time, with samples (no user keys)",
        description="Reads the dead-letter topic (up to its end when the command starts) "
        "and prints counts by reason, by execution and by time bucket, and a few one-line "
        "samples per reason: position, time, reason, execution, original position, error "
        "text. Samples never show keys, values or user keys. Offsets and --partition are "
        "those of the dead-letter topic (the samples show them).",
    )
    SettingFlags(inspect_cmd, DeadLetterSettings).section(
        "dlq", only=(*FILTERS, "samples", "time_bucket"), names=FLAG_NAMES
    )
    add_output_flag(inspect_cmd)
    inspect_cmd.set_defaults(handler=_inspect)

    replay_cmd = actions.add_parser(
        "replay",
        help="send chosen dead letters back to the commands topic, unchanged",
        description="Sends the dead letters matching the filters back to the commands topic "
        "with their original key, value and headers (the dlq.* headers removed), and "
        "reports how many. Fix the cause first (segflow segments create, a writer schema in "
        "consumer.writer_schema_dir). Replaying twice changes nothing: commands keep their "
        "versions and ids, so the consumer applies them idempotently. Letters whose value "
        "was dropped (too large) are skipped and counted; re-upload their file instead.",
    )
    SettingFlags(replay_cmd, DeadLetterSettings).section(
        "dlq", only=(*FILTERS, "dry_run"), names=FLAG_NAMES
    )
    add_output_flag(replay_cmd)
    replay_cmd.set_defaults(handler=_replay)


def _inspect(args: argparse.Namespace) -> int:
    settings = settings_from(args, DeadLetterSettings)
    found = inspect(settings.kafka, settings.dlq)
    document = {"topic": settings.kafka.dead_letter_topic, **found.document()}
    if args.output == "json":
        print_json(document)
        return 0
    print(f"{document['topic']}: {document['total']} dead letters", end="")
    if document["first"]:
        print(f" from {document['first']} to {document['last']}", end="")
    print()
    _counts("by reason", {reason: {"": n} for reason, n in document["by_reason"].items()})
    _counts("by execution", document["by_execution"])
    _counts(f"by {document['time_bucket']}", document["by_time"])
    for reason, samples in document["samples"].items():
        print(f"samples ({reason}):")
        for sample in samples:
            print(f"  {sample_line(sample)}")
    sys.stdout.flush()
    return 0


def _counts(title: str, rows: dict[str, dict[str, int]]) -> None:
    if not rows:
        return
    print(f"{title}:")
    for name, counts in rows.items():
        detail = ", ".join(f"{reason} {n}" if reason else str(n) for reason, n in counts.items())
        print(f"  {name}: {detail}")


def _replay(args: argparse.Namespace) -> int:
    settings = settings_from(args, DeadLetterSettings)
    report = replay(settings.kafka, settings.dlq)
    document = report.document(settings.kafka.commands_topic)
    if args.output == "json":
        print_json(document)
        return 0
    verb = "would send" if report.dry_run else "sent"
    by_reason = ", ".join(f"{reason} {n}" for reason, n in document["sent_by_reason"].items())
    print(
        f"{verb} {report.sent} of {report.matched} matching dead letters to "
        f"{document['topic']}" + (f" ({by_reason})" if by_reason else "")
    )
    if report.duplicates:
        print(f"skipped {report.duplicates} duplicates (the same record dead-lettered again)")
    if report.value_dropped:
        print(
            f"skipped {report.value_dropped} whose value was dropped (too large): re-upload "
            "their file (segflow.file / segflow.line headers)"
        )
    sys.stdout.flush()
    return 0
