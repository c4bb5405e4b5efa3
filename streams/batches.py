"""How every agent reads its topic: a batch at a time, each batch applied by `until_done`.

`each_batch` is the one loop the agents run, so what a batch's events go through before faust may
commit their offsets is decided here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from streams.retry import until_done

Apply = Callable[[list[Any]], Awaitable[None]]


async def each_batch(stream: Any, agent: str, apply: Apply, *, size: int, within: float) -> None:
    """Take up to `size` events (waiting at most `within` seconds for them) and apply them, batch after batch."""
    async for batch in stream.take(size, within=within):
        await until_done(agent, lambda: apply(batch))  # noqa: B023 - awaited at once
