"""``segflow stack up|down|status|env|logs`` (and ``--docker`` for docker-compose.yml)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from segflow.cli_flags import SettingFlags, settings_from
from segflow.errors import SegflowError
from segflow.settings import StackProcessSettings
from segflow.stack import manager
from segflow.stack.classpath import ClasspathError
from segflow.stack.process import NodeError

COMPOSE_FILE = Path("docker-compose.yml")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``segflow stack ...``."""
    stack = subparsers.add_parser(
        "stack",
        help="run a local Kafka + Cassandra for development and tests",
        description="Local Kafka 4 (KRaft) + Cassandra 5 started from Maven Central jars.",
    )
    SettingFlags(stack, StackProcessSettings)
    actions = stack.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, handler, text in (
        ("up", _up, "start (or reuse) both nodes and wait until they answer"),
        ("down", _down, "stop the nodes this stack started"),
        ("status", _status, "show pids and readiness"),
        ("env", _env, "print export lines for the endpoints"),
        ("logs", _logs, "show the nodes' server logs"),
    ):
        sub = actions.add_parser(name, help=text, description=text)
        sub.add_argument(
            "--docker", action="store_true", help="use docker-compose.yml (needs a Docker engine)"
        )
        sub.set_defaults(handler=handler)
        if name == "logs":
            sub.add_argument("node", nargs="?", choices=["kafka", "cassandra"])
            sub.add_argument("-n", "--lines", type=int, default=50)
            sub.add_argument("-f", "--follow", action="store_true")
        if name == "down":
            sub.add_argument(
                "--purge", action="store_true", help="also delete the nodes' data and logs"
            )


def _settings() -> StackProcessSettings:
    return settings_from(None, StackProcessSettings)


def _up(args: argparse.Namespace) -> int:
    if args.docker:
        return _compose("up", "-d", "--wait")
    settings = _settings().stack
    begin = time.monotonic()
    try:
        reports = manager.up(settings, say=lambda line: print(line, flush=True))
    except (NodeError, ClasspathError) as exc:
        raise SegflowError(str(exc)) from None
    for report in reports:
        verb = "started" if report.started else "already running, reused"
        print(
            f"{report.name}: {verb} at {report.endpoint} (pid {report.pid}, answered "
            f"{report.ready!r}) in {report.seconds:.1f}s",
            flush=True,
        )
    print(f'stack up in {time.monotonic() - begin:.1f}s; endpoints: eval "$(segflow stack env)"')
    return 0


def _down(args: argparse.Namespace) -> int:
    if args.docker:
        return _compose("down", *(["-v"] if args.purge else []))
    settings = _settings().stack
    for name, was_running in manager.down(settings):
        print(f"{name}: {'stopped' if was_running else 'not running'}")
    if args.purge and settings.state_dir.is_dir():
        for sub in ("kafka", "cassandra"):
            shutil.rmtree(settings.state_dir / sub, ignore_errors=True)
        print(f"purged {settings.state_dir}")
    return 0


def _status(args: argparse.Namespace) -> int:
    if args.docker:
        return _compose("ps")
    healthy = True
    for report in manager.status(_settings().stack):
        if report.pid is None:
            state = "not running"
            healthy = False
        elif report.ready is None:
            state = f"running (pid {report.pid}) but not answering"
            healthy = False
        else:
            state = f"ready (pid {report.pid}, answered {report.ready!r})"
        print(f"{report.name}: {state} at {report.endpoint}")
    return 0 if healthy else 1


def _env(args: argparse.Namespace) -> int:
    for line in manager.env_lines(_settings().stack):
        print(line)
    return 0


def _logs(args: argparse.Namespace) -> int:
    if args.docker:
        return _compose(
            "logs", *(["-f"] if args.follow else []), *([args.node] if args.node else [])
        )
    procs = manager.log_files(_settings().stack, args.node)
    paths = [proc.server_log for proc in procs if proc.server_log.is_file()]
    if not paths:
        raise SegflowError("no logs yet: the stack has not been started here")
    cmd = ["tail", f"-n{args.lines}", *(["-F"] if args.follow else []), *map(str, paths)]
    return subprocess.call(cmd)


def _compose(*compose_args: str) -> int:
    if shutil.which("docker") is None:
        raise SegflowError("--docker needs the docker CLI with a running Docker engine")
    info = subprocess.run(["docker", "info"], capture_output=True, check=False)
    if info.returncode != 0:
        raise SegflowError(
            "--docker: no Docker engine answers (`docker info` failed); "
            "use `segflow stack up` without --docker for the JVM stack"
        )
    if not COMPOSE_FILE.is_file():
        raise SegflowError(f"{COMPOSE_FILE} not found in {Path.cwd()}")
    sys.stdout.flush()
    return subprocess.call(["docker", "compose", "-f", str(COMPOSE_FILE), *compose_args])
