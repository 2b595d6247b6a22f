"""``segflow upload FILE...`` and ``segflow executions list|show|cancel``.

Exit codes (README): 0 ok, 1 rejected lines over the limit or any failure, 2 usage,
3 Kafka unreachable, 130 interrupted (what was sent is flushed, the execution CANCELED).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from producer_tools.interrupts import DeferredInterrupt
from producer_tools.kafka_sink import CommandSink, KafkaUnreachableError
from producer_tools.readers.base import Reader, ReaderLimits
from producer_tools.readers.detect import detect_format
from producer_tools.readers.registry import FORMATS
from producer_tools.upload import (
    ErrorBudget,
    InputBrokenError,
    MaxErrorsExceededError,
    RejectsFile,
    as_dict,
    finish,
    report_line,
    run_upload,
    wait_until_landed,
)
from segflow.contract.ids import sha256_of_stream
from segflow.db.executions import Execution, ExecutionStore, Status, new_execution_id
from segflow.db.session import connect_or_fail
from segflow.errors import ExitCode, SegflowError
from segflow.logs import configure_logging
from segflow.settings import UploadOptions, UploadSettings

FLAG_SETTINGS = {
    "format": "format",
    "topic": "topic",
    "import_name": "import_name",
    "max_errors": "max_errors",
    "rejects": "rejects",
    "strict": "strict",
    "dry_run": "dry_run",
    "wait": "wait",
    "timeout": "timeout_s",
    "new_execution": "new_execution",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``upload`` and ``executions``."""
    up = subparsers.add_parser(
        "upload",
        help="upload import files to the commands topic as executions",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Every option can also be set with SEGFLOW_UPLOAD__<NAME> (flags win), "
        "e.g. SEGFLOW_UPLOAD__MAX_ERRORS=1%%.\nExit codes: 0 ok, 1 rejected lines over the "
        "limit or a failure, 2 usage, 3 Kafka unreachable, 130 interrupted.",
    )
    up.add_argument("files", nargs="+", type=Path, metavar="FILE")
    up.add_argument(
        "--format",
        choices=["auto", *FORMATS],
        help="input format (SEGFLOW_UPLOAD__FORMAT; default auto-detect)",
    )
    up.add_argument(
        "--topic",
        help="target topic (SEGFLOW_UPLOAD__TOPIC; default SEGFLOW_KAFKA__COMMANDS_TOPIC)",
    )
    up.add_argument(
        "--import",
        dest="import_name",
        help="import name the executions belong to (SEGFLOW_UPLOAD__IMPORT_NAME)",
    )
    up.add_argument(
        "--dry-run",
        action="store_true",
        default=None,
        help="validate and write rejects only (SEGFLOW_UPLOAD__DRY_RUN)",
    )
    up.add_argument(
        "--max-errors",
        metavar="N|N%",
        help="rejected lines allowed before failing (SEGFLOW_UPLOAD__MAX_ERRORS; default 0)",
    )
    up.add_argument(
        "--rejects",
        type=Path,
        metavar="PATH",
        help="rejects NDJSON file; a directory for several files "
        "(SEGFLOW_UPLOAD__REJECTS; default FILE.rejects.ndjson)",
    )
    up.add_argument(
        "--strict",
        action="store_true",
        default=None,
        help="unknown fields are errors (SEGFLOW_UPLOAD__STRICT)",
    )
    up.add_argument(
        "--wait",
        action="store_true",
        default=None,
        help="wait until every command is applied or dead-lettered (SEGFLOW_UPLOAD__WAIT)",
    )
    up.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="--wait bound in seconds (SEGFLOW_UPLOAD__TIMEOUT_S; default 3600)",
    )
    up.add_argument(
        "--new-execution",
        action="store_true",
        default=None,
        help="never reuse an execution of the same content (SEGFLOW_UPLOAD__NEW_EXECUTION)",
    )
    up.set_defaults(handler=_upload)

    ex = subparsers.add_parser("executions", help="upload executions and their progress")
    actions = ex.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="recent executions")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(handler=_executions_list)
    show = actions.add_parser("show", help="one execution with applied/dead-lettered counts")
    show.add_argument("execution_id")
    show.set_defaults(handler=_executions_show)
    cancel = actions.add_parser("cancel", help="mark a pending or running execution CANCELED")
    cancel.add_argument("execution_id")
    cancel.set_defaults(handler=_executions_cancel)


def _settings(args: argparse.Namespace) -> UploadSettings:
    settings = UploadSettings()
    flags = {
        setting: getattr(args, flag)
        for flag, setting in FLAG_SETTINGS.items()
        if getattr(args, flag, None) is not None
    }
    if flags:
        merged = {**settings.upload.model_dump(), **flags}
        settings.upload = UploadOptions.model_validate(merged)
    return settings


