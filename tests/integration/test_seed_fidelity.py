"""Seed fidelity (issue 14) through the real topic, consumer and Cassandra.

Each test reads the state back from Cassandra (``members``/``user`` readers, the registry,
``TTL()``/``WRITETIME()`` of the stored cells) after the real consumer applied the commands.
Commands are built by the real readers where a seed's own example is at stake.
"""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from producer_tools.readers import ReadContext, make_reader
from segflow.contract.errors import RecordError
from segflow.contract.ids import ms_datetime
from segflow.contract.records import CommandRecord
from segflow.db.membership import Member
from segflow.settings import CassandraSettings
from tests.support.cli_env import segflow_env
from tests.support.consumer_harness import (
    ConsumerWorld,
    command,
    consumer_world,
    produce,
    wait_landed,
)
from tests.support.endpoints import Endpoints
from tests.support.reference_model import effective_state

pytestmark = pytest.mark.integration

US = 1_000_000
DAY_MS = 86_400_000


class Env(ConsumerWorld):
    """Topic + consumer + session shared by the module's tests."""

    def execution(self, created_at_us: int | None = None) -> str:
        tag = uuid.uuid4().hex[:8]
        created = created_at_us or int(time.time() * US)
        return self.store.create("seeds", f"{tag}.ndjson", "test", tag * 8, created).execution_id

    def apply(self, execution_id: str, records: list[CommandRecord]) -> None:
        """Produce ``records`` (in this order, one partition) and wait until all landed."""
        produce(self.kafka, list(enumerate(records)), execution_id)
        landed = wait_landed(self.store, execution_id, len(records))
        assert landed.commands_dead_lettered == 0

    def members(self, segment_id: str) -> dict[str, Member]:
        segment = self.registry.get(segment_id, fresh=True)
        assert segment is not None
        return {m.user_key: m for m in self.reader.members(segment)}

    def read(self, fmt: str, data: bytes, created_at_us: int) -> tuple[str, list[CommandRecord]]:
        """Run a real reader over ``data`` for a new execution; its commands (no errors)."""
        execution_id = self.execution(created_at_us)
        ctx = ReadContext(execution_id, "cd" * 32, created_at_us, "seed-input")
        items = list(make_reader(fmt, ctx).read(io.BytesIO(data)))
        assert [i for _, i in items if isinstance(i, RecordError)] == []
        return execution_id, [i for _, i in items if not isinstance(i, RecordError)]


@pytest.fixture(scope="module")
def env(endpoints: Endpoints, cassandra_settings: CassandraSettings) -> Iterator[Env]:
    with consumer_world(endpoints, cassandra_settings, "seeds", 1) as (kafka, session):
        yield Env(kafka, session)


def _segment() -> str:
    return f"seed-{uuid.uuid4().hex[:10]}"


def _document(segment_id: str, name: str, persons: list[str] | None) -> bytes:
    """Seed 003's example document, placeholders filled in (``persons`` left out if None)."""
    doc: dict[str, Any] = {
        "id": segment_id,
        "name": name,
        "description": f"about {name}",
        "broadcastMediumId": "bm-1",
        "segmentType": "static",
    }
    if persons is not None:
        doc["persons"] = [
            {
                "substitutionTags": [{"tag": "city", "value": "Lyon"}],
                "externalId": external,
                "firstName": "F",
                "lastName": "L",
                "phone": "+33100000000",
                "email": f"{external}@example.com",
            }
            for external in persons
        ]
    return json.dumps(doc, indent=2).encode()


# --- Segment definitions: decided by version (14.6) and definition-only documents (14.5) ----


def test_older_definition_applied_first_does_not_shadow_a_newer_one(env: Env) -> None:
    # The lagging-consumer case: the older document creates the segment when it is applied;
    # the newer one, applied after, must win although its version is older than that creation.
    segment = _segment()
    base = int(time.time() * US) - 3600 * US
    old_run, old = env.read("segmenter", _document(segment, "N1", ["a"]), base)
    new_run, new = env.read("segmenter", _document(segment, "N2", ["a"]), base + 60 * US)
    env.apply(old_run, old)
    env.apply(new_run, new)
    registered = env.registry.get(segment, fresh=True)
    assert registered is not None
    assert registered.name == "N2"
    assert registered.description == "about N2"


def test_newer_definition_applied_first_stays(env: Env) -> None:
    segment = _segment()
    base = int(time.time() * US) - 3600 * US
    old_run, old = env.read("segmenter", _document(segment, "N1", []), base)
    new_run, new = env.read("segmenter", _document(segment, "N2", []), base + 60 * US)
    env.apply(new_run, new)
    env.apply(old_run, old)
    registered = env.registry.get(segment, fresh=True)
    assert registered is not None
    assert registered.name == "N2"


