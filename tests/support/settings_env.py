"""Which ``SEGFLOW_<SECTION>__<KEY>`` variables a process's settings model would not read.

The settings models ignore unknown variables (``extra="ignore"``), so a misspelt variable in a
deployment file (Helm chart, compose file) is silently lost. The deployment tests check every
variable they set against the model of the process the container runs.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from segflow.settings import SegflowSettings

# Sections every deployment file sets for all its containers, read only by some processes.
SHARED_SECTIONS = {"kafka"}


def unknown_settings(model: type[SegflowSettings], names: Iterable[str]) -> list[str]:
    """The nested ``SEGFLOW_*__*`` names in ``names`` that ``model`` has no field for."""
    unknown = []
    for name in names:
        if not name.startswith("SEGFLOW_") or "__" not in name:
            continue  # e.g. SEGFLOW_HEALTH_PORT: the image's HEALTHCHECK reads it, not segflow
        section, _, key = name.removeprefix("SEGFLOW_").lower().partition("__")
        field = model.model_fields.get(section)
        if field is None:
            if section not in SHARED_SECTIONS:
                unknown.append(name)
            continue
        section_model = field.annotation
        is_section = isinstance(section_model, type) and issubclass(section_model, BaseModel)
        if not is_section or key not in section_model.model_fields:  # type: ignore[union-attr]
            unknown.append(name)
    return unknown
