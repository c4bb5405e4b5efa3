"""Connections the agents share, opened on first use (agents can start before app services do)."""

from __future__ import annotations

import asyncio

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
