"""A pure reference model of the membership semantics (README "Membership semantics").

It applies commands one by one in version order, literally as the contract reads, with none
of the storage tricks of the consumer (timestamps, TTLs, partition deletions, held sets,
read-time filters): the model-based tests compare the consumer's Cassandra state with this.

Per (segment, user): the feed layer (in with data bag and expiry, or out) and the Village
override: none, ``hard`` (add/block decide) or ``held`` (a reset kept the status it found;
the next feed change hands the decision back to the feed layer).

Equal versions (issue 14.6): commands of one version apply in the tie order below, and among
commands of one kind by command_id (the greater last, so it wins). Adds of one version all
stay candidates of the feed row (a later version replaces them, a removal at that version
deletes them); the row is the live candidate that keeps the user longest (no expiry is
longest), then the greatest command_id - one command's data bag and expiry, never a mix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from segflow.contract.enums import Operation
from segflow.contract.records import CommandRecord

# Order of commands at one version (ties), as the stored cells resolve them: a feed add, then
# the override states (block beats add, as Cassandra keeps the larger value of two cells
# written at one timestamp), then a reset (it holds a state written at its own version),
# then a feed removal (a removal wins ties and also releases a hold at its version; an add
# only releases holds of lower versions), then a replace's clear at its version - 1.
_TIE_RANK = {
    Operation.FEED_ADD: 0,
    Operation.REPLACE_MEMBER: 0,
    Operation.OVERRIDE_ADD: 1,
    Operation.OVERRIDE_BLOCK: 2,
    Operation.OVERRIDE_RESET: 3,
    Operation.FEED_REMOVE: 4,
    Operation.REPLACE_END: 5,
    Operation.REPLACE_BEGIN: 6,
}


@dataclass(frozen=True)
class Membership:
    """Effective membership of one user in one segment."""

    via: str  # "feed" | "override"
    data_bag: str | None
    expires_at_ms: int | None
    metadata: str | None = None
    reference_id: str | None = None
    description: str | None = None


@dataclass
class _Override:
    state: str  # "add" | "block"
    mode: str  # "hard" | "held"


def _when(cmd: CommandRecord) -> tuple[int, int, str]:
    op = Operation(cmd["operation"])
    # A replace clears at version - 1: after every command of that version.
    version = cmd["version"] - 1 if op is Operation.REPLACE_END else cmd["version"]
    return version, _TIE_RANK[op], cmd["command_id"]


def effective_state(
    commands: Iterable[CommandRecord], now_ms: int
) -> dict[str, dict[str, Membership]]:
    """segment -> user_key -> Membership, for every effective member."""
    # (version, candidates: (command_id, data_bag, expires_at_ms) of the adds at that version)
    feed: dict[tuple[str, str], tuple[int, list[tuple[str, str | None, int | None]]]] = {}
    overrides: dict[tuple[str, str], _Override] = {}
    last_fields: dict[tuple[str, str], tuple[str | None, str | None, str | None]] = {}
    for cmd in sorted(commands, key=_when):
        op = Operation(cmd["operation"])
        if op is Operation.REPLACE_BEGIN:
            continue
        if op is Operation.REPLACE_END:
            # A complete replace (END is only produced once the whole document was read)
            # removes every feed membership of the segment below its version: a feed change
            # for every user of the segment, so it also ends their holds.
            segment_id = cmd["segment_ids"][0]
            for key in [k for k in feed if k[0] == segment_id]:
                del feed[key]
            for key, override in list(overrides.items()):
                if key[0] == segment_id and override.mode == "held":
                    del overrides[key]
            continue
        user = cmd["user_key"]
        assert user is not None
        for segment_id in dict.fromkeys(cmd["segment_ids"]):
            key = (segment_id, user)
            if op in (Operation.FEED_ADD, Operation.FEED_REMOVE, Operation.REPLACE_MEMBER):
                if op is Operation.FEED_REMOVE:
                    feed.pop(key, None)
                else:
                    add = (cmd["command_id"], cmd["data_bag"], cmd["expires_at_ms"])
                    if op is Operation.REPLACE_MEMBER:
                        add = (cmd["command_id"], None, None)
                    version = cmd["version"]
                    same = feed.get(key)
                    if same is not None and same[0] == version:
                        same[1].append(add)
                    else:
                        feed[key] = (version, [add])
                kept = overrides.get(key)
                if kept is not None and kept.mode == "held":
                    del overrides[key]  # the feed change decides from now on
                continue
            fields = (cmd["metadata"], cmd["reference_id"], cmd["description"])
            last_fields[key] = fields
            if op is Operation.OVERRIDE_RESET:
                current = overrides.get(key)
                if current is not None:
                    current.mode = "held"  # "does not change Segment status"
                continue
            overrides[key] = _Override("add" if op is Operation.OVERRIDE_ADD else "block", "hard")

    result: dict[str, dict[str, Membership]] = {}
    for key in set(feed) | set(overrides):
        segment_id, user = key
        entry = _decides(feed[key][1], now_ms) if key in feed else None
        in_feed = entry is not None
        decides = overrides.get(key)
        if decides is not None:
            if decides.state == "add":
                bag = entry[0] if in_feed and entry is not None else None
                metadata, reference_id, description = last_fields[key]
                result.setdefault(segment_id, {})[user] = Membership(
                    "override", bag, None, metadata, reference_id, description
                )
        elif in_feed and entry is not None:
            result.setdefault(segment_id, {})[user] = Membership("feed", entry[0], entry[1])
    return result


def _decides(
    candidates: list[tuple[str, str | None, int | None]], now_ms: int
) -> tuple[str | None, int | None] | None:
    """(data_bag, expires_at_ms) of the equal-version add that decides, None if none is live."""
    live = [c for c in candidates if c[2] is None or c[2] > now_ms]
    if not live:
        return None
    _, data_bag, expires = max(live, key=lambda c: (c[2] is None, c[2] or 0, c[0]))
    return data_bag, expires
