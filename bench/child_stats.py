"""Run a benchmark's child process and report its own CPU time and peak RSS."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

# Children are started through this small launcher: a child forked straight from the bench
# process (which holds every pre-encoded record) would report the bench's pages in ru_maxrss
# until its exec; forked from the launcher, its peak RSS is its own.
MEASURE = (
    "import json, os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[1], sys.argv[1:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "print(json.dumps({'status': status, 'cpu_s': usage.ru_utime + usage.ru_stime,"
    " 'maxrss_kb': usage.ru_maxrss}))\n"
)


def measured_child(cmd: list[str], env: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    """Run ``cmd`` under the launcher; (its status/CPU/peak RSS, its combined output)."""
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], env=env, capture_output=True, text=True, check=False
    )
    lines = proc.stdout.strip().splitlines()
    stats: dict[str, Any] = json.loads(lines[-1])
    return stats, "\n".join(lines[:-1]) + proc.stderr


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by a running process, from /proc/PID/stat.

    For processes a benchmark does not wait for (a server JVM, a worker it stops later), where
    ``wait4`` cannot report; read it before and after the measured phase. The command name in
    field 2 may hold spaces, so the fields are counted from its closing parenthesis.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_model() -> str:
    """The CPU model name (from /proc/cpuinfo on Linux): every benchmark prints it beside its
    figures, because the machine kind changes between runs."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