def test_definition_after_an_identity_only_creation_is_applied(env: Env) -> None:
    # A segment created first without a definition (auto-created by a feed command, or by
    # `segments create ID`): a definition versioned before that creation still applies.
    segment = _segment()
    env.registry.create(segment, bucket_count=4)
    run, records = env.read(
        "segmenter", _document(segment, "Named", []), int(time.time() * US) - 3600 * US
    )
    env.apply(run, records)
    registered = env.registry.get(segment, fresh=True)
    assert registered is not None
    assert registered.name == "Named"
    assert registered.segment_type == "static"


def test_definition_only_document_updates_the_definition_and_keeps_members(env: Env) -> None:
    segment = _segment()
    base = int(time.time() * US) - 3600 * US
    run, records = env.read("segmenter", _document(segment, "Before", ["p1", "p2"]), base)
    env.apply(run, records)
    assert set(env.members(segment)) == {"user_id:p1", "user_id:p2"}
    run, records = env.read("segmenter", _document(segment, "After", None), base + 60 * US)
    assert [r["operation"] for r in records] == ["REPLACE_BEGIN"]
    env.apply(run, records)
    registered = env.registry.get(segment, fresh=True)
    assert registered is not None
    assert registered.name == "After"
    assert set(env.members(segment)) == {"user_id:p1", "user_id:p2"}
    assert {m.segment_id for m in env.reader.user_segments("user_id:p1")} >= {segment}


# --- Tests that can fail (14.10): TTLs, technical names, the seed's own example bodies --------


def test_feed_expiry_is_the_ttl_of_the_stored_cells(env: Env) -> None:
    segment = _segment()
    env.registry.create(segment, bucket_count=1)
    run = env.execution()
    now_ms = int(time.time() * 1000)
    expires = now_ms + DAY_MS
    add = command(run, "FEED_ADD", now_ms * 1000, "email_hash:ttl", [segment])
    add["expires_at_ms"] = expires
    add["data_bag"] = '{"k": 1}'
    never = command(run, "FEED_ADD", now_ms * 1000, "email_hash:never", [segment])
    env.apply(run, [add, never])
    by_segment = {
        row.user_key: row.ttl
        for row in env.session.execute(
            "SELECT user_key, TTL(data_bag) AS ttl FROM feed_by_segment "
            "WHERE segment_id = %s AND bucket = 0",
            (segment,),
        )
    }
    by_user = env.session.execute(
        "SELECT TTL(feed_member) AS ttl FROM segments_by_user "
        "WHERE user_key = 'email_hash:ttl' AND segment_id = %s",
        (segment,),
    ).one()
    applied_ms = int(time.time() * 1000)
    # TTL = expiry - apply time (rounded up), read back after the apply: between the time
    # left now and the time left when the command was built.
    for ttl in (by_segment["email_hash:ttl"], by_user.ttl):
        assert ttl is not None
        assert (expires - applied_ms) // 1000 - 1 <= ttl <= (expires - now_ms) // 1000 + 1
    assert by_segment["email_hash:never"] is None


def test_technical_names_resolve_to_their_segment_in_the_consumer(env: Env) -> None:
    segment = _segment()
    name = f"tech-{uuid.uuid4().hex[:8]}"
    env.registry.create(segment, technical_name=name, bucket_count=4)
    data = json.dumps(
        {
            "operation": "UPDATE",
            "expiration_duration": 0,
            "email_hash": "by-name",
            "segment_technical_names": [name],
        }
    ).encode()
    run, records = env.read("mediarithmics-ndjson", data, int(time.time() * US))
    assert records[0]["segment_ids"] == []
    env.apply(run, records)
    assert set(env.members(segment)) == {"email_hash:by-name"}
    assert [m.segment_id for m in env.reader.user_segments("email_hash:by-name")] == [segment]


def test_the_mediarithmics_curl_body_as_written_adds_the_user(env: Env) -> None:
    segment = _segment()
    env.registry.create(segment, bucket_count=4)
    body = (
        b'{ \n        "operation": "UPDATE",\n        "expiration_duration": 60,\n'
        b'        "compartment_id": "1", \n        "user_account_id": "u-9",\n'
        b'        "segment_id": "' + segment.encode() + b'"\n      }'
    )
    created = int(time.time() * US)
    run, records = env.read("mediarithmics-ndjson", body, created)
    env.apply(run, records)
    member = env.members(segment)["account:1:u-9"]
    assert member.expires_at is not None
    assert int(member.expires_at.timestamp() * 1000) == created // 1000 + 60 * 60_000


# --- Village reset keeps the status; later feed changes decide (14.1) ------------------------


