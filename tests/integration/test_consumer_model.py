"""Model-based test: random command sequences through the real topic and consumer.

Hypothesis generates commands over a few users and segments (every operation, expiries,
replaces, duplicates, equal-version removals, adds and Village commands), produces them to
random partitions (delivery order scrambled), lets the real consumer apply them, and compares
``members`` and ``user`` read back from Cassandra with the pure reference model — once per
write-grouping mode (REPLICA_SET, PARTITION_KEY, DISABLED).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segflow.contract.records import CommandRecord
from segflow.settings import CassandraSettings
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

USERS = ["email:ann@example.com", "user_id:u-2", "account:7:acc-3", "email_hash:e4"]
DAY_MS = 86_400_000


class Env(ConsumerWorld):
    """Topic + consumer + session shared by every example of the module."""


@pytest.fixture(scope="module", params=["REPLICA_SET", "PARTITION_KEY", "DISABLED"])
def env(
    request: pytest.FixtureRequest, endpoints: Endpoints, cassandra_settings: CassandraSettings
) -> Iterator[Env]:
    """One consumer per write-grouping mode; every mode must match the model."""
    with consumer_world(
        endpoints, cassandra_settings, "model", 3, write_grouping=request.param
    ) as (kafka, session):
        yield Env(kafka, session)


step = st.one_of(
    st.tuples(
        st.just("FEED_ADD"),
        st.integers(0, 3),
        st.integers(0, 1),
        st.sampled_from(["none", "past", "future"]),
        st.booleans(),
    ),
    st.tuples(st.just("FEED_REMOVE"), st.integers(0, 3), st.integers(0, 1)),
    st.tuples(
        st.sampled_from(["OVERRIDE_ADD", "OVERRIDE_BLOCK", "OVERRIDE_RESET"]),
        st.integers(0, 3),
        st.integers(0, 1),
    ),
    st.tuples(st.just("REPLACE"), st.integers(0, 1), st.sets(st.integers(0, 3), max_size=4)),
    st.tuples(st.just("DUPLICATE"), st.integers(0, 1000)),
    st.tuples(st.just("TIE_REMOVE"), st.integers(0, 1000)),
    # Another command at an earlier one's version, on its user and segment (issue 14.6).
    st.tuples(
        st.just("TIE_ADD"),
        st.integers(0, 1000),
        st.sampled_from(["none", "past", "future", "later"]),
        st.booleans(),
    ),
    st.tuples(
        st.just("TIE_VILLAGE"),
        st.integers(0, 1000),
        st.sampled_from(["OVERRIDE_ADD", "OVERRIDE_BLOCK", "OVERRIDE_RESET"]),
    ),
)
EXPIRY = {"none": None, "past": -DAY_MS, "future": DAY_MS, "later": 2 * DAY_MS}


def build_commands(
    steps: list[tuple[Any, ...]],
    segments: list[str],
    execution_id: str,
    now_ms: int,
    rng: random.Random,
) -> list[tuple[int, CommandRecord]]:
    """(sequence, record) pairs; duplicates reuse their original's sequence number."""
    out: list[tuple[int, CommandRecord]] = []
    versions = rng.sample(range(1, 10_000), len(steps))
    base = now_ms * 1000 - 10_000_000_000
    seq = 0
    for (kind, *args), offset in zip(steps, versions, strict=True):
        version = base + offset * 1000
        if kind == "DUPLICATE" and out:
            out.append(out[args[0] % len(out)])
            continue
        if kind == "TIE_REMOVE" and out:
            original = out[args[0] % len(out)][1]
            if original["operation"] == "FEED_ADD":
                tie = command(
                    execution_id,
                    "FEED_REMOVE",
                    original["version"],
                    original["user_key"],
                    original["segment_ids"],
                )
                out.append((seq, tie))
                seq += 1
            continue
        if kind in ("TIE_ADD", "TIE_VILLAGE") and out:
            original = out[args[0] % len(out)][1]
            if original["user_key"] is not None:
                tie = command(
                    execution_id,
                    "FEED_ADD" if kind == "TIE_ADD" else args[1],
                    original["version"],
                    original["user_key"],
                    original["segment_ids"],
                )
                if kind == "TIE_ADD":
                    expiry = EXPIRY[args[1]]
                    tie["expires_at_ms"] = None if expiry is None else now_ms + expiry
                    tie["data_bag"] = f'{{"tie": {seq}}}' if args[2] else None
                else:
                    tie["metadata"] = f'{{"tie": {seq}}}'
                    tie["reference_id"] = f"ref-{seq}"
                out.append((seq, tie))
                seq += 1
            continue
        if kind in ("DUPLICATE", "TIE_REMOVE", "TIE_ADD", "TIE_VILLAGE"):
            continue
        if kind == "REPLACE":
            segment, members = segments[args[0]], sorted(args[1])
            begin = command(execution_id, "REPLACE_BEGIN", version, None, [segment])
            begin["segment"] = {
                "id": segment,
                "name": f"name-{offset}",
                "description": None,
                "broadcast_medium_id": None,
                "segment_type": "static",
            }
            group = [begin]
            for index in members:
                external = f"ext-{index}"
                member = command(
                    execution_id, "REPLACE_MEMBER", version, f"user_id:{external}", [segment]
                )
                member["person"] = {
                    "external_id": external,
                    "first_name": f"F{index}",
                    "last_name": None,
                    "email": None,
                    "phone": None,
                    "substitution_tags": [{"tag": "t", "value": str(offset)}],
                }
                group.append(member)
            end = command(execution_id, "REPLACE_END", version, None, [segment])
            end["member_count"] = len(members)
            group.append(end)
            for record in group:
                out.append((seq, record))
                seq += 1
            continue
        user, segment = USERS[args[0]], segments[args[1]]
        record = command(execution_id, kind, version, user, [segment])
        if kind == "FEED_ADD":
            expiry = EXPIRY[args[2]]
            record["expires_at_ms"] = None if expiry is None else now_ms + expiry
            record["data_bag"] = f'{{"n": {offset}}}' if args[3] else None
        elif kind.startswith("OVERRIDE_"):
            record["metadata"] = f'{{"o": {offset}}}'
            record["reference_id"] = f"ref-{offset}"
        out.append((seq, record))
        seq += 1
    return out


