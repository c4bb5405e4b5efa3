"""A Redis pub/sub subscriber that survives Redis: what the notification hub and the session cache share.

`listen_forever` runs a listening coroutine again, with back-off, whenever it fails (Redis down,
restarted, timed out). `each_message` yields what is published on a subscription and notices a
silent, half-open connection: after KEEPALIVE_S of quiet it PINGs, and after twice that with no
answer it raises ConnectionError, so `listen_forever` reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from redis.asyncio.client import PubSub

log = logging.getLogger(__name__)

KEEPALIVE_S = 5.0  # quiet this long: PING the subscriber connection; twice this long: reconnect
FIRST_RETRY_S = 0.2
MAX_RETRY_S = 5.0


async def listen_forever(listen: Callable[[], Awaitable[None]], *, name: str, meanwhile: str,
                         was_connected: Callable[[], bool], disconnected: Callable[[], None]) -> None:
    """Run `listen` until cancelled, again after each failure: at once after losing a connection that
    worked, then with back-off (FIRST_RETRY_S doubling up to MAX_RETRY_S). `disconnected` is called after
    each failure; `meanwhile` says, in the log, what the process does until it is back."""
    delay = FIRST_RETRY_S
    while True:
        try:
            await listen()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if was_connected():
                log.warning("%s: lost Redis (%r); %s", name, exc, meanwhile)
                delay = FIRST_RETRY_S
            else:
                log.warning("%s: cannot reach Redis (%r); retrying in %.1f s", name, exc, delay)
        disconnected()
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_RETRY_S)


async def each_message(pubsub: PubSub, ping_lock: asyncio.Lock | None = None) -> AsyncIterator[tuple[str, str]]:
    """(channel, data) of each message published to the subscription, until the connection fails.
    `ping_lock`, when given, is held around the keep-alive PING (commands on one connection are ordered
    by it)."""
    loop = asyncio.get_running_loop()
    last_heard = loop.time()
    while True:
        message = await pubsub.get_message(timeout=KEEPALIVE_S)
        if message is None:
            if loop.time() - last_heard > 2 * KEEPALIVE_S:
                raise ConnectionError(f"Redis did not answer a PING within {KEEPALIVE_S:.0f} s")
            async with ping_lock or contextlib.nullcontext():
                await pubsub.ping()
            continue
        last_heard = loop.time()
        if message["type"] == "message":
            yield message["channel"].decode(), message["data"].decode()