def _village(
    run: str, status: str, version: int, user: str, segment: str, **fields: Any
) -> CommandRecord:
    op = {"add": "OVERRIDE_ADD", "block": "OVERRIDE_BLOCK", "reset": "OVERRIDE_RESET"}[status]
    record = command(run, op, version, user, [segment], source="VILLAGE")
    record.update(fields)  # type: ignore[typeddict-item]
    return record


def _feed(run: str, add: bool, version: int, user: str, segment: str) -> CommandRecord:
    return command(run, "FEED_ADD" if add else "FEED_REMOVE", version, user, [segment])


def _both_views(env: Env, segment: str, user: str) -> Member | None:
    """The user's membership read by segment and by user; both views must agree."""
    by_segment = env.members(segment).get(user)
    by_user = {m.segment_id: m for m in env.reader.user_segments(user)}.get(segment)
    assert by_segment == by_user
    return by_segment


# (name, commands as (kind, version offset), member at the end?). Delivered in list order
# and reversed: the result must not depend on it.
RESET_CASES = [
    # Seed: "This does not change Segment status". Today's code dropped the override.
    ("add then reset keeps the user in", [("add", 1), ("reset", 2)], True),
    ("feed in, block, reset keeps the user out", [("in", 1), ("block", 2), ("reset", 3)], False),
    # "...allows Program and Rule logic to affect this user's Segment membership going forward"
    ("a feed removal after the reset decides", [("add", 1), ("reset", 2), ("out", 3)], False),
    ("a feed add after the reset decides", [("block", 1), ("reset", 2), ("in", 3)], True),
    ("a feed change before the reset does not", [("add", 1), ("out", 2), ("reset", 3)], True),
    (
        "a second reset after a feed change holds the feed's status",
        [("block", 1), ("reset", 2), ("in", 3), ("reset", 4)],
        True,
    ),
    ("a reset without override changes nothing", [("in", 1), ("reset", 2)], True),
    ("an override after the reset decides again", [("add", 1), ("reset", 2), ("block", 3)], False),
    ("a reset at the override's version holds it", [("in", 1), ("block", 2), ("reset", 2)], False),
    ("a removal at the reset's version decides", [("add", 1), ("reset", 2), ("out", 2)], False),
    ("an add at the reset's version does not", [("block", 1), ("reset", 2), ("in", 2)], False),
]


@pytest.mark.parametrize(("name", "steps", "member"), RESET_CASES, ids=[c[0] for c in RESET_CASES])
@pytest.mark.parametrize("order", ["forward", "reversed"])
def test_village_reset_keeps_the_status_until_a_feed_change(
    env: Env, name: str, steps: list[tuple[str, int]], member: bool, order: str
) -> None:
    segment = _segment()
    env.registry.create(segment, bucket_count=2)
    run = env.execution()
    base = int(time.time() * US) - 3600 * US
    user = "email:reset@example.com"
    records = [
        _feed(run, kind == "in", base + offset, user, segment)
        if kind in ("in", "out")
        else _village(run, kind, base + offset, user, segment)
        for kind, offset in steps
    ]
    if order == "reversed":
        records.reverse()
    env.apply(run, records)
    found = _both_views(env, segment, user)
    assert (found is not None) == member, name
    from tests.support.reference_model import effective_state

    model = effective_state(records, int(time.time() * 1000))
    assert (user in model.get(segment, {})) == member, f"reference model: {name}"


# --- Village reporting fields stored with the override (14.2) --------------------------------


