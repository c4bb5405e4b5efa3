"""A breaker for Redis calls whose answer is an optimisation: after a failure, Redis is left
alone for a few seconds, so a hung Redis does not add its timeout to every request."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

T = TypeVar("T")
BREAKER_OPEN_S = 2.0


class RedisBreaker:
    def __init__(self, name: str) -> None:
        self._name = name
        self._closed_until = 0.0  # monotonic time before which Redis is not asked

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._closed_until

    async def call(self, what: str, action: Callable[[], Awaitable[T]], fallback: T) -> T:
        """`action()`, or `fallback` when Redis failed now or within the last few seconds."""
        if not self.available:
            return fallback
        try:
            return await action()
        except (RedisError, OSError, TimeoutError) as exc:
            self._closed_until = time.monotonic() + BREAKER_OPEN_S
            log.warning("%s: %s failed (%r); Redis left alone for %.0f s", self._name, what, exc, BREAKER_OPEN_S)
            return fallback
