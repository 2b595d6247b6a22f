"""What a profile's entry holds: only what was requested, tags only while a member."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from http_api.export.profile_entry import ExportEvent, Profile, profile_entry
from http_api.export.request import ExportSpec
from segflow.db.membership import Member

EXPIRES = datetime(2027, 1, 1, tzinfo=UTC)


def spec(**kwargs: object) -> ExportSpec:
    base: dict[str, object] = {
        "segment_filter": "s1",
        "attributes": (),
        "tags": (),
        "events": (),
        "start_at": None,
        "end_at": None,
    }
    base.update(kwargs)
    return ExportSpec(**base)  # type: ignore[arg-type]


PROFILE = Profile(
    fields={
        "first_name": "Ann",
        "last_name": None,
        "email": "a@x.io",
        "phone": None,
        "external_id": "e1",
    },
    tags={"city": "Oslo"},
)
MEMBER = Member("s1", "u", "feed", EXPIRES, '{"score": 7, "tier": "gold"}')


def test_only_requested_attributes_with_values_appear() -> None:
    entry = profile_entry(
        spec(
            attributes=(
                "email",
                "last_name",
                "substitution.city",
                "substitution.zip",
                "data_bag.score",
                "data_bag.none",
                "membership.via",
                "membership.expires_at",
            )
        ),
        ["s1"],
        {"s1": MEMBER},
        {"s1"},
        PROFILE,
        [],
    )
    assert entry == {
        "sections": {
            "s1": {
                "attributes": {
                    "email": {"value": "a@x.io"},
                    "substitution.city": {"value": "Oslo"},
                    "data_bag.score": {"value": 7},
                    "membership.via": {"value": "feed"},
                    "membership.expires_at": {"value": int(EXPIRES.timestamp() * 1000)},
                }
            }
        }
    }


def test_tags_are_present_only_for_segments_the_profile_is_in() -> None:
    entry = profile_entry(spec(tags=("s1", "s2", "s3")), ["s1"], {}, {"s1", "s3"}, None, [])
    assert entry["sections"]["s1"]["attributes"] == {"s1": {"value": None}, "s3": {"value": None}}


def test_events_are_the_sections_requested_types_in_version_order() -> None:
    events = [
        ExportEvent("s1", "u", 3_000_000, "c3", "remove", 10),
        ExportEvent("s1", "u", 1_000_000, "c1", "add", 11),
        ExportEvent("s2", "u", 2_000_000, "c2", "add", 12),
        ExportEvent("s1", "u", 2_000_000, "c4", "block", 13),
    ]
    entry = profile_entry(spec(events=("add", "remove")), ["s1"], {}, set(), None, events)
    got = entry["sections"]["s1"]["events"]
    assert [e["correlationId"] for e in got] == ["c1", "c3"]
    assert got[0] == {
        "correlationId": "c1",
        "sourceEventTime": 1000,
        "typeId": "add",
        "createdAt": 11,
        "data": {"segment_id": "s1", "version": 1_000_000},
    }


def test_no_events_key_unless_events_were_requested() -> None:
    entry = profile_entry(spec(attributes=("email",)), ["s1"], {}, set(), PROFILE, [])
    assert "events" not in entry["sections"]["s1"]


@given(
    attributes=st.lists(
        st.sampled_from(
            ["email", "first_name", "membership.via", "data_bag.score", "substitution.city"]
        ),
        unique=True,
    ),
    member=st.booleans(),
)
def test_membership_attributes_need_membership(attributes: list[str], member: bool) -> None:
    members = {"s1": MEMBER} if member else {}
    entry = profile_entry(spec(attributes=tuple(attributes)), ["s1"], members, set(), PROFILE, [])
    keys = set(entry["sections"]["s1"]["attributes"])
    assert keys <= set(attributes)
    membership_keys = {"membership.via", "data_bag.score"} & set(attributes)
    assert (membership_keys <= keys) if member else not (membership_keys & keys)
