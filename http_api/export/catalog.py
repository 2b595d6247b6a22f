"""What an export can contain: attribute ids, event type ids and the reserved section id.

Tags need no catalog entry here: a tag id is a segment id from the registry (the profile
carries the tag while it is an effective member of that segment). ``GET /v1/attributes``,
``/v1/tags`` and ``/v1/events`` describe these ids to API users.
"""

from __future__ import annotations

from dataclasses import dataclass

PROFILE_FIELDS: dict[str, str] = {
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "phone": "phone",
    "external_id": "external_id",
}
MEMBERSHIP_VIA = "membership.via"
MEMBERSHIP_EXPIRES_AT = "membership.expires_at"
# Village reporting fields of the override a membership comes from (seed 002).
MEMBERSHIP_METADATA = "membership.metadata"
MEMBERSHIP_REFERENCE_ID = "membership.reference_id"
MEMBERSHIP_DESCRIPTION = "membership.description"
MEMBERSHIP_ATTRIBUTES = frozenset(
    {
        MEMBERSHIP_VIA,
        MEMBERSHIP_EXPIRES_AT,
        MEMBERSHIP_METADATA,
        MEMBERSHIP_REFERENCE_ID,
        MEMBERSHIP_DESCRIPTION,
    }
)
SUBSTITUTION_PREFIX = "substitution."
DATA_BAG_PREFIX = "data_bag."

# Section of a profile that belongs to no segment (exports without segment_filter only).
PROFILE_SECTION = "_profile"

EVENT_TYPES: dict[str, str] = {
    "add": "Put in the segment (mediarithmics UPDATE, or Village add: a forced membership).",
    "remove": "Taken out of the segment's feed (mediarithmics DELETE).",
    "block": "Village block: forced out of the segment whatever the feed says.",
    "reset": "Village reset: the status is kept until the next feed change decides.",
    "replace": "Listed in a Segmenter replace-all document of the segment.",
}


@dataclass(frozen=True, slots=True)
class AttributeInfo:
    """One attribute id (or id pattern) an export request may name."""

    id: str
    type: str
    description: str


ATTRIBUTES: tuple[AttributeInfo, ...] = (
    AttributeInfo("first_name", "string", "Profile first name (Segmenter person)."),
    AttributeInfo("last_name", "string", "Profile last name (Segmenter person)."),
    AttributeInfo("email", "string", "Profile email (Segmenter person)."),
    AttributeInfo("phone", "string", "Profile phone (Segmenter person)."),
    AttributeInfo("external_id", "string", "Profile externalId (Segmenter person)."),
    AttributeInfo(
        MEMBERSHIP_VIA,
        "string",
        "How the profile is a member of the section's segment: "
        '"feed" (imports) or "override" (Village add).',
    ),
    AttributeInfo(
        MEMBERSHIP_EXPIRES_AT,
        "integer|null",
        "When the membership ends (ms since epoch); null = never.",
    ),
    AttributeInfo(
        MEMBERSHIP_METADATA,
        "object",
        "Village metadata of the override the membership comes from (latest status change).",
    ),
    AttributeInfo(
        MEMBERSHIP_REFERENCE_ID, "string", "Village reference_id of the membership's override."
    ),
    AttributeInfo(
        MEMBERSHIP_DESCRIPTION, "string", "Village description of the membership's override."
    ),
    AttributeInfo(
        SUBSTITUTION_PREFIX + "<tag>", "string", "A Segmenter substitution tag of the profile."
    ),
    AttributeInfo(
        DATA_BAG_PREFIX + "<key>", "any", "A top-level key of the membership's data_bag JSON."
    ),
)


def is_known_attribute(attribute_id: str) -> bool:
    """A fixed attribute id, or a prefixed one with a non-empty name after the prefix."""
    if attribute_id in PROFILE_FIELDS or attribute_id in MEMBERSHIP_ATTRIBUTES:
        return True
    for prefix in (SUBSTITUTION_PREFIX, DATA_BAG_PREFIX):
        if attribute_id.startswith(prefix) and len(attribute_id) > len(prefix):
            return True
    return False


def needs_profile(attributes: tuple[str, ...]) -> bool:
    """Whether any requested attribute is read from the profiles table."""
    return any(a in PROFILE_FIELDS or a.startswith(SUBSTITUTION_PREFIX) for a in attributes)
