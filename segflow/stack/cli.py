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
from segflow.settings import StackProcessSettings, StackSettings
from segflow.stack import kafka_node, manager, topology
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
        ("up", _up, "start (or reuse) every node and wait until they answer"),
        ("down", _down, "stop the nodes this stack started"),
        ("status", _status, "show pids and readiness"),
        ("env", _env, "print export lines for the endpoints"),
        ("logs", _logs, "show the nodes' server logs"),
        ("kill", _kill, "SIGKILL a node (a crash, for failure tests)"),
        ("start", _start, "start a node again (after kill) and wait until it answers"),
    ):
        sub = actions.add_parser(name, help=text, description=text)
        SettingFlags(sub, StackProcessSettings).field("stack.nodes", "--nodes")
        sub.set_defaults(handler=handler)
        if name in ("kill", "start"):
            sub.add_argument(
                "node", help="a node (kafka-2, cassandra-3; kafka in a 1-node stack) or a kind"
            )
            continue
        sub.add_argument(
            "--docker", action="store_true", help="use docker-compose.yml (needs a Docker engine)"
        )
        if name == "logs":
            sub.add_argument("node", nargs="?", help="a node (kafka-2) or a kind (kafka)")
            sub.add_argument("-n", "--lines", type=int, default=50)
            sub.add_argument("-f", "--follow", action="store_true")
        if name == "down":
            sub.add_argument(
                "--purge", action="store_true", help="also delete the nodes' data and logs"
            )


def _settings(args: argparse.Namespace) -> StackSettings:
    """The stack settings (flags > env > file), with the running stack's node count when
    ``--nodes`` and SEGFLOW_STACK__NODES are not given."""
    return manager.running_count(settings_from(args, StackProcessSettings).stack)


def _up(args: argparse.Namespace) -> int:
    if args.docker:
        return _compose("up", "-d", "--wait")
    settings = _settings(args)
    begin = time.monotonic()
    try:
        reports = manager.up(settings, say=lambda line: print(line, flush=True))
    except (NodeError, ClasspathError) as exc:
        raise SegflowError(str(exc)) from None
    _print_reports(reports)
    print(f'stack up in {time.monotonic() - begin:.1f}s; endpoints: eval "$(segflow stack env)"')
    return 0


def _print_reports(reports: list[manager.NodeReport]) -> None:
    for report in reports:
        verb = "started" if report.started else "already running, reused"
        print(
            f"{report.name}: {verb} at {report.endpoint} (pid {report.pid}, answered "
            f"{report.ready!r}) in {report.seconds:.1f}s",
            flush=True,
        )


def _down(args: argparse.Namespace) -> int:
    if args.docker:
        return _compose("down", *(["-v"] if args.purge else []))
    settings = _settings(args)
    for name, was_running in manager.down(settings):
        print(f"{name}: {'stopped' if was_running else 'not running'}")
    if args.purge and settings.state_dir.is_dir():
        for spec in topology.on_disk(settings):
            shutil.rmtree(spec.directory, ignore_errors=True)
        (settings.state_dir / kafka_node.CLUSTER_ID_FILE).unlink(missing_ok=True)
        print(f"purged {settings.state_dir}")
    return 0


def _status(args: argparse.Namespace) -> int:
    if args.docker:
        return _compose("ps")
    healthy = True
    for report in manager.status(_settings(args)):
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
    for line in manager.env_lines(_settings(args)):
        print(line)
    return 0


def _logs(args: argparse.Namespace) -> int:
    if args.docker:
        return _compose(
            "logs", *(["-f"] if args.follow else []), *([args.node] if args.node else [])
        )
    try:
        procs = manager.log_files(_settings(args), args.node)
    except NodeError as exc:
        raise SegflowError(str(exc)) from None
    paths = [proc.server_log for proc in procs if proc.server_log.is_file()]
    if not paths:
        raise SegflowError("no logs yet: the stack has not been started here")
    cmd = ["tail", f"-n{args.lines}", *(["-F"] if args.follow else []), *map(str, paths)]
    return subprocess.call(cmd)


def _kill(args: argparse.Namespace) -> int:
    try:
        killed = manager.kill(_settings(args), args.node)
    except NodeError as exc:
        raise SegflowError(str(exc)) from None
    for name, pid in killed:
        print(f"{name}: {'killed (SIGKILL, pid ' + str(pid) + ')' if pid else 'not running'}")
    return 0


def _start(args: argparse.Namespace) -> int:
    try:
        reports = manager.start(_settings(args), args.node, lambda line: print(line, flush=True))
    except (NodeError, ClasspathError) as exc:
        raise SegflowError(str(exc)) from None
    _print_reports(reports)
    return 0


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
