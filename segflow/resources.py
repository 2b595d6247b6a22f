"""Locate the contract files (Avro schemas, CQL migrations) in a checkout or an installed wheel.

``schemas/`` is shipped as package data (``segflow/_schemas`` inside the wheel), never as an
importable package, so both the editable checkout layout and the wheel layout must be found.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def schemas_dir() -> Path:
    """Return the directory holding ``segment_command*.avsc`` and ``cql/``."""
    packaged = Path(__file__).resolve().parent / "_schemas"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / "schemas"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError("segflow schemas directory not found (neither _schemas nor ../schemas)")


def cql_dir() -> Path:
    """Directory of the versioned CQL migrations."""
    return schemas_dir() / "cql"
