"""``segflow config show``: the effective configuration of a process, secrets masked."""

from __future__ import annotations

import argparse
import json

from segflow.cli_flags import settings_from
from segflow.settings import (
    ClientSettings,
    ConsumeSettings,
    MigrateSettings,
    SegflowSettings,
    ServeSettings,
    StackProcessSettings,
    UploadSettings,
    masked_dump,
)

PROCESSES: dict[str, type[SegflowSettings]] = {
    "client": ClientSettings,
    "consume": ConsumeSettings,
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


def _show(args: argparse.Namespace) -> int:
    settings = settings_from(None, PROCESSES[args.process])
    print(json.dumps(masked_dump(settings), indent=2, sort_keys=True))
    return 0
