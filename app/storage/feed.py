"""The CQL of the home feed (cql/migrations/0004_feed.cql); every statement prepared once.

`feed_snapshots` stays in the schema but nothing writes it any more: ranked snapshots live in Redis
(app/storage/feed_cache.py), so a feed read writes nothing to Cassandra."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from app.storage.cassandra import CassandraSession

SCAN_PAGE = 1000
# fan-out's write (also prepared on the driver-ceiling benchmark's copy of the table: app/storage/ceiling.py)
INSERT_ITEM = "INSERT INTO feed_items (user_id, post_id, author_id) VALUES (?, ?, ?) USING TTL ?"


class Entry(NamedTuple):
    """One post in a feed: which post and who wrote it."""

    post_id: int
    author_id: int


class FeedRepository:
    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass

    async def prepare(self) -> FeedRepository:
        p = self._cass.prepare
        self._insert = await p(INSERT_ITEM)
        self._delete = await p("DELETE FROM feed_items WHERE user_id = ? AND post_id = ?")
        self._trim = await p("DELETE FROM feed_items WHERE user_id = ? AND post_id < ?")
        self._newest = await p("SELECT post_id, author_id FROM feed_items WHERE user_id = ? LIMIT ?")
        self._before = await p("SELECT post_id, author_id FROM feed_items WHERE user_id = ? AND post_id < ? LIMIT ?")
        self._scan = await p("SELECT post_id, author_id FROM feed_items WHERE user_id = ?")
        self._holds = await p("SELECT post_id FROM feed_items WHERE user_id = ? AND post_id = ?")
        self._scan_with_ttl = await p(
            "SELECT post_id, author_id, TTL(author_id) AS ttl FROM feed_items WHERE user_id = ?"
        )
        self._is_celebrity = await p("SELECT user_id FROM celebrities WHERE user_id = ?")
        self._mark_celebrity = await p("INSERT INTO celebrities (user_id, since) VALUES (?, ?)")
        self._unmark_celebrity = await p("DELETE FROM celebrities WHERE user_id = ?")
        self._followed_celebrities = await p("SELECT celebrity_id FROM followed_celebrities WHERE user_id = ?")
        self._add_followed_celebrity = await p(
            "INSERT INTO followed_celebrities (user_id, celebrity_id) VALUES (?, ?)"
        )
        self._remove_followed_celebrity = await p(
            "DELETE FROM followed_celebrities WHERE user_id = ? AND celebrity_id = ?"
        )
        return self

    # --- feed_items ----------------------------------------------------------
    async def add(self, user_id: int, entry: Entry, ttl_s: int) -> None:
        await self._cass.execute(self._insert, (user_id, entry.post_id, entry.author_id, ttl_s))

    async def add_to_many(self, user_ids: Sequence[int], entry: Entry, ttl_s: int, concurrency: int) -> None:
        """The same entry into many feeds (fan-out): single-partition inserts, `concurrency` in flight."""
        params = [(uid, entry.post_id, entry.author_id, ttl_s) for uid in user_ids]
        await self._cass.execute_many(self._insert, params, concurrency)

    async def remove_from_many(self, user_ids: Sequence[int], post_id: int, concurrency: int) -> None:
        await self._cass.execute_many(self._delete, [(uid, post_id) for uid in user_ids], concurrency)

    async def remove(self, user_id: int, post_id: int) -> None:
        await self._cass.execute(self._delete, (user_id, post_id))

    async def newest(self, user_id: int, limit: int, before: int | None = None) -> list[Entry]:
        """Up to `limit` entries, newest first, all older than `before` when it is given."""
        if before is None:
            rows = await self._cass.rows(self._newest, (user_id, limit))
        else:
            rows = await self._cass.rows(self._before, (user_id, before, limit))
        return [Entry(row.post_id, row.author_id) for row in rows]

    async def all_entries(self, user_id: int) -> list[Entry]:
        """The whole (bounded) partition: for removing one author's posts after an unfollow."""
        rows = await self._cass.all_rows(self._scan, (user_id,), fetch_size=SCAN_PAGE)
        return [Entry(row.post_id, row.author_id) for row in rows]

    async def holds(self, user_id: int, post_id: int) -> bool:
        """Whether the feed has the post (the feed benchmark polls fan-out's delivery with it)."""
        return await self._cass.one(self._holds, (user_id, post_id)) is not None

    async def entries_with_ttl(self, user_id: int) -> list:
        """Every (post_id, author_id, ttl) row of the feed, newest first: ttl is the row's seconds left
        (photos-seed --verify checks them against fan-out's)."""
        return await self._cass.all_rows(self._scan_with_ttl, (user_id,), fetch_size=SCAN_PAGE)

    async def drop_older_than(self, user_id: int, post_id: int) -> None:
        """One range tombstone for every entry older than `post_id`."""
        await self._cass.execute(self._trim, (user_id, post_id))

    # --- celebrities ---------------------------------------------------------
    async def is_celebrity(self, user_id: int) -> bool:
        return await self._cass.one(self._is_celebrity, (user_id,)) is not None

    async def mark_celebrity(self, user_id: int) -> None:
        await self._cass.execute(self._mark_celebrity, (user_id, datetime.now(UTC)))

    async def unmark_celebrity(self, user_id: int) -> None:
        await self._cass.execute(self._unmark_celebrity, (user_id,))

    async def followed_celebrities(self, user_id: int) -> list[int]:
        rows = await self._cass.all_rows(self._followed_celebrities, (user_id,), fetch_size=5000)
        return [row.celebrity_id for row in rows]

    async def add_followed_celebrity(self, user_id: int, celebrity_id: int) -> None:
        await self._cass.execute(self._add_followed_celebrity, (user_id, celebrity_id))

    async def remove_followed_celebrity(self, user_id: int, celebrity_id: int) -> None:
        await self._cass.execute(self._remove_followed_celebrity, (user_id, celebrity_id))


def newest_first(entries: Iterable[Entry]) -> list[Entry]:
    """Entries merged from several sources: one per post, newest first."""
    unique = {entry.post_id: entry for entry in entries}
    return sorted(unique.values(), key=lambda entry: entry.post_id, reverse=True)
