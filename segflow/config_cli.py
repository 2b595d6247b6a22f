"""``segflow config show``: the effective configuration of a process, secrets masked."""

from __future__ import annotations

import argparse
import json

from segflow.cli_flags import field_default, settings_from, type_name
from segflow.settings import (
    ClientSettings,
    ConsumeSettings,
    DeadLetterSettings,
    MigrateSettings,
    SegflowSettings,
    ServeSettings,
    StackProcessSettings,
    UploadSettings,
    masked_dump,
)
from segflow.settings_load import env_name, mentions_secret, section_models

# README order: the clients' connections first, then each process's own section.
SECTION_ORDER = ("kafka", "cassandra", "consumer", "upload", "serve", "dlq", "log", "stack")
PROCESSES: dict[str, type[SegflowSettings]] = {
    "client": ClientSettings,
    "consume": ConsumeSettings,
    "dlq": DeadLetterSettings,
    "migrate": MigrateSettings,
    "serve": ServeSettings,
    "stack": StackProcessSettings,
    "upload": UploadSettings,
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``segflow config show``."""
    config = subparsers.add_parser("config", help="inspect the effective configuration")
    actions = config.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show",
        help="print the effective configuration (flags > SEGFLOW_* env > config file > defaults)",
        description="Prints JSON on stdout, every secret masked (SecretStr fields, and "
        "kafka.extra properties that can hold a secret). Bad values fail with exit 2; "
        "unknown SEGFLOW_* variables and file keys are warned about on stderr.",
    )
    show.add_argument(
        "--process",
        choices=sorted(PROCESSES),
        default="client",
        help="which process's settings model to show (default: client)",
    )
    show.set_defaults(handler=_show)
    keys = actions.add_parser(
        "keys",
        help="list every setting: env var, [section] key, default, meaning",
        description="Generated from the settings models (the README table is this output "
        "with --markdown).",
    )
    keys.add_argument("--markdown", action="store_true", help="a Markdown table (README)")
    keys.set_defaults(handler=_keys)


def settings_rows() -> list[tuple[str, str, str, str]]:
    """(env var, type, default, description) of every setting of every process."""
    rows = []
    sections = section_models()
    order = [name for name in SECTION_ORDER if name in sections]
    order += sorted(set(sections) - set(order))
    for section in order:
        model = sections[section]
        for key, info in model.model_fields.items():
            default = field_default(info)
            kind = type_name(info.annotation)
            if mentions_secret(info.annotation):
                kind += ", secret"
            rows.append((env_name(section, key), kind, default or "", info.description or ""))
    return rows


def _keys(args: argparse.Namespace) -> int:
    rows = settings_rows()
    if args.markdown:
        print(markdown_table(rows))
        return 0
    for env, kind, default, description in rows:
        print(f"{env}  ({kind}{'; default ' + default if default else ''})  {description}")
    return 0


def markdown_table(rows: list[tuple[str, str, str, str]]) -> str:
    """The README's settings table."""
    lines = [
        "| env var (`[section] key` in the file) | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for env, kind, default, description in rows:
        cell = description.replace("|", "/")
        shown = f"`{default}`" if default else ""
        lines.append(f"| `{env}` | {kind} | {shown} | {cell} |")
    return "\n".join(lines)


def _show(args: argparse.Namespace) -> int:
    settings = settings_from(None, PROCESSES[args.process])
    print(json.dumps(masked_dump(settings), indent=2, sort_keys=True))
    return 0