def _cli(env: Env, cassandra: CassandraSettings, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "segflow.cli", *args],
        env=segflow_env(env.kafka, cassandra, SEGFLOW_LOG__LEVEL="WARNING"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_village_fields_are_stored_with_the_override(
    env: Env, cassandra_settings: CassandraSettings, tmp_path: Path
) -> None:
    segment_number = int(time.time() * 1000) % 10**9
    segment = str(segment_number)
    env.registry.create(segment, bucket_count=2)
    line = {
        "user": "Ann@Example.com",
        "segment_id": segment_number,
        "user_status": "add",
        "metadata": {"campaign": "spring", "score": 3},
        "reference_id": "ref-77",
        "description": "VIP from the CRM",
    }
    run, records = env.read("village", json.dumps(line).encode(), int(time.time() * US))
    env.apply(run, records)
    member = _both_views(env, segment, "email:ann@example.com")
    assert member is not None
    assert member.via == "override"
    assert json.loads(member.metadata or "") == {"campaign": "spring", "score": 3}
    assert member.reference_id == "ref-77"
    assert member.description == "VIP from the CRM"

    # `members` / `user` show them; the export offers them as membership attributes.
    [listed] = [
        json.loads(x)
        for x in _cli(
            env, cassandra_settings, "members", segment, "--format", "ndjson"
        ).splitlines()
    ]
    assert listed["reference_id"] == "ref-77"
    assert listed["description"] == "VIP from the CRM"
    assert json.loads(listed["metadata"]) == {"campaign": "spring", "score": 3}
    [own] = [
        json.loads(x)
        for x in _cli(
            env, cassandra_settings, "user", "email:Ann@Example.com", "--format", "ndjson"
        ).splitlines()
        if json.loads(x)["segment_id"] == segment
    ]
    assert own == listed
    out = tmp_path / "export.json"
    attributes = "membership.via,membership.metadata,membership.reference_id,membership.description"
    _cli(env, cassandra_settings, "export", segment, "--attributes", attributes, "--out", str(out))
    exported = json.loads(out.read_bytes())
    assert exported["email:ann@example.com"]["sections"][segment]["attributes"] == {
        "membership.via": {"value": "override"},
        "membership.metadata": {"value": {"campaign": "spring", "score": 3}},
        "membership.reference_id": {"value": "ref-77"},
        "membership.description": {"value": "VIP from the CRM"},
    }


# --- Equal versions: one command's whole row in every order (14.6) ---------------------------

Build = Callable[[str, str], list[CommandRecord]]


def _in_every_order(env: Env, build: Build, user: str) -> Member | None:
    """Apply ``build(run, segment)``'s commands once per rotation of their order (each on a
    segment of its own); every order must give the same membership, which is returned."""
    seen = []
    count = len(build("probe", "probe"))
    for start in range(count):
        segment = _segment()
        env.registry.create(segment, bucket_count=2)
        run = env.execution()
        records = build(run, segment)
        env.apply(run, records[start:] + records[:start])
        found = _both_views(env, segment, user)
        seen.append(None if found is None else dataclasses.replace(found, segment_id=""))
    assert all(member == seen[0] for member in seen), seen
    return seen[0]


def test_equal_version_adds_keep_one_commands_whole_row(env: Env) -> None:
    now_ms = int(time.time() * 1000)
    version = now_ms * 1000 - 3600 * US
    user = "email_hash:tie"
    rows = [('"a"', now_ms + DAY_MS), ('"b"', now_ms + 2 * DAY_MS), (None, now_ms + DAY_MS)]

    def build(run: str, segment: str) -> list[CommandRecord]:
        adds = []
        for index, (bag, expires) in enumerate(rows):
            add = command(run, "FEED_ADD", version, user, [segment])
            add["command_id"] = f"{index}" * 32
            add["data_bag"], add["expires_at_ms"] = bag, expires
            adds.append(add)
        return adds

    member = _in_every_order(env, build, user)
    # Cell by cell, the null data_bag (a tombstone) would have won beside the later expiry.
    assert member is not None
    assert (member.data_bag, member.expires_at) == ('"b"', ms_datetime(now_ms + 2 * DAY_MS))


def test_equal_version_village_commands_keep_one_commands_fields(env: Env) -> None:
    version = int(time.time() * US) - 3600 * US
    user = "email:tie@example.com"
    fields = [('{"m": 3}', "r3"), (None, "r2"), ('{"m": 1}', None)]

    def build(run: str, segment: str) -> list[CommandRecord]:
        adds = []
        for index, (meta, ref) in enumerate(fields):
            add = _village(run, "add", version, user, segment, metadata=meta, reference_id=ref)
            add["command_id"] = f"{index}" * 32
            adds.append(add)
        return adds

    member = _in_every_order(env, build, user)
    assert member is not None
    # The greatest command_id's fields, all of them (cell by cell: {"m": 3} beside r3... or
    # a null metadata's tombstone beside another command's reference_id).
    assert (member.metadata, member.reference_id) == ('{"m": 1}', None)


def test_an_expired_add_and_a_reset_at_one_version_keep_the_status(env: Env) -> None:
    """The divergence found in review: the already-expired add deleted the reset's hold at
    its own version; the reference model (and a live add) keep it."""
    base = int(time.time() * US) - 3600 * US
    user = "email:expired-tie@example.com"

    def build(run: str, segment: str) -> list[CommandRecord]:
        expired = _feed(run, True, base + 2, user, segment)
        expired["expires_at_ms"] = base // 1000  # passed long before it is applied
        return [
            _village(run, "add", base + 1, user, segment),
            expired,
            _village(run, "reset", base + 2, user, segment),
        ]

    assert user in effective_state(build("model", "s"), int(time.time() * 1000))["s"]
    member = _in_every_order(env, build, user)
    assert member is not None
    assert member.via == "override"
