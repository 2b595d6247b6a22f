"""Seed 004's request rules, each one, on the pure validator (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from http_api.export.request import (
    ExportRequestError,
    ExportSpec,
    add_months,
    parse_body,
    validate,
)

KNOWN = {"s1", "s2", "s3"}


def check(body: dict[str, object]) -> ExportSpec:
    import orjson

    return validate(parse_body(orjson.dumps(body)), KNOWN.__contains__)


def field_of(body: dict[str, object]) -> str | None:
    with pytest.raises(ExportRequestError) as caught:
        check(body)
    return caught.value.field


T0 = "2026-01-31T00:00:00Z"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "attributes"),
        ({"attributes": [f"data_bag.k{i}" for i in range(76)]}, "attributes"),
        ({"attributes": ["email"], "tags": [f"t{i}" for i in range(26)]}, "tags"),
        ({"attributes": ["email", "email"]}, "attributes[1]"),
        ({"attributes": ["nope"]}, "attributes[0]"),
        ({"attributes": ["data_bag."]}, "attributes[0]"),
        ({"attributes": [""]}, "attributes[0]"),
        ({"attributes": ["email"], "tags": ["s1", "zz"]}, "tags[1]"),
        ({"attributes": ["email"], "events": ["add", "click"]}, "events[1]"),
        ({"attributes": ["email"], "events": ["add"]}, "start_at"),
        ({"attributes": ["email"], "end_at": T0}, "end_at"),
        ({"attributes": ["email"], "start_at": T0, "end_at": T0}, "end_at"),
        ({"attributes": ["email"], "start_at": T0, "end_at": "2026-05-01T00:00:00Z"}, "end_at"),
        ({"attributes": ["email"], "segment_filter": "unknown"}, "segment_filter"),
        ({"attributes": ["email"], "bogus": 1}, "bogus"),
        ({"attributes": "email"}, "attributes"),
        ({"attributes": ["email"], "start_at": "yesterday"}, "start_at"),
        ({"attributes": [1]}, "attributes[0]"),
    ],
)
def test_each_rule_names_its_field(body: dict[str, object], field: str) -> None:
    assert field_of(body) == field


def test_limits_are_inclusive() -> None:
    spec = check(
        {
            "attributes": [f"data_bag.k{i}" for i in range(75)],
            "tags": ["s1", "s2", "s3"],
        }
    )
    assert len(spec.attributes) == 75


def test_three_calendar_months_is_the_longest_window() -> None:
    spec = check(
        {"attributes": ["email"], "events": ["add"], "start_at": T0, "end_at": "2026-04-30T00:00Z"}
    )
    assert spec.end_at == datetime(2026, 4, 30, tzinfo=UTC)
    assert field_of({"attributes": ["email"], "start_at": T0, "end_at": "2026-04-30T00:01Z"})


def test_end_at_defaults_to_a_week_and_naive_times_are_utc() -> None:
    spec = check({"attributes": ["email"], "events": ["add"], "start_at": "2026-03-01T10:00:00"})
    assert spec.start_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
    # Seed 004: "defaulted to one week after start_at" - written out, not the code's constant.
    assert spec.end_at == datetime(2026, 3, 8, 10, tzinfo=UTC)


def test_events_only_is_accepted_but_lists_no_profiles() -> None:
    spec = check({"events": ["add"], "start_at": T0})
    assert not spec.lists_profiles
    assert check({"tags": ["s1"]}).lists_profiles


@pytest.mark.parametrize("raw", [b"{", b"[1]", b'"x"'])
def test_body_must_be_a_json_object(raw: bytes) -> None:
    with pytest.raises(ExportRequestError) as caught:
        parse_body(raw)
    assert caught.value.field is None


@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
    st.integers(0, 36),
)
def test_add_months_keeps_the_day_or_clamps_to_the_month_end(moment: datetime, months: int) -> None:
    later = add_months(moment, months)
    assert (later.year * 12 + later.month) - (moment.year * 12 + moment.month) == months
    assert later.day == moment.day or (
        later.day < moment.day and (later + timedelta(days=1)).day == 1
    )
    assert later.time() == moment.time()


attribute = st.sampled_from(["email", "first_name", "membership.via"]) | st.text(
    alphabet="abcxyz_", min_size=1, max_size=8
).map(lambda s: f"data_bag.{s}")


@given(
    segment=st.none() | st.sampled_from(sorted(KNOWN)),
    attributes=st.lists(attribute, max_size=10, unique=True),
    tags=st.lists(st.sampled_from(sorted(KNOWN)), unique=True),
    events=st.lists(st.sampled_from(["add", "remove", "block"]), unique=True),
    start=st.none() | st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
)
def test_spec_round_trips_through_the_job_row(
    segment: str | None,
    attributes: list[str],
    tags: list[str],
    events: list[str],
    start: datetime | None,
) -> None:
    body: dict[str, object] = {
        "segment_filter": segment,
        "attributes": attributes or ["email"],
        "tags": tags,
        "events": events if start else [],
        "start_at": start.isoformat() if start else None,
    }
    spec = check(body)
    assert ExportSpec.from_json(spec.to_json()) == spec


@given(
    start=st.datetimes(min_value=datetime(9999, 1, 1), max_value=datetime(9999, 12, 31, 23)),
    offset_h=st.integers(-23, 23),
    end_days=st.none() | st.integers(-400, 400),
)
def test_dates_near_the_calendar_edges_are_a_400_never_a_crash(
    start: datetime, offset_h: int, end_days: int | None
) -> None:
    from datetime import timezone

    zone = timezone(timedelta(hours=offset_h))
    body: dict[str, object] = {"attributes": ["email"], "start_at": start.replace(tzinfo=zone)}
    if end_days is not None:
        try:
            body["end_at"] = start.replace(tzinfo=zone) + timedelta(days=end_days)
        except OverflowError:
            body["end_at"] = "9999-12-31T23:59:59-23:00"
    try:
        spec = check({k: v.isoformat() if isinstance(v, datetime) else v for k, v in body.items()})
    except ExportRequestError as exc:
        field = exc.field
    else:
        field = None
    if field is not None:
        assert field in ("start_at", "end_at")
        return
    assert spec.start_at is not None
    assert spec.end_at is not None
    assert spec.start_at < spec.end_at
