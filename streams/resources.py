"""Connections the agents share, opened on first use (agents can start before app services do)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from app import cassandra
from app.cassandra import CassandraSession
from app.media.store import MediaStore, make_media_store
from app.settings import Settings


class Resources:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = asyncio.Lock()
        self._cassandra: CassandraSession | None = None
        self._media_store: MediaStore | None = None
        self._redis: Redis | None = None

    async def cassandra(self) -> CassandraSession:
        async with self._lock:
            if self._cassandra is None:
                _, self._cassandra = await cassandra.connect(self._settings, self._settings.cassandra_keyspace)
            return self._cassandra

    async def media_store(self) -> MediaStore:
        async with self._lock:
            if self._media_store is None:
                self._media_store = make_media_store(self._settings)
            return self._media_store

    def redis(self) -> Redis:
        """The Redis client (it connects on first command, so making it cannot fail)."""
        if self._redis is None:
            self._redis = Redis.from_url(
                self._settings.redis_url,
                socket_timeout=self._settings.redis_timeout_s,
                socket_connect_timeout=self._settings.redis_timeout_s,
            )
        return self._redis
