"""Group commit: concurrent one-command requests share one execution and one producer wait.

A Village POST carries one command. Run alone, each costs an execution row (two inserts), a
Kafka round trip at acks=all and the final save (a lightweight transaction), so the request
rate was bound by Cassandra round trips, not by HTTP (0.08 x the no-op ceiling). Here the
requests waiting at the same moment for the same group (a Village network) are read as the
lines of one execution and answered together, each only once *its own* line's record is
acknowledged (the batch's acks are awaited before anyone is answered; nothing is answered 200
that is not durable).

No timer: a request that finds a free slot (fewer than ``max_in_flight`` batches running)
starts a batch at once, so a lone request waits for nobody; while the slots are busy,
arrivals queue and the next free slot takes up to ``max_batch`` of them (first come, first
served). Under load, batches grow by themselves to what one round trip lets arrive.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    future: asyncio.Future[R]


RunBatch = Callable[[str, list[T]], Awaitable[list[R]]]


class GroupCommit(Generic[T, R]):
    """Collects items per group and runs them ``max_batch`` at a time (module docstring).

    ``run`` gets the group and its items in arrival order and returns one result per item, in
    the same order; an exception it raises is every item's. Event-loop side only: ``submit``
    must be awaited from the loop that runs the batches.
    """

    def __init__(self, run: RunBatch[T, R], max_batch: int, max_in_flight: int) -> None:
        self._run = run
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queued: OrderedDict[str, list[_Waiting[T, R]]] = OrderedDict()
        self._running: set[asyncio.Task[None]] = set()
        self.batches = 0  # batches run so far (tests and the benchmark read it)

    async def submit(self, group: str, item: T) -> R:
        """Queue ``item`` and wait for its result.

        A caller that goes away (client disconnect) does not cancel the batch: the other
        items' answers, and the execution's final status, still come.
        """
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        self._queued.setdefault(group, []).append(_Waiting(item, future))
        self._dispatch()
        return await asyncio.shield(future)

    def _dispatch(self) -> None:
        while self._queued and len(self._running) < self._max_in_flight:
            group, waiting = self._queued.popitem(last=False)
            batch, rest = waiting[: self._max_batch], waiting[self._max_batch :]
            if rest:  # the group goes to the back: other networks are not starved
                self._queued[group] = rest
            task = asyncio.ensure_future(self._complete(group, batch))
            self._running.add(task)
            task.add_done_callback(self._finished)
            self.batches += 1

    async def _complete(self, group: str, batch: list[_Waiting[T, R]]) -> None:
        try:
            results = await self._run(group, [waiting.item for waiting in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
        except Exception as exc:  # every waiter gets the batch's error (503 in the app)
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(exc)
            return
        except BaseException:  # cancelled (loop shutting down): so are its waiters
            for waiting in batch:
                waiting.future.cancel()
            raise
        for waiting, result in zip(batch, results, strict=True):
            if not waiting.future.done():
                waiting.future.set_result(result)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._dispatch()


class CreatedClock:
    """``created_at_us`` of successive grouped executions, never overlapping.

    Time-less Village commands are versioned ``created_at_us + line``: a group of n lines
    spans n microseconds, so the next group starts after them (else a later request could get
    a lower version than an earlier one and lose to it).
    """

    def __init__(self, now_us: Callable[[], int]) -> None:
        self._now_us = now_us
        self._next = 0

    def take(self, lines: int) -> int:
        """The created time of a group of ``lines`` lines."""
        created = max(self._now_us(), self._next)
        self._next = created + lines + 1
        return created


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a failed result as seen, so a waiter that left logs no 'never retrieved'."""
    if not future.cancelled():
        future.exception()
