"""``segflow upload FILE...`` and ``segflow executions list|show|cancel``.

Exit codes (README): 0 ok, 1 rejected lines over the limit or any failure, 2 usage,
3 Kafka unreachable or a Kafka timeout, 130 interrupted (what was sent is flushed, the
execution CANCELED). ``--output json`` prints each file's final execution as one JSON object
on stdout; everything for people goes to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from producer_tools.interrupts import DeferredInterrupt
from producer_tools.kafka_sink import CommandSink
from producer_tools.readers.base import Reader, ReaderLimits
from producer_tools.readers.detect import detect_format
from producer_tools.upload import (
    ErrorBudget,
    ExecutionCanceledError,
    InputBrokenError,
    MaxErrorsExceededError,
    RejectsFile,
    as_dict,
    finish,
    report_line,
    run_upload,
    wait_until_landed,
)
from segflow.cli_flags import (
    COMPLETE_FILE,
    SettingFlags,
    add_output_flag,
    print_json,
    settings_from,
)
from segflow.contract.ids import sha256_of_stream
from segflow.db.executions import Execution, ExecutionStore, Status, new_execution_id
from segflow.db.session import connect_or_fail
from segflow.errors import ExitCode, SegflowError
from segflow.settings import UploadOptions, UploadSettings

# The settings that are also flags (the producer tuning stays a setting only).
FLAGS = (
    "format",
    "topic",
    "import_name",
    "max_errors",
    "rejects",
    "strict",
    "dry_run",
    "wait",
    "timeout_s",
    "new_execution",
)
STDIN = "-"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``upload`` and ``executions``."""
    up = subparsers.add_parser(
        "upload",
        help="upload import files to the commands topic as executions",
        description="Upload import files (NDJSON, CSV, JSON; gzip or zstd, detected by their "
        "magic bytes) as executions. FILE '-' reads standard input (spooled to a temporary "
        "file: the execution is named by the content's SHA-256). Exit codes: 0 ok, 1 rejected "
        "lines over the limit or a failure, 2 usage, 3 Kafka unreachable, 130 interrupted.",
    )
    files = up.add_argument("files", nargs="+", metavar="FILE", help="input files, or - for stdin")
    files.complete = COMPLETE_FILE  # type: ignore[attr-defined]
    SettingFlags(up, UploadSettings).section(
        "upload", only=FLAGS, names={"import_name": "--import", "timeout_s": "--timeout"}
    )
    add_output_flag(up)
    up.set_defaults(handler=_upload)

    ex = subparsers.add_parser("executions", help="upload executions and their progress")
    actions = ex.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the newest executions, newest first")
    listing.add_argument("--limit", type=_positive_int, default=20, help="how many (default: 20)")
    add_output_flag(listing)
    listing.set_defaults(handler=_executions_list)
    show = actions.add_parser("show", help="one execution with applied/dead-lettered counts")
    show.add_argument("execution_id")
    add_output_flag(show)
    show.set_defaults(handler=_executions_show)
    cancel = actions.add_parser(
        "cancel", help="cancel a pending or running execution (a running upload stops)"
    )
    cancel.add_argument("execution_id")
    add_output_flag(cancel)
    cancel.set_defaults(handler=_executions_cancel)
    reindex = actions.add_parser(
        "reindex", help="index executions created before V011 for `executions list` (idempotent)"
    )
    add_output_flag(reindex)
    reindex.set_defaults(handler=_executions_reindex)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _upload(args: argparse.Namespace) -> int:
    settings = settings_from(args, UploadSettings)
    opts = settings.upload
    names: list[str] = args.files
    if names.count(STDIN) > 1:
        raise SegflowError("standard input ('-') can be read only once", ExitCode.USAGE)
    missing = [name for name in names if name != STDIN and not Path(name).is_file()]
    if missing:
        raise SegflowError(f"no such file: {', '.join(missing)}", ExitCode.USAGE)
    if opts.rejects is not None and len(names) > 1 and opts.rejects.is_file():
        raise SegflowError("--rejects must be a directory with several files", ExitCode.USAGE)
    topic = opts.topic or settings.kafka.commands_topic
    sink_factory = None
    if not opts.dry_run:
        CommandSink(settings.kafka, opts, topic).check_topic()
        sink_factory = lambda: CommandSink(settings.kafka, opts, topic)  # noqa: E731
    cluster = session = store = None
    if not opts.dry_run:
        cluster, session = connect_or_fail(settings.cassandra, settings.cassandra.keyspace)
        store = ExecutionStore(session)
    worst = ExitCode.OK
    try:
        with tempfile.TemporaryDirectory(prefix="segflow-upload-") as spool_dir:
            for name in names:
                path, digest = (
                    _spool_stdin(Path(spool_dir)) if name == STDIN else (Path(name), None)
                )
                code = _upload_one(
                    path,
                    settings,
                    store,
                    sink_factory,
                    len(names) > 1,
                    args.output,
                    digest,
                    rejects_dir=Path.cwd() if name == STDIN else None,
                )
                worst = max(worst, code)
                if code == ExitCode.INTERRUPTED:
                    break
    finally:
        if cluster is not None:
            cluster.shutdown()
    return int(worst)


