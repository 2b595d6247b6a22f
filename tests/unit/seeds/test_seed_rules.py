"""Seed rules checked against the seeds' own words, not against segflow's constants."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from http_api.export.request import parse_body, validate


def test_end_at_defaults_to_one_week_after_start_at() -> None:
    # Seed 004: "When end_at is not provided in a request, it is defaulted to one week after
    # start_at." One week after 2026-03-01T10:00Z is 2026-03-08T10:00Z (written out, so the
    # test does not share the implementation's constant).
    body = {"attributes": ["email"], "events": ["add"], "start_at": "2026-03-01T10:00:00Z"}
    spec = validate(parse_body(orjson.dumps(body)), {"s1"}.__contains__)
    assert spec.start_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert spec.end_at == datetime(2026, 3, 8, 10, tzinfo=UTC)
