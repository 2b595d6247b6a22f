"""The values table of helm/segflow/README.md, generated from the ``# --`` comments of values.yaml.

values.yaml is the one place a value is described; the README's table is derived from it so
the two cannot drift (tests/unit/test_helm_chart.py compares them). After editing values.yaml:

    .venv/bin/python -m tests.support.helm_values_doc      # rewrites the README's table
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "segflow"
VALUES = CHART / "values.yaml"
README = CHART / "README.md"
TABLE_HEADING = "## Values\n"
# Maps documented as one value: their inner keys are Kubernetes' (resources, probes, ...).
OPAQUE = {
    "resources",
    "livenessProbe",
    "readinessProbe",
    "labels",
    "updateStrategy",
    "nodeSelector",
    "affinity",
    "dcReplication",
    "prometheusNamespaceSelector",
    "prometheusPodSelector",
}
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_]+):")
_DOC_START = re.compile(r"^ *# -- ?(?P<text>.*)$")
_DOC_MORE = re.compile(r"^ *#(?: +(?P<text>.*))?$")


def descriptions(text: str) -> dict[str, str]:
    """Dotted key path -> the ``# --`` comment block right above that key."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    for line in text.splitlines():
        start = _DOC_START.match(line)
        if start:
            pending = [start.group("text")]
            continue
        more = _DOC_MORE.match(line)
        if more and pending is not None:
            pending.append(more.group("text") or "")
            continue
        key = _KEY.match(line)
        if key is None:
            if not line.strip().startswith("-"):  # list items belong to the key above
                pending = None
            continue
        indent = len(key.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key.group("key")))
        if pending is not None:
            found[".".join(name for _, name in stack)] = " ".join(pending).strip()
        pending = None
    return found


def leaves(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted path, default) of every documented value, in file order."""
    out: list[tuple[str, Any]] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in OPAQUE:
            out += leaves(value, path + ".")
        else:
            out.append((path, value))
    return out


def render_default(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("...").strip()


def table(values_text: str) -> str:
    """The README's values section, heading included."""
    described = descriptions(values_text)
    rows = ["| value | default | meaning |", "|---|---|---|"]
    for path, default in leaves(yaml.safe_load(values_text)):
        if path not in described:
            raise ValueError(f"values.yaml: {path} has no `# --` comment")
        meaning = described[path].replace("|", "\\|")
        rows.append(f"| `{path}` | `{render_default(default)}` | {meaning} |")
    return TABLE_HEADING + "\n" + "\n".join(rows) + "\n"


def readme_table(readme_text: str) -> str:
    """The values section currently in the README (from its heading to the end)."""
    start = readme_text.index(TABLE_HEADING)
    return readme_text[start:]


def main() -> int:
    readme = README.read_text()
    start = readme.index(TABLE_HEADING)
    README.write_text(readme[:start] + table(VALUES.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
