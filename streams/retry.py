"""Retrying a batch until it succeeds, so an agent never acknowledges events it did not apply.

faust's `stream.take()` acknowledges a batch when the loop body returns *or raises*; an
exception escaping the body would commit offsets of events whose effects were never written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

FIRST_DELAY_S = 0.2
MAX_DELAY_S = 10.0


async def until_done(name: str, attempt: Callable[[], Awaitable[None]]) -> None:
    """Run `attempt` until it returns, backing off between failures (cancellation still stops it)."""
    delay = FIRST_DELAY_S
    while True:
        try:
            await attempt()
            return
        except asyncio.CancelledError:
            raise
        except Exception:  # any failure of a dependency: the batch is retried, never dropped
            log.exception("%s: batch failed; retrying in %.1f s", name, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
