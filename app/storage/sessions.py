"""`sessions`: one row per live bearer token, keyed by the token's hash, expiring with the session.

The cache in front of it (Redis and each API process's memory) and revocation are in session_cache.py.
"""

from __future__ import annotations

from datetime import datetime

from app.storage.cassandra import CassandraSession


class SessionTable:
    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass

    async def prepare(self) -> SessionTable:
        p = self._cass.prepare
        self._insert = await p("INSERT INTO sessions (token_hash, user_id, created_at) VALUES (?, ?, ?) USING TTL ?")
        self._select = await p("SELECT user_id, TTL(user_id) AS ttl_s FROM sessions WHERE token_hash = ?")
        self._delete = await p("DELETE FROM sessions WHERE token_hash = ?")
        return self

    async def insert(self, token_hash: bytes, user_id: int, created_at: datetime, ttl_s: int) -> None:
        await self._cass.execute(self._insert, (token_hash, user_id, created_at, ttl_s))

    async def live(self, token_hash: bytes) -> tuple[int, int | None] | None:
        """(user id, seconds the session has left, None for a row written without a TTL), or None when
        there is no live session."""
        row = await self._cass.one(self._select, (token_hash,))
        if row is None or row.user_id is None:
            return None
        return row.user_id, row.ttl_s

    async def user_id(self, token_hash: bytes) -> int | None:
        live = await self.live(token_hash)
        return live[0] if live else None

    async def delete(self, token_hash: bytes) -> None:
        await self._cass.execute(self._delete, (token_hash,))