def _spool_stdin(directory: Path) -> tuple[Path, str]:
    """Copy standard input to a file named by its SHA-256 (``stdin-<16 hex>``).

    The execution needs the content's digest before reading (reuse, command ids), and
    detection and the Segmenter reader may read twice: a pipe allows neither.
    """
    digest = hashlib.sha256()
    partial = directory / "stdin.partial"
    try:
        with partial.open("wb") as out:
            source = sys.stdin.buffer
            while chunk := source.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        raise SegflowError(f"cannot spool standard input to {directory}: {exc}") from None
    hexdigest = digest.hexdigest()
    path = directory / f"stdin-{hexdigest[:16]}"
    partial.rename(path)
    return path, hexdigest


def _upload_one(
    path: Path,
    settings: UploadSettings,
    store: ExecutionStore | None,
    sink_factory: Any,
    several: bool,
    output: str,
    digest: str | None = None,
    rejects_dir: Path | None = None,
) -> ExitCode:
    opts = settings.upload
    begin = time.monotonic()
    fmt: str = opts.format
    if fmt == "auto":
        detection = detect_format(path)
        fmt = detection.format
        _say(f"{path.name}: format {fmt} ({detection.reason})")
    if digest is None:
        with path.open("rb") as handle:
            digest = sha256_of_stream(handle)
    rejects_path, chosen = _rejects_path(path, opts.rejects, several, rejects_dir)
    rejects = RejectsFile(rejects_path, input_path=path, follow_symlinks=chosen)
    rejects.check()  # before an execution exists or anything is produced
    execution, reused = _execution_for(path, fmt, digest, settings, store)
    if reused and execution.status is Status.SUCCEEDED and not opts.dry_run:
        _say(
            f"{path.name}: same content already uploaded as execution "
            f"{execution.execution_id} (SUCCEEDED); nothing produced again "
            "(--new-execution forces a new one)"
        )
        return _maybe_wait(execution, settings, store, begin, output)
    sink = sink_factory() if sink_factory is not None else None
    budget = ErrorBudget.parse(opts.max_errors)
    execution.status = Status.RUNNING
    execution.error = None
    if store is not None:
        store.start(execution)
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
                opts.save_interval_s,
            )
    except (MaxErrorsExceededError, InputBrokenError) as exc:
        status, error, code = Status.FAILED, str(exc), ExitCode.FAILED
    except ExecutionCanceledError as exc:
        status, error, code = Status.CANCELED, str(exc), ExitCode.INTERRUPTED
    except KeyboardInterrupt:
        status, error, code = Status.CANCELED, "interrupted by the user", ExitCode.INTERRUPTED
    finally:
        rejects.close()
        progress.done()
    if rejects.stale:
        _say(f"{path.name}: no rejected lines; {rejects_path} is from an earlier run, left alone")
    if sink is not None:
        unacked = sink.flush()
        if sink.failed or unacked:
            status, code = Status.FAILED, ExitCode.FAILED
            error = (
                f"{sink.failed} record(s) not delivered ({sink.first_error}), "
                f"{unacked} unacknowledged"
            )
            unreachable = sink.failure(unacked)
            if unreachable is not None:
                code, error = ExitCode.KAFKA_UNREACHABLE, str(unreachable)
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
        execution.status, execution.error = status, error
        _emit(execution, output, dry_run=True)
        return (
            code
            if code != ExitCode.OK
            else (ExitCode.FAILED if status is Status.FAILED else ExitCode.OK)
        )
    finish(store, execution, status, error)
    if execution.status is Status.CANCELED and code == ExitCode.OK:
        # Canceled after the last progress save: the final save kept CANCELED.
        status, error, code = Status.CANCELED, execution.error, ExitCode.INTERRUPTED
    if rejects.count:
        _say(f"{path.name}: {rejects.count} rejected line(s) written to {rejects_path}")
    if error:
        _say(f"{path.name}: {status.value}: {error}")
    _say(report_line(execution, time.monotonic() - begin))
    if code != ExitCode.OK:
        _emit(execution, output)
        return code
    return _maybe_wait(execution, settings, store, begin, output)


