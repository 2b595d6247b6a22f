"""The layers stay visible: ``segflow/`` is the floor and imports nothing from above it.

``producer_tools``, ``consumer`` and ``http_api`` stand on ``segflow``; only the CLI
composition root (``segflow/cli.py``) may import them, to register their commands.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ABOVE = ("consumer", "producer_tools", "http_api")
COMPOSITION_ROOT = ROOT / "segflow" / "cli.py"


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _upward(path: Path, above: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for name in _imported_modules(path)
        if name.split(".")[0] in above
    ]


def test_the_floor_imports_nothing_from_above() -> None:
    found = [
        line
        for path in sorted((ROOT / "segflow").rglob("*.py"))
        if path != COMPOSITION_ROOT
        for line in _upward(path, ABOVE)
    ]
    assert found == []


def test_consumer_and_uploader_do_not_import_each_other_or_the_http_apps() -> None:
    found = [
        line
        for package, others in (
            ("consumer", ("producer_tools", "http_api")),
            ("producer_tools", ("consumer", "http_api")),
        )
        for path in sorted((ROOT / package).rglob("*.py"))
        for line in _upward(path, others)
    ]
    assert found == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = ROOT / "segflow" / "_layering_probe.py"
    module.write_text("from consumer.plan import Context\n")
    try:
        assert _upward(module, ABOVE) == ["segflow/_layering_probe.py imports consumer.plan"]
    finally:
        module.unlink()
