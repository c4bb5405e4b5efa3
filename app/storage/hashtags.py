"""`hashtags`: a tag's exact post count (written by streams/hashtag_counts.py through the recount of
`posts_by_hashtag` that app/storage/posts.py owns)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.storage.cassandra import CassandraSession


class HashtagRepository:
    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass

    async def prepare(self) -> HashtagRepository:
        self._post_count = await self._cass.prepare("SELECT post_count FROM hashtags WHERE tag = ?")
        self._all_counts = await self._cass.prepare("SELECT tag, post_count FROM hashtags")
        return self

    async def post_count(self, tag: str) -> int:
        rows = await self._cass.rows(self._post_count, (tag,))
        return (rows[0].post_count or 0) if rows else 0

    def all_counts(self, page_rows: int) -> AsyncIterator[tuple[int, list]]:
        """Every tag's (tag, post_count), a page at a time, with the time each page was read."""
        return self._cass.scan(self._all_counts, page_rows)
