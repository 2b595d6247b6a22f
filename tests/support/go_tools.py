"""Go tools the tests run (helm, helm-docs), built with ``go install`` into ``.segflow/bin/``.

No prebuilt binaries: each tool is built from the Go module proxy at a pinned version, once,
and reused while the stamp next to it names that version (a cold helm build is ~2 min on 2
cores, helm-docs ~30 s).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = ROOT / ".segflow" / "bin"
# binary name -> (package to install, pinned version)
TOOLS = {
    "helm": ("helm.sh/helm/v3/cmd/helm", "v3.21.4"),
    "helm-docs": ("github.com/norwoodj/helm-docs/cmd/helm-docs", "v1.14.2"),
}


class GoToolError(RuntimeError):
    """The Go toolchain is missing or ``go install`` failed (the message says which)."""


def go_tool(name: str) -> Path:
    """The path of tool ``name``, built with ``go install`` first if needed."""
    package, version = TOOLS[name]
    binary = BIN_DIR / name
    stamp = BIN_DIR / f"{name}.version"
    if binary.is_file() and stamp.is_file() and stamp.read_text().strip() == version:
        return binary
    go = shutil.which("go")
    if go is None:
        raise GoToolError(f"the Go toolchain (`go`) is needed to build {name}")
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [go, "install", f"{package}@{version}"],
        env={**os.environ, "GOBIN": str(BIN_DIR), "CGO_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if result.returncode != 0:
        raise GoToolError(f"go install {package}@{version} failed:\n{result.stderr}")
    stamp.write_text(version + "\n")
    return binary
