"""``segflow consume --workers N``: N consumer processes under one supervising parent.

Each worker is a full group member (``consumer.runtime.run``) in its own spawned process. The
parent only supervises, with two rules a process manager (Kubernetes, systemd, compose) can
rely on:

- **Signals are passed on.** SIGTERM or SIGINT to the parent is sent to every worker, which
  then stops as a single consumer does (finish or abandon the held batch, commit, close). A
  worker still running ``shutdown_timeout_s`` + ``KILL_GRACE_S`` later is killed.
- **A failed worker fails the whole process.** When a worker exits non-zero or is killed by a
  signal, the parent stops the other workers the same way and exits non-zero: the worker's
  exit code, or 128 + the signal number (137 for SIGKILL, as a shell reports it). Restarting
  is left to the process manager, which already does it with backoff and counts restarts;
  an in-process restart loop would hide a crash loop behind a healthy-looking pod. (Before,
  a killed worker was reported as exit 0 and the parent waited forever on the others.)

With ``--until-idle`` workers exit 0 one by one once caught up; the parent exits 0 when all did.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import wait
from types import FrameType
from typing import Any

from consumer.runtime import run
from segflow.settings import ConsumeSettings

log = logging.getLogger(__name__)
KILL_GRACE_S = 20.0
FORWARDED = (signal.SIGTERM, signal.SIGINT)


def exit_code(process_exitcode: int | None) -> int:
    """A worker's outcome as a shell exit code: its own, or 128 + signal when killed."""
    if process_exitcode is None:
        return 0
    if process_exitcode < 0:
        return 128 - process_exitcode
    return process_exitcode


def run_workers(settings: ConsumeSettings, workers: int, until_idle: bool) -> int:
    """Run ``workers`` consumer processes (or one in-process) and return the exit code."""
    if workers <= 1:
        run(settings, until_idle)
        return 0
    return _Supervisor(settings, workers, until_idle).run()


class _Supervisor:
    def __init__(self, settings: ConsumeSettings, workers: int, until_idle: bool) -> None:
        context = multiprocessing.get_context("spawn")
        self._procs = [
            context.Process(target=run, args=(settings, until_idle, i), name=f"consumer-{i}")
            for i in range(workers)
        ]
        self._grace = settings.consumer.shutdown_timeout_s + KILL_GRACE_S
        self._stop_signal: int | None = None
        self._kill_at: float | None = None
        self._failure = 0

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in FORWARDED}
        try:
            for index, proc in enumerate(self._procs):
                proc.start()
                log.info("worker started", extra={"fields": {"worker": index, "pid": proc.pid}})
                if self._stop_signal is not None:  # a signal arrived while starting
                    self._send(self._stop_signal)
            self._supervise()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        codes = [exit_code(proc.exitcode) for proc in self._procs]
        return self._failure or max(codes, default=0)

    def _supervise(self) -> None:
        reported: set[int] = set()
        while True:
            alive = [proc for proc in self._procs if proc.exitcode is None]
            for index, proc in enumerate(self._procs):
                if proc.exitcode is not None and index not in reported:
                    reported.add(index)
                    self._on_exit(index, proc)
            if not alive:
                return
            if self._kill_at is not None and time.monotonic() >= self._kill_at:
                for proc in alive:
                    log.error(
                        "worker did not stop in time; killing it",
                        extra={"fields": {"worker": self._procs.index(proc), "pid": proc.pid}},
                    )
                    proc.kill()
                self._kill_at = None
            wait([proc.sentinel for proc in alive], timeout=1.0)

    def _on_exit(self, index: int, proc: Any) -> None:
        code = exit_code(proc.exitcode)
        fields: dict[str, object] = {"worker": index, "pid": proc.pid, "exit_code": code}
        if proc.exitcode is not None and proc.exitcode < 0:
            fields["signal"] = signal.Signals(-proc.exitcode).name
        if code == 0:
            log.info("worker exited", extra={"fields": fields})
            return
        log.error("worker failed; stopping the other workers", extra={"fields": fields})
        if not self._failure:
            self._failure = code
        self._begin_stop(signal.SIGTERM)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info(
            "signal received; passing it on to the workers",
            extra={"fields": {"signal": signal.Signals(signum).name}},
        )
        self._begin_stop(signum)

    def _begin_stop(self, signum: int) -> None:
        if self._stop_signal is None:
            self._stop_signal = signum
            self._kill_at = time.monotonic() + self._grace
        self._send(signum)

    def _send(self, signum: int) -> None:
        for proc in self._procs:
            if proc.pid is not None and proc.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signum)
