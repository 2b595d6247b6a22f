"""One profile's entry in an export file (seed 004's format), built from data already read.

Pure: the job gathers a profile's row, memberships and events; this decides what of it the
request asked for. Format::

    {"sections": {"<segment_id>": {"attributes": {"<id>": {"value": ...}, "<tag>": {"value":
    null}}, "events": [{"correlationId", "sourceEventTime", "typeId", "createdAt", "data"}]}}}

Tags and profile attributes describe the profile, so they repeat in every section; membership
attributes (via, expires_at, Village fields, data_bag.*) and events belong to the section's segment.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from http_api.export.catalog import (
    DATA_BAG_PREFIX,
    MEMBERSHIP_DESCRIPTION,
    MEMBERSHIP_EXPIRES_AT,
    MEMBERSHIP_METADATA,
    MEMBERSHIP_REFERENCE_ID,
    MEMBERSHIP_VIA,
    PROFILE_FIELDS,
    SUBSTITUTION_PREFIX,
)
from http_api.export.request import ExportSpec
from segflow.db.membership import Member


@dataclass(frozen=True, slots=True)
class Profile:
    """A row of the profiles table: person fields and substitution tags."""

    fields: Mapping[str, str | None]
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExportEvent:
    """A membership change (a row of membership_events)."""

    segment_id: str
    user_key: str
    version: int
    command_id: str
    operation: str
    applied_at_ms: int

    def as_json(self) -> dict[str, Any]:
        """Seed 004's event object; sourceEventTime is the command's version in ms."""
        return {
            "correlationId": self.command_id,
            "sourceEventTime": self.version // 1000,
            "typeId": self.operation,
            "createdAt": self.applied_at_ms,
            "data": {"segment_id": self.segment_id, "version": self.version},
        }


def profile_entry(
    spec: ExportSpec,
    sections: Sequence[str],
    section_members: Mapping[str, Member],
    member_of: Collection[str],
    profile: Profile | None,
    events: Sequence[ExportEvent],
) -> dict[str, Any]:
    """The ``{"sections": {...}}`` object of one profile.

    ``section_members``: the profile's effective membership in each section's segment;
    ``member_of``: every segment it is an effective member of (for tags).
    """
    shared = _profile_attributes(spec, profile)
    for tag in spec.tags:
        if tag in member_of:
            shared[tag] = {"value": None}
    out: dict[str, Any] = {}
    for section in sections:
        attributes = dict(shared)
        member = section_members.get(section)
        if member is not None:
            attributes.update(_membership_attributes(spec, member))
        body: dict[str, Any] = {"attributes": attributes}
        if spec.events:
            chosen = sorted(
                (e for e in events if e.segment_id == section and e.operation in spec.events),
                key=lambda e: (e.version, e.command_id),
            )
            body["events"] = [e.as_json() for e in chosen]
        out[section] = body
    return {"sections": out}


def _profile_attributes(spec: ExportSpec, profile: Profile | None) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if profile is None:
        return found
    for attribute in spec.attributes:
        if attribute in PROFILE_FIELDS:
            value = profile.fields.get(PROFILE_FIELDS[attribute])
            if value is not None:
                found[attribute] = {"value": value}
        elif attribute.startswith(SUBSTITUTION_PREFIX):
            tag = attribute[len(SUBSTITUTION_PREFIX) :]
            if tag in profile.tags:
                found[attribute] = {"value": profile.tags[tag]}
    return found


def _membership_attributes(spec: ExportSpec, member: Member) -> dict[str, Any]:
    found: dict[str, Any] = {}
    bag: dict[str, Any] | None = None
    for attribute in spec.attributes:
        if attribute == MEMBERSHIP_VIA:
            found[attribute] = {"value": member.via}
        elif attribute == MEMBERSHIP_EXPIRES_AT:
            expires = member.expires_at
            found[attribute] = {
                "value": None if expires is None else int(expires.timestamp() * 1000)
            }
        elif attribute in VILLAGE_FIELDS:
            value = getattr(member, VILLAGE_FIELDS[attribute])
            if value is not None:
                found[attribute] = {
                    "value": _data_bag(value) if attribute == MEMBERSHIP_METADATA else value
                }
        elif attribute.startswith(DATA_BAG_PREFIX):
            if bag is None:
                bag = _data_bag(member.data_bag)
            key = attribute[len(DATA_BAG_PREFIX) :]
            if key in bag:
                found[attribute] = {"value": bag[key]}
    return found


VILLAGE_FIELDS = {
    MEMBERSHIP_METADATA: "metadata",
    MEMBERSHIP_REFERENCE_ID: "reference_id",
    MEMBERSHIP_DESCRIPTION: "description",
}


def _data_bag(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
