"""In-process CLI runs: a clean ``SEGFLOW_*`` environment and the warnings of each test."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from segflow import cli_flags


@dataclass
class Run:
    """What one in-process ``segflow`` run printed and returned."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        """Non-empty stderr lines."""
        return [line for line in self.err.splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("SEGFLOW_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SEGFLOW_LOG__FORMAT", "json")
    monkeypatch.setattr(cli_flags, "_warned", set())
    return


@pytest.fixture
def segflow(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run ``segflow ARGS`` in this process (argparse exits become return codes)."""
    from segflow.cli import main

    def run(*args: str) -> Run:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
