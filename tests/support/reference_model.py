"""A pure reference model of the membership semantics (README "Membership semantics").

It applies commands in version order, literally as the contract reads, with none of the
storage tricks of the consumer (timestamps, TTLs, partition deletions, read-time filters):
the model-based tests compare the consumer's Cassandra state with this.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from segflow.contract.enums import Operation
from segflow.contract.records import CommandRecord

# Ranks break ties at equal versions: a removal beats a write, as a Cassandra tombstone does;
# between two override states the larger value wins ("block" > "add"), as Cassandra does for
# two cells with the same timestamp.
_FEED_RANK = {"add": 0, "remove": 1}
_OVERRIDE_RANK = {"add": 0, "block": 1, "reset": 2}


@dataclass(frozen=True)
class Membership:
    """Effective membership of one user in one segment."""

    via: str  # "feed" | "override"
    data_bag: str | None
    expires_at_ms: int | None


def effective_state(
    commands: Iterable[CommandRecord], now_ms: int
) -> dict[str, dict[str, Membership]]:
    """segment -> user_key -> Membership, for every effective member."""
    feed: dict[tuple[str, str], tuple[int, int, str | None, int | None]] = {}
    overrides: dict[tuple[str, str], tuple[int, int, str]] = {}
    cleared: dict[str, int] = defaultdict(lambda: -1)
    for cmd in commands:
        op = Operation(cmd["operation"])
        version = cmd["version"]
        if op is Operation.REPLACE_END:
            # A complete replace (END is only produced once the whole document was read)
            # clears the segment's feed layer below its version.
            segment_id = cmd["segment_ids"][0]
            cleared[segment_id] = max(cleared[segment_id], version - 1)
            continue
        if op is Operation.REPLACE_BEGIN:
            continue
        user = cmd["user_key"]
        assert user is not None
        for segment_id in dict.fromkeys(cmd["segment_ids"]):
            key = (segment_id, user)
            if op in (Operation.FEED_ADD, Operation.FEED_REMOVE, Operation.REPLACE_MEMBER):
                add = op is not Operation.FEED_REMOVE
                expires = cmd["expires_at_ms"] if op is Operation.FEED_ADD else None
                bag = cmd["data_bag"] if op is Operation.FEED_ADD else None
                entry = (version, _FEED_RANK["add" if add else "remove"], bag, expires)
                if key not in feed or entry[:2] > feed[key][:2]:
                    feed[key] = entry
            else:
                new_state = {
                    Operation.OVERRIDE_ADD: "add",
                    Operation.OVERRIDE_BLOCK: "block",
                    Operation.OVERRIDE_RESET: "reset",
                }[op]
                o_entry = (version, _OVERRIDE_RANK[new_state], new_state)
                if key not in overrides or o_entry[:2] > overrides[key][:2]:
                    overrides[key] = o_entry

    def feed_member(key: tuple[str, str]) -> tuple[str | None, int | None] | None:
        entry = feed.get(key)
        if entry is None:
            return None
        version, rank, bag, expires = entry
        if rank == _FEED_RANK["remove"] or version <= cleared[key[0]]:
            return None
        if expires is not None and expires <= now_ms:
            return None
        return bag, expires

    state: dict[str, dict[str, Membership]] = defaultdict(dict)
    for key in set(feed) | set(overrides):
        segment_id, user = key
        override = overrides.get(key)
        in_feed = feed_member(key)
        if override is not None and override[2] == "add":
            state[segment_id][user] = Membership("override", in_feed[0] if in_feed else None, None)
        elif override is not None and override[2] == "block":
            continue
        elif in_feed is not None:
            state[segment_id][user] = Membership("feed", in_feed[0], in_feed[1])
    return dict(state)