@settings(
    max_examples=12,  # per grouping mode
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=1, max_size=25), seed=st.integers(0, 2**32))
def test_consumer_state_equals_reference_model(
    env: Env, steps: list[tuple[Any, ...]], seed: int
) -> None:
    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:8]
    segments = [f"m{tag}-a", f"m{tag}-b"]
    for segment in segments:
        env.registry.create(segment, bucket_count=4)
    now_ms = int(time.time() * 1000)
    execution = env.store.create("model", "model.ndjson", "producer", tag, now_ms * 1000)
    commands = build_commands(steps, segments, execution.execution_id, now_ms, rng)
    replace_users = {f"user_id:ext-{i}" for i in range(4)}
    produce(env.kafka, commands, execution.execution_id, shuffle_partitions=3, rng=rng)
    unique = len({sequence for sequence, _ in commands})
    landed = wait_landed(env.store, execution.execution_id, unique)
    assert landed.commands_dead_lettered == 0

    expected = effective_state((record for _, record in commands), int(time.time() * 1000))
    for segment in segments:
        registered = env.registry.get(segment, fresh=True)
        assert registered is not None
        actual = {
            m.user_key: (
                m.via,
                m.data_bag,
                int(m.expires_at.timestamp() * 1000) if m.expires_at else None,
                m.metadata,
                m.reference_id,
            )
            for m in env.reader.members(registered)
        }
        want = {
            user: (m.via, m.data_bag, m.expires_at_ms, m.metadata, m.reference_id)
            for user, m in expected.get(segment, {}).items()
        }
        assert actual == want, f"segment {segment}"
    for user in [*USERS, *sorted(replace_users)]:
        actual_user = {
            (m.segment_id, m.via, m.data_bag, m.metadata, m.reference_id)
            for m in env.reader.user_segments(user)
            if m.segment_id in segments
        }
        want_user = {
            (
                segment,
                members[user].via,
                members[user].data_bag,
                members[user].metadata,
                members[user].reference_id,
            )
            for segment, members in expected.items()
            if user in members
        }
        assert actual_user == want_user, f"user {user}"
