"""Connections the agents share, opened on first use (agents can start before app services do).

Nothing here retries: an agent builds what it needs inside `streams.retry.until_ready`, which
calls again after a failure, and a failed Cassandra connection leaves nothing behind to leak.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis

from app.events import EventPublisher
from app.media.store import MediaStore, make_media_store
from app.metrics import CountingRedis
from app.settings import Settings
from app.storage import cassandra
from app.storage.cassandra import CassandraSession

log = logging.getLogger(__name__)

T = TypeVar("T")


class Resources:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = asyncio.Lock()
        self._cassandra: CassandraSession | None = None
        self._media_store: MediaStore | None = None
        self._redis: Redis | None = None
        self._events: EventPublisher | None = None

    async def cassandra(self) -> CassandraSession:
        """The shared session; the first call connects (and raises, leaving nothing open, while it cannot)."""
        async with self._lock:
            if self._cassandra is None:
                _, self._cassandra = await cassandra.connect(self._settings, self._settings.cassandra_keyspace)
            return self._cassandra

    async def build(self, make: Callable[[CassandraSession], Awaitable[T]]) -> T:
        """`make(session)`: an agent's repository or worker object, prepared on the shared session."""
        return await make(await self.cassandra())

    async def media_store(self) -> MediaStore:
        async with self._lock:
            if self._media_store is None:
                self._media_store = make_media_store(self._settings)
            return self._media_store

    async def events(self) -> EventPublisher:
        """The API's kind of event publisher (for the media sweeper, which republishes unfinished uploads);
        it connects in the background and raises Unavailable on publish until Kafka answers."""
        if self._events is None:
            self._events = EventPublisher(self._settings)
            await self._events.start()
        return self._events

    def redis(self) -> Redis:
        """The Redis client (it connects on first command, so making it cannot fail)."""
        if self._redis is None:
            self._redis = CountingRedis.from_url(  # counts each agent's commands (app/metrics.py)
                self._settings.redis_url,
                socket_timeout=self._settings.redis_timeout_s,
                socket_connect_timeout=self._settings.redis_timeout_s,
            )
        return self._redis