def _emit(execution: Execution, output: str, dry_run: bool = False) -> None:
    """``--output json``: the execution as it ended, one JSON object per file on stdout."""
    if output == "json":
        print_json({**as_dict(execution), **({"dry_run": True} if dry_run else {})})


def _maybe_wait(
    execution: Execution,
    settings: UploadSettings,
    store: ExecutionStore | None,
    begin: float,
    output: str,
) -> ExitCode:
    if not settings.upload.wait or store is None:
        _emit(execution, output)
        return ExitCode.OK if execution.status is Status.SUCCEEDED else ExitCode.FAILED
    ticker = _WaitProgress(settings.upload, begin)
    try:
        final, done = wait_until_landed(
            store, execution.execution_id, settings.upload.timeout_s, on_tick=ticker
        )
    finally:
        ticker.done()
    _say(report_line(final, time.monotonic() - begin))
    _emit(final, output)
    if not done:
        _say(
            f"timed out after {settings.upload.timeout_s:.0f}s: {final.landed} of "
            f"{final.commands_produced} commands landed (is `segflow consume` running?)"
        )
        return ExitCode.FAILED
    failed = final.status is not Status.SUCCEEDED or final.commands_dead_lettered > 0
    return ExitCode.FAILED if failed else ExitCode.OK


class _WaitProgress:
    """``--wait`` progress on stderr: a live line on a terminal, else a line every so often."""

    def __init__(self, opts: UploadOptions, begin: float) -> None:
        self._tty = sys.stderr.isatty()
        self._interval = opts.progress_interval_s if self._tty else opts.wait_report_interval_s
        self._begin = begin
        self._start = time.monotonic()
        self._last = self._start
        self._shown = False

    def __call__(self, execution: Execution) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        text = (
            f"waiting: {execution.landed:,} of {execution.commands_produced:,} commands landed "
            f"({execution.commands_applied:,} applied, "
            f"{execution.commands_dead_lettered:,} dead-lettered), {now - self._start:,.0f}s"
        )
        if self._tty:
            sys.stderr.write("\r" + text.ljust(100))
            sys.stderr.flush()
            self._shown = True
        else:
            _say(text)

    def done(self) -> None:
        if self._shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


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
        if existing is not None and existing.status is not Status.SUCCEEDED:
            refusal = store.rerun_refusal(existing, now_us)
            if refusal is not None:
                raise SegflowError(f"{path.name}: {refusal}", ExitCode.USAGE)
        if existing is not None:
            _say(
                f"{path.name}: reusing execution {existing.execution_id} "
                f"({existing.status.value}) of the same content"
            )
            return existing, True
    return store.create(opts.import_name, path.name, fmt, digest, now_us), False


def _rejects_path(
    path: Path, option: Path | None, several: bool, default_dir: Path | None
) -> tuple[Path, bool]:
    """The rejects file of ``path`` and whether the user named that very file (``--rejects
    FILE``: a symlink there is followed; a name segflow made up never follows one)."""
    if option is None:
        return (default_dir or path.parent) / (path.name + ".rejects.ndjson"), False
    if several or option.is_dir():
        return option / (path.name + ".rejects.ndjson"), False
    return option, True


