"""Run the OS package's ``promtool`` (installed by ``make promtool``, a prerequisite of tests).

A missing promtool fails the test with the command that installs it: the checks it runs are
part of the suite, so skipping them would pass a suite that checked nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def promtool(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``promtool ARGS`` to completion (output captured as text, never raises on exit code)."""
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed: run `make promtool` (Debian package 'prometheus')")
    return subprocess.run(
        [found, *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
