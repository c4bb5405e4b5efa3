"""How every agent reads its topic: a batch at a time, each event acknowledged only once its batch is applied.

`each_batch` is the one loop the agents run, so what a batch's events go through before faust may
commit their offsets is decided here and nowhere else.

Acknowledging is what lets faust commit an offset (its consumer commits up to the first event not
acknowledged). faust's `stream.take()` acknowledges a batch in a `finally` around its `yield`: when
the loop body returns, but also when the generator is closed because the body raised, or was
cancelled while `until_done` retried (a worker stopping or restarting its agents while Cassandra is
down) — the generator's `finally` then acknowledged events whose effects were never written, and the
next commit skipped them for good. So the batches come from `noack_take()`, which acknowledges
nothing, and each event is acknowledged here after the batch was applied: a batch cut short is never
acknowledged, its offsets are not committed, and the next consumer of the partition reads it again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from streams.retry import until_done

Apply = Callable[[list[Any]], Awaitable[None]]


async def each_batch(stream: Any, agent: str, apply: Apply, *, size: int, within: float) -> None:
    """Take up to `size` events (waiting at most `within` seconds for them), apply their values, then
    acknowledge them, batch after batch."""
    async for events in stream.noack_take(size, within=within):
        values = [event.value for event in events]
        await until_done(agent, lambda: apply(values))  # noqa: B023 - awaited at once
        for event in events:
            await stream.ack(event)
