"""Village reset (issue 14.1): the stored-cell rules agree with the literal reference model.

The consumer never reads before writing: each command leaves cells at its version, and the
readers decide from those cells (``segflow.db.membership.override_decides``). This test
derives, for random command sequences about one user and segment, the cells Cassandra would
keep (last write wins per cell, a deletion wins ties and covers lower timestamps; a feed add
deletes the held set at its version - 1, as CQL overwrites a collection; a removal at its
version; a replace clears at version - 1) and checks that the reader's decision equals the
reference model's, which applies the commands one by one in version order.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from segflow.contract.records import CommandRecord, command_record
from segflow.db.membership import override_decides
from tests.support.reference_model import effective_state

SEGMENT = "s"
USER = "email:u@example.com"
KINDS = ("FEED_ADD", "FEED_REMOVE", "OVERRIDE_ADD", "OVERRIDE_BLOCK", "OVERRIDE_RESET", "CLEAR")
_TIE = {"OVERRIDE_ADD": 0, "OVERRIDE_BLOCK": 1}


def _stored_decision(steps: list[tuple[str, int]]) -> bool:
    """Membership as the readers compute it from the cells the steps leave behind."""
    state: tuple[int, int, str] | None = None  # (version, tie rank, state)
    resets: set[int] = set()
    feed_writes: list[tuple[int, bool]] = []  # (version, is_add)
    clears: list[int] = []
    for kind, version in steps:
        if kind in _TIE:
            candidate = (version, _TIE[kind], "add" if kind == "OVERRIDE_ADD" else "block")
            state = candidate if state is None or candidate[:2] > state[:2] else state
        elif kind == "OVERRIDE_RESET":
            resets.add(version)
        elif kind == "CLEAR":
            clears.append(version - 1)
        else:
            feed_writes.append((version, kind == "FEED_ADD"))

    def released(reset: int) -> bool:
        return any(
            (version > reset if is_add else version >= reset) for version, is_add in feed_writes
        ) or any(cleared >= reset for cleared in clears)

    held = {r for r in resets if not released(r)}
    # Feed cell: the latest write wins, a removal wins ties; a clear deletes what is below it.
    latest = max(feed_writes, key=lambda w: (w[0], not w[1]), default=None)
    in_feed = latest is not None and latest[1] and all(latest[0] > cleared for cleared in clears)
    if state is not None and override_decides(state[2], state[0], resets, held):
        return state[2] == "add"
    return in_feed


def _commands(steps: list[tuple[str, int]]) -> list[CommandRecord]:
    records = []
    for index, (kind, version) in enumerate(steps):
        if kind == "CLEAR":
            end = command_record(
                command_id=f"c{index}",
                execution_id="e",
                operation="REPLACE_END",
                version=version,
                user_key=None,
                segment_ids=[SEGMENT],
                member_count=0,
            )
            records.append(end)
            continue
        records.append(
            command_record(
                command_id=f"c{index}",
                execution_id="e",
                operation=kind,
                version=version,
                user_key=USER,
                segment_ids=[SEGMENT],
            )
        )
    return records


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KINDS), st.integers(1, 8)), max_size=10))
def test_stored_cells_decide_as_the_reference_model(steps: list[tuple[str, int]]) -> None:
    model = USER in effective_state(_commands(steps), now_ms=0).get(SEGMENT, {})
    assert _stored_decision(steps) == model, steps


def test_the_seed_examples() -> None:
    # add -> reset: still in; feed in + block -> reset: still out; then a feed change decides.
    assert _stored_decision([("OVERRIDE_ADD", 1), ("OVERRIDE_RESET", 2)])
    assert not _stored_decision([("FEED_ADD", 1), ("OVERRIDE_BLOCK", 2), ("OVERRIDE_RESET", 3)])
    assert not _stored_decision([("OVERRIDE_ADD", 1), ("OVERRIDE_RESET", 2), ("FEED_REMOVE", 3)])
    assert _stored_decision([("OVERRIDE_BLOCK", 1), ("OVERRIDE_RESET", 2), ("FEED_ADD", 3)])
