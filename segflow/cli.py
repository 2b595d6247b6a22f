"""The ``segflow`` console script: one entry point, one subcommand per capability.

Each capability registers its own subcommands (``register(subparsers)``) so this module only
wires them together and turns failures into one clear line and a documented exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from segflow import __version__
from segflow.errors import ExitCode, SegflowError
from segflow.settings import CONFIG_FILE_ENV

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every capability's subcommands registered."""
    from consumer.cli import register as register_consumer
    from http_api.export.cli import register as register_export
    from producer_tools.cli import register as register_upload
    from segflow.config_cli import register as register_config
    from segflow.db.cli import register as register_db
    from segflow.demo import register as register_demo
    from segflow.stack.cli import register as register_stack
    from segflow.topics_cli import register as register_topics

    parser = argparse.ArgumentParser(
        prog="segflow",
        description="Segment-membership ingestion: files -> Kafka -> Cassandra.",
    )
    parser.add_argument("--version", action="version", version=f"segflow {__version__}")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"TOML configuration file (env: {CONFIG_FILE_ENV}); env vars SEGFLOW_* override it",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in (
        register_stack,
        register_db,
        register_topics,
        register_upload,
        register_consumer,
        register_export,
        register_config,
        register_demo,
    ):
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one segflow command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config:
        os.environ[CONFIG_FILE_ENV] = args.config
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("segflow: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except SegflowError as exc:
        print(f"segflow: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        if os.environ.get("SEGFLOW_DEBUG"):
            traceback.print_exc()
        print(f"segflow: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return ExitCode.FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
