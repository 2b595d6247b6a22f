"""Group commit of one-command requests (``http_api.ingest.batching``), on a real event loop.

The batch function here is a stand-in for the Village execution (the integration test in
``tests/integration/test_ingest.py`` runs the real one); what is checked is the grouping:
who waits with whom, in which order, and that every caller gets its own result.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from http_api.ingest.batching import CreatedClock, GroupCommit


class Recorder:
    """A batch function that records its batches and can be held open."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.release = asyncio.Event()
        self.hold = False

    async def run(self, group: str, items: list[int]) -> list[str]:
        self.batches.append((group, items))
        if self.hold:
            await self.release.wait()
        return [f"{group}:{item}" for item in items]


def test_a_lone_request_runs_at_once_and_gets_its_own_result() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        commit: GroupCommit[int, str] = GroupCommit(recorder.run, max_batch=10, max_in_flight=1)
        assert await asyncio.wait_for(commit.submit("7", 1), 1) == "7:1"
        assert recorder.batches == [("7", [1])]

    asyncio.run(scenario())


def test_requests_arriving_while_a_batch_runs_share_the_next_in_order() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        recorder.hold = True
        commit: GroupCommit[int, str] = GroupCommit(recorder.run, max_batch=3, max_in_flight=1)
        first = asyncio.ensure_future(commit.submit("7", 0))
        await asyncio.sleep(0)
        rest = [asyncio.ensure_future(commit.submit("7", i)) for i in range(1, 6)]
        other = asyncio.ensure_future(commit.submit("8", 100))
        await asyncio.sleep(0.01)
        assert recorder.batches == [("7", [0])]  # the slot is busy: the others queue
        recorder.release.set()
        results = await asyncio.wait_for(asyncio.gather(first, *rest, other), 1)
        assert results == [f"7:{i}" for i in range(6)] + ["8:100"]
        # max_batch 3, first come first served, and network 8 is not starved by 7's backlog.
        assert recorder.batches == [("7", [0]), ("7", [1, 2, 3]), ("8", [100]), ("7", [4, 5])]

    asyncio.run(scenario())


def test_a_failing_batch_fails_each_of_its_requests_and_not_the_next() -> None:
    async def scenario() -> None:
        calls = 0

        async def run(group: str, items: list[int]) -> list[int]:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ConnectionError("Cassandra gone")
            return items

        commit: GroupCommit[int, int] = GroupCommit(run, max_batch=10, max_in_flight=1)
        with pytest.raises(ConnectionError):
            await commit.submit("7", 1)
        assert await commit.submit("7", 2) == 2

    asyncio.run(scenario())


def test_a_caller_that_leaves_does_not_cancel_the_others() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        recorder.hold = True
        commit: GroupCommit[int, str] = GroupCommit(recorder.run, max_batch=10, max_in_flight=1)
        blocker = asyncio.ensure_future(commit.submit("7", 0))
        await asyncio.sleep(0)
        leaving = asyncio.ensure_future(commit.submit("7", 1))
        staying = asyncio.ensure_future(commit.submit("7", 2))
        await asyncio.sleep(0)
        leaving.cancel()
        recorder.release.set()
        assert await asyncio.wait_for(staying, 1) == "7:2"
        assert await blocker == "7:0"
        assert recorder.batches[1] == ("7", [1, 2])  # its command was still run

    asyncio.run(scenario())


@given(st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=50),
       st.lists(st.integers(min_value=0, max_value=3), min_size=50, max_size=50))  # fmt: skip
def test_grouped_executions_never_overlap_in_versions(sizes: list[int], steps: list[int]) -> None:
    """Versions are created_at_us + line (1..n): group k's all sit below group k+1's."""
    now = [1_000_000]

    def clock() -> int:
        return now[0]

    stamps = CreatedClock(clock)
    previous_top = -1
    for size, step in zip(sizes, steps, strict=False):
        now[0] += step  # the wall clock moves less than a group spans
        created = stamps.take(size)
        assert created + 1 > previous_top
        previous_top = created + size
