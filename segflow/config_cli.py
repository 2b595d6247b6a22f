"""``segflow config show``: the effective configuration of a process, secrets masked."""

from __future__ import annotations

import argparse
import json

from pydantic_settings import BaseSettings

from segflow.settings import (
    ClientSettings,
    ConsumeSettings,
    MigrateSettings,
    ServeSettings,
    StackProcessSettings,
    UploadSettings,
    masked_dump,
)

PROCESSES: dict[str, type[BaseSettings]] = {
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
    )
    show.add_argument(
        "--process",
        choices=sorted(PROCESSES),
        default="client",
        help="which process's settings model to show (default: client)",
    )
    show.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    settings = PROCESSES[args.process]()
    print(json.dumps(masked_dump(settings), indent=2, sort_keys=True))
    return 0
