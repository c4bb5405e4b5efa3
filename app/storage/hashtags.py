"""The CQL of hashtag pages: a tag's exact post count (written by streams/hashtag_counts.py)."""

from __future__ import annotations

from app.storage.cassandra import CassandraSession


class HashtagRepository:
    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass

    async def prepare(self) -> HashtagRepository:
        self._post_count = await self._cass.prepare("SELECT post_count FROM hashtags WHERE tag = ?")
        return self

    async def post_count(self, tag: str) -> int:
        rows = await self._cass.rows(self._post_count, (tag,))
        return (rows[0].post_count or 0) if rows else 0