class _Progress:
    """A live line on an interactive stderr; nothing (the final summary suffices) otherwise.

    The share done is the reader's offset in the file *as stored* over the file's size, so a
    compressed input (gzip or zstd, whatever its name) shows a true percentage and ETA.
    """

    def __init__(self, path: Path, interval_s: float) -> None:
        self._tty = sys.stderr.isatty()
        self._size = path.stat().st_size
        self._begin = time.monotonic()
        self._interval = interval_s
        self._last = 0.0
        self._shown = False

    def __call__(self, reader: Reader, execution: Execution, rejects: RejectsFile) -> None:
        now = time.monotonic()
        if not self._tty or now - self._last < self._interval:
            return
        self._last = now
        sys.stderr.write("\r" + progress_text(reader, rejects.count, self._size, now - self._begin))
        sys.stderr.flush()
        self._shown = True

    def done(self) -> None:
        if self._shown:
            sys.stderr.write("\n")


def progress_text(reader: Reader, rejected: int, size: int, elapsed: float) -> str:
    """The progress line: MB (decompressed), lines, rate, rejects, then %/ETA of the file."""
    elapsed = max(elapsed, 1e-6)
    text = (
        f"{reader.bytes_read / 1e6:,.1f} MB, {reader.lines_read:,} lines "
        f"({reader.lines_read / elapsed:,.0f}/s), {rejected:,} rejected"
    )
    offset = min(reader.source_offset, size)
    if offset > 0 and size > 0:
        remaining = max(size - offset, 0) / (offset / elapsed)
        text += f", {100 * offset / size:.0f}%, ETA {remaining:,.0f}s"
    return text.ljust(100)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _store(args: argparse.Namespace) -> tuple[Any, ExecutionStore]:
    settings = settings_from(args, UploadSettings)
    cluster, session = connect_or_fail(settings.cassandra, settings.cassandra.keyspace)
    return cluster, ExecutionStore(session)


def _executions_list(args: argparse.Namespace) -> int:
    cluster, store = _store(args)
    try:
        executions = list(store.recent(args.limit))
    finally:
        cluster.shutdown()
    if args.output == "json":
        print_json([as_dict(execution) for execution in executions])
        return 0
    for execution in executions:
        print(
            f"{execution.execution_id}  {execution.status.value:<9}  "
            f"{execution.applied.value:<25}  "
            f"{execution.created_at:%Y-%m-%d %H:%M:%S}  {execution.import_name:<16} "
            f"{execution.file_name}  produced={execution.commands_produced} "
            f"rejected={execution.lines_rejected} applied={execution.commands_applied} "
            f"dead_lettered={execution.commands_dead_lettered}"
        )
    return 0


def _executions_reindex(args: argparse.Namespace) -> int:
    cluster, store = _store(args)
    try:
        count = store.reindex()
    finally:
        cluster.shutdown()
    if args.output == "json":
        print_json({"indexed": count})
    else:
        print(f"{count} executions indexed")
    return 0


def _executions_show(args: argparse.Namespace) -> int:
    cluster, store = _store(args)
    try:
        execution = store.get(args.execution_id)
    finally:
        cluster.shutdown()
    if execution is None:
        raise SegflowError(f"no execution {args.execution_id}")
    if args.output == "json":
        print_json(as_dict(execution))
    else:
        print(json.dumps(as_dict(execution), indent=2))
    return 0


def _executions_cancel(args: argparse.Namespace) -> int:
    cluster, store = _store(args)
    try:
        canceled = store.cancel(args.execution_id, "canceled by `segflow executions cancel`")
    finally:
        cluster.shutdown()
    if not canceled:
        raise SegflowError(f"execution {args.execution_id} is unknown or already finished")
    if args.output == "json":
        print_json({"execution_id": args.execution_id, "status": Status.CANCELED.value})
    else:
        print(f"{args.execution_id}: CANCELED")
    return 0