def _upload(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log)
    opts = settings.upload
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:
        print(f"segflow upload: error: no such file: {', '.join(missing)}", file=sys.stderr)
        return ExitCode.USAGE
    if opts.rejects is not None and len(args.files) > 1 and opts.rejects.is_file():
        print(
            "segflow upload: error: --rejects must be a directory with several files",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    topic = opts.topic or settings.kafka.commands_topic
    sink_factory = None
    if not opts.dry_run:
        probe = CommandSink(settings.kafka, opts, topic)
        try:
            probe.check_topic()
        except KafkaUnreachableError as exc:
            raise SegflowError(str(exc), ExitCode.KAFKA_UNREACHABLE) from None
        sink_factory = lambda: CommandSink(settings.kafka, opts, topic)  # noqa: E731
    cluster = session = store = None
    if not opts.dry_run:
        cluster, session = connect_or_fail(settings.cassandra, settings.cassandra.keyspace)
        store = ExecutionStore(session)
    worst = ExitCode.OK
    try:
        for path in args.files:
            code = _upload_one(path, settings, store, sink_factory, len(args.files) > 1)
            worst = max(worst, code)
            if code == ExitCode.INTERRUPTED:
                break
    finally:
        if cluster is not None:
            cluster.shutdown()
    return int(worst)


def _upload_one(
    path: Path,
    settings: UploadSettings,
    store: ExecutionStore | None,
    sink_factory: Any,
    several: bool,
) -> ExitCode:
    opts = settings.upload
    begin = time.monotonic()
    fmt = opts.format
    if fmt == "auto":
        detection = detect_format(path)
        fmt = detection.format
        _say(f"{path.name}: format {fmt} ({detection.reason})")
    with path.open("rb") as handle:
        digest = sha256_of_stream(handle)
    execution, reused = _execution_for(path, fmt, digest, settings, store)
    rejects_path = _rejects_path(path, opts.rejects, several)
    if reused and execution.status is Status.SUCCEEDED and not opts.dry_run:
        _say(
            f"{path.name}: same content already uploaded as execution "
            f"{execution.execution_id} (SUCCEEDED); nothing produced again "
            "(--new-execution forces a new one)"
        )
        return _maybe_wait(execution, settings, store, begin)
    rejects = RejectsFile(rejects_path)
    sink = sink_factory() if sink_factory is not None else None
    budget = ErrorBudget.parse(opts.max_errors)
    execution.status = Status.RUNNING
    execution.error = None
    if store is not None:
        store.save(execution)
    progress = _Progress(path, settings.upload.progress_interval_s)
    status, error, code = Status.SUCCEEDED, None, ExitCode.OK
    reader: Reader | None = None
    try:
        with DeferredInterrupt() as interrupt:
            reader = run_upload(
                path,
                fmt,
                execution,
                sink,
                store,
                rejects,
                budget,
                opts.strict,
                ReaderLimits(),
                progress,
                interrupt,
            )
    except (MaxErrorsExceededError, InputBrokenError) as exc:
        status, error, code = Status.FAILED, str(exc), ExitCode.FAILED
    except KeyboardInterrupt:
        status, error, code = Status.CANCELED, "interrupted by the user", ExitCode.INTERRUPTED
    finally:
        rejects.close()
        progress.done()
    if sink is not None:
        unacked = sink.flush()
        if sink.failed or unacked:
            status, code = Status.FAILED, ExitCode.FAILED
            error = (
                f"{sink.failed} record(s) not delivered ({sink.first_error}), "
                f"{unacked} unacknowledged"
            )
    if reader is not None:
        for warning in reader.warnings:
            _say(f"warning: {warning.message}")
    if opts.dry_run:
        if error:
            _say(f"{path.name}: {error}")
        _say(
            f"{path.name}: dry run: {execution.lines_read} lines, "
            f"{execution.commands_produced} valid commands, {rejects.count} rejected"
            + (f" (rejects: {rejects_path})" if rejects.count else "")
        )
        return (
            code
            if code != ExitCode.OK
            else (ExitCode.FAILED if status is Status.FAILED else ExitCode.OK)
        )
    finish(store, execution, status, error)
    if rejects.count:
        _say(f"{path.name}: {rejects.count} rejected line(s) written to {rejects_path}")
    if error:
        _say(f"{path.name}: {status.value}: {error}")
    _say(report_line(execution, time.monotonic() - begin))
    if code != ExitCode.OK:
        return code
    return _maybe_wait(execution, settings, store, begin)


def _maybe_wait(
    execution: Execution, settings: UploadSettings, store: ExecutionStore | None, begin: float
) -> ExitCode:
    if not settings.upload.wait or store is None:
        return ExitCode.OK if execution.status is Status.SUCCEEDED else ExitCode.FAILED
    final, done = wait_until_landed(store, execution.execution_id, settings.upload.timeout_s)
    _say(report_line(final, time.monotonic() - begin))
    if not done:
        _say(
            f"timed out after {settings.upload.timeout_s:.0f}s: {final.landed} of "
            f"{final.commands_produced} commands landed (is `segflow consume` running?)"
        )
        return ExitCode.FAILED
    failed = final.status is not Status.SUCCEEDED or final.commands_dead_lettered > 0
    return ExitCode.FAILED if failed else ExitCode.OK


def _execution_for(
    path: Path, fmt: str, digest: str, settings: UploadSettings, store: ExecutionStore | None
) -> tuple[Execution, bool]:
    opts = settings.upload
    now_us = time.time_ns() // 1000
    if store is None:  # dry run: a throwaway execution, nothing stored
        from datetime import UTC, datetime

        return Execution(
            new_execution_id(),
            opts.import_name,
            path.name,
            fmt,
            digest,
            datetime.fromtimestamp(now_us / 1e6, tz=UTC),
            now_us,
            Status.PENDING,
        ), False
    if not opts.new_execution:
        existing = store.find_by_content(digest, opts.import_name)
        if existing is not None:
            _say(
                f"{path.name}: reusing execution {existing.execution_id} "
                f"({existing.status.value}) of the same content"
            )
            return existing, True
    return store.create(opts.import_name, path.name, fmt, digest, now_us), False


def _rejects_path(path: Path, option: Path | None, several: bool) -> Path:
    if option is None:
        return path.with_name(path.name + ".rejects.ndjson")
    if several or option.is_dir():
        return option / (path.name + ".rejects.ndjson")
    return option


class _Progress:
    """A live line on an interactive stderr; nothing (the final summary suffices) otherwise."""

    def __init__(self, path: Path, interval_s: float) -> None:
        self._tty = sys.stderr.isatty()
        self._size = path.stat().st_size
        self._gz = path.suffix == ".gz"
        self._begin = time.monotonic()
        self._interval = interval_s
        self._last = 0.0
        self._shown = False

    def __call__(self, reader: Reader, execution: Execution, rejects: RejectsFile) -> None:
        now = time.monotonic()
        if not self._tty or now - self._last < self._interval:
            return
        self._last = now
        elapsed = max(now - self._begin, 1e-6)
        rate = reader.lines_read / elapsed
        text = (
            f"\r{reader.bytes_read / 1e6:,.1f} MB, {reader.lines_read:,} lines "
            f"({rate:,.0f}/s), {rejects.count:,} rejected"
        )
        if not self._gz and reader.bytes_read:
            remaining = (self._size - reader.bytes_read) / (reader.bytes_read / elapsed)
            text += f", {100 * reader.bytes_read / max(self._size, 1):.0f}%, ETA {remaining:,.0f}s"
        sys.stderr.write(text.ljust(100))
        sys.stderr.flush()
        self._shown = True

    def done(self) -> None:
        if self._shown:
            sys.stderr.write("\n")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _store() -> tuple[Any, ExecutionStore]:
    settings = UploadSettings()
    cluster, session = connect_or_fail(settings.cassandra, settings.cassandra.keyspace)
    return cluster, ExecutionStore(session)


def _executions_list(args: argparse.Namespace) -> int:
    cluster, store = _store()
    try:
        for execution in store.recent(args.limit):
            print(
                f"{execution.execution_id}  {execution.status.value:<9}  "
                f"{execution.created_at:%Y-%m-%d %H:%M:%S}  {execution.import_name:<16} "
                f"{execution.file_name}  produced={execution.commands_produced} "
                f"rejected={execution.lines_rejected}"
            )
    finally:
        cluster.shutdown()
    return 0


def _executions_show(args: argparse.Namespace) -> int:
    cluster, store = _store()
    try:
        execution = store.get(args.execution_id)
    finally:
        cluster.shutdown()
    if execution is None:
        raise SegflowError(f"no execution {args.execution_id}")
    print(json.dumps(as_dict(execution), indent=2))
    return 0


def _executions_cancel(args: argparse.Namespace) -> int:
    cluster, store = _store()
    try:
        canceled = store.cancel(args.execution_id, "canceled by `segflow executions cancel`")
    finally:
        cluster.shutdown()
    if not canceled:
        raise SegflowError(f"execution {args.execution_id} is unknown or already finished")
    print(f"{args.execution_id}: CANCELED")
    return 0
