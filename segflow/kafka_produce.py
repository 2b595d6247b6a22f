"""Queue a record on a librdkafka producer without ever dropping it when the queue is full.

``Producer.produce`` raises ``BufferError`` while the local queue is at
``queue.buffering.max.messages`` / ``.kbytes``; waiting on ``poll()`` serves delivery reports
until there is room again, which is what keeps producer memory bounded whatever the input
size. The uploader and the consumer's dead-letter sink both produce through here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Headers = list[tuple[str, str | bytes | None]]


def produce_waiting(
    producer: Any,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    on_delivery: Callable[[Any, Any], None],
    poll_s: float = 0.05,
    partition: int | None = None,
) -> None:
    """Queue one record, serving delivery reports while the local queue is full.

    ``partition`` pins the record to one partition (tests scramble delivery order with it);
    by default the key decides.
    """
    pinned = {} if partition is None else {"partition": partition}
    while True:
        try:
            producer.produce(
                topic, value=value, key=key, headers=headers, on_delivery=on_delivery, **pinned
            )
            return
        except BufferError:
            producer.poll(poll_s)
