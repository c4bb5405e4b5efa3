"""Keeping a worker alive through its dependencies' outages: every failure is retried or logged, never raised.

Three places can fail when Cassandra, Redis or Kafka goes away, and each has its rule here:
- a batch (`until_done`, run by streams/batches.py for every agent): an exception escaping it would
  crash the agent's loop. The batch is retried with back-off until it succeeds; its events are
  acknowledged (their offsets may be committed) only then, by streams/batches.py. A dependency's
  outage (`is_transient`) is retried for as long as it lasts; any other failure only `give_up_after`
  times, and then `GaveUp` tells the caller, which dead-letters what cannot be applied.
- an agent's start-up (`until_ready`): connecting and preparing statements. An exception there
  would crash the agent; it is retried with back-off instead, and the agent then reads its stream
  from the committed offsets, so nothing is skipped.
- a timer's tick (`timer`): faust stops the whole worker when a timer raises. A failed tick is
  logged (the first failure in full, then a line a minute while it keeps failing) and the timer
  runs again at its next tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import faust
from aiokafka.errors import KafkaError
from cassandra import OperationTimedOut, RequestExecutionException
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionException
from cassandra.protocol import ServerError
from redis import exceptions as redis_errors

from app.errors import Unavailable
from app.metrics import ROUTE

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY_S = 0.2
MAX_DELAY_S = 10.0
REPEAT_LOG_EVERY_S = 60.0

# a dependency that did not answer, or answered that it cannot serve now: the same request succeeds later
TRANSIENT: tuple[type[BaseException], ...] = (
    NoHostAvailable, OperationTimedOut, ConnectionException,
    RequestExecutionException,  # Unavailable, Read/WriteTimeout, Read/WriteFailure, Overloaded: replicas, not requests
    ServerError,  # a node's internal error
    redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.ReadOnlyError,
    redis_errors.ClusterDownError, redis_errors.TryAgainError, redis_errors.OutOfMemoryError,
    KafkaError, Unavailable, OSError, TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is a dependency's outage (retried for as long as it lasts), or what it was raised from is."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TRANSIENT):
            return True
        seen = seen.__cause__
    return False


class GaveUp(Exception):
    """An attempt failed `failures` times with errors that are no dependency's outage; the last one is `error`."""

    def __init__(self, error: Exception, failures: int) -> None:
        super().__init__(f"{failures} failures, the last {error!r}")
        self.error = error
        self.failures = failures


async def until_done(name: str, attempt: Callable[[], Awaitable[None]], give_up_after: int | None = None) -> None:
    """Run `attempt` until it returns, backing off between failures (cancellation still stops it);
    `GaveUp` after `give_up_after` failures that are not a dependency's outage (None: never).

    `name` is the agent's: what the batch sends to Cassandra, Redis and Kafka counts for the route
    "agent:<name>" (app/metrics.py)."""
    token = ROUTE.set(f"agent:{name}")
    try:
        await until_ready(name, attempt, what="batch", give_up_after=give_up_after)
    finally:
        ROUTE.reset(token)


async def until_ready(
    name: str, attempt: Callable[[], Awaitable[T]], what: str = "start-up", give_up_after: int | None = None
) -> T:
    """Run `attempt` until it returns, backing off between failures, and return its result.

    The first failure is logged with its traceback; while the same step keeps failing, a line per
    MAX_DELAY_S at most. Cancellation (the worker stopping or rebalancing) still stops it. With
    `give_up_after`, the failures that are not a dependency's outage (`is_transient`) are counted, and
    `GaveUp` is raised at that many; outages are retried however long they last."""
    delay = FIRST_DELAY_S
    failures = 0
    lasting = 0  # the failures that are not outages
    while True:
        try:
            result = await attempt()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of a dependency: retried, never dropped
            failures += 1
            if give_up_after is not None and not is_transient(exc):
                lasting += 1
                if lasting >= give_up_after:
                    raise GaveUp(exc, lasting) from exc
            if failures == 1:
                log.exception("%s: %s failed; retrying in %.1f s", name, what, delay)
            elif delay >= MAX_DELAY_S or failures <= 3:
                log.warning("%s: %s failed %d times (%r); retrying in %.1f s", name, what, failures, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
            continue
        if failures:
            log.info("%s: %s succeeded after %d failed attempts", name, what, failures)
        return result


def timer(
    app: faust.App, *, interval: float, name: str, on_leader: bool = False
) -> Callable[[Callable[[], Awaitable[None]]], Callable[[], Awaitable[None]]]:
    """`app.timer` whose failed ticks are logged instead of stopping the worker."""

    def register(body: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        tick = GuardedTick(name, body)
        app.timer(interval=interval, on_leader=on_leader, name=name)(tick.run)
        return tick.run

    return register


class GuardedTick:
    """One timer's body, run so that no failure escapes; logs how a run of failures starts and ends."""

    def __init__(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        self.name = name
        self.body = body
        self.failures = 0
        self._logged_at = 0.0

    async def run(self) -> None:
        try:
            await self.body()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the next tick tries again; the worker keeps running
            self.failures += 1
            now = time.monotonic()
            if self.failures == 1:
                log.exception("%s: tick failed; the next tick tries again", self.name)
                self._logged_at = now
            elif now - self._logged_at >= REPEAT_LOG_EVERY_S:
                log.warning("%s: %d ticks failed in a row so far (%r)", self.name, self.failures, exc)
                self._logged_at = now
            return
        if self.failures:
            log.info("%s: tick succeeded again after %d failed", self.name, self.failures)
            self.failures = 0
