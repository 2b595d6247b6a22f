"""Start, watch and stop one detached server process, tracked by a pid file.

The pid file records the pid and the process start time read from ``/proc``, so ``down``
never signals a recycled pid that now belongs to somebody else, and ``up`` reuses a node only
when it is really the one it started.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from segflow.pids import pid_alive


class NodeError(RuntimeError):
    """A node could not be started, did not become ready, or died."""


@dataclass(frozen=True)
class Port:
    """A TCP port a node listens on, and what for (used in error messages)."""

    number: int
    purpose: str
    setting: str
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class NodeProcess:
    """Where a node keeps its pid file and its console log."""

    name: str
    pid_file: Path
    console_log: Path
    server_log: Path

    def read_pid(self) -> int | None:
        """The pid of the running node this stack started, or None."""
        try:
            record = json.loads(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        pid = int(record.get("pid", 0))
        if pid <= 0 or _start_time(pid) != record.get("start_time"):
            return None
        return pid

    def is_running(self) -> bool:
        """True when the pid file names a live process started by this stack."""
        return self.read_pid() is not None

    def spawn(self, cmd: list[str], cwd: Path) -> int:
        """Start ``cmd`` detached (own session) with stdout/stderr appended to the console log."""
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        with self.console_log.open("ab") as out:
            proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        self.pid_file.write_text(
            json.dumps({"pid": proc.pid, "start_time": _start_time(proc.pid), "cmd": cmd[:1]})
        )
        return proc.pid

    def wait_ready(
        self, pid: int, probe: Callable[[], bool], timeout_s: float, poll_s: float = 0.5
    ) -> None:
        """Poll ``probe`` until it succeeds; fail fast with the log tail if the process dies."""
        deadline = time.monotonic() + timeout_s
        while True:
            if not pid_alive(pid):
                self.pid_file.unlink(missing_ok=True)
                raise NodeError(f"{self.name} exited during startup.\n{self.log_tail()}")
            if probe():
                return
            if time.monotonic() > deadline:
                raise NodeError(
                    f"{self.name} did not become ready within {timeout_s:.0f}s.\n{self.log_tail()}"
                )
            time.sleep(poll_s)

    def stop(self, timeout_s: float) -> bool:
        """SIGTERM the process group, SIGKILL after ``timeout_s``; True if one was running."""
        pid = self.read_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid_alive(pid):
            _signal_group(pid, signal.SIGKILL)
            while pid_alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> int | None:
        """SIGKILL the process group at once (a crash, no shutdown); the pid, or None."""
        pid = self.read_pid()
        if pid is None:
            return None
        _signal_group(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return pid

    def log_tail(self, lines: int = 30) -> str:
        """Last lines of the server log and the console log, for error messages."""
        parts: list[str] = []
        for path in (self.server_log, self.console_log):
            if path.is_file():
                text = _tail(path, lines)
                if text:
                    parts.append(f"--- last lines of {path} ---\n{text}")
        return "\n".join(parts) or f"(no log written yet by {self.name})"


def check_ports_free(node: str, ports: list[Port]) -> None:
    """Fail at once, naming the port and the setting to change, if any port is taken."""
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((port.host, port.number))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                raise NodeError(
                    f"{node}: port {port.host}:{port.number} ({port.purpose}) is already in use by "
                    f"a process this stack did not start. Free it or choose another port with "
                    f"{port.setting}."
                ) from None


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout_s):
        return True
    return False


def _start_time(pid: int) -> str | None:
    """Process start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it are split safely.
    return stat.rsplit(")", 1)[1].split()[19]


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _tail(path: Path, lines: int) -> str:
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 64 * 1024))
        data = handle.read().decode("utf-8", errors="replace")
    return "\n".join(data.splitlines()[-lines:])
