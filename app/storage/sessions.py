"""`sessions`: one row per live bearer token, keyed by the token's hash, expiring with the session."""

from __future__ import annotations

from datetime import datetime

from app.storage.cassandra import CassandraSession


class SessionTable:
    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass

    async def prepare(self) -> SessionTable:
        p = self._cass.prepare
        self._insert = await p("INSERT INTO sessions (token_hash, user_id, created_at) VALUES (?, ?, ?) USING TTL ?")
        self._select = await p("SELECT user_id FROM sessions WHERE token_hash = ?")
        self._delete = await p("DELETE FROM sessions WHERE token_hash = ?")
        return self

    async def insert(self, token_hash: bytes, user_id: int, created_at: datetime, ttl_s: int) -> None:
        await self._cass.execute(self._insert, (token_hash, user_id, created_at, ttl_s))

    async def user_id(self, token_hash: bytes) -> int | None:
        row = await self._cass.one(self._select, (token_hash,))
        return row.user_id if row else None

    async def delete(self, token_hash: bytes) -> None:
        await self._cass.execute(self._delete, (token_hash,))
