"""`AuditReads`: the reads a consistency audit makes of truth and derived tables, each bounded.

The load audit (loadtest/audit.py) checks every acknowledged write of a run against the tables. Most of
what it reads, the tables' owners already read for someone else (an edge, a row by id, a bucket's members
or count, a feed entry, a tray row), and the audit calls those owners. What is left here is what only an
audit asks: whether one item is in a bucketed timeline, one row read by its full primary key. Nothing here
writes; the tables stay their owners' (app/storage/posts.py writes both timelines).
"""

from __future__ import annotations

from app.ids import hour_bucket, month_bucket
from app.storage.cassandra import CassandraSession


class AuditReads:
    """Membership probes of `posts_by_user` and `posts_by_hashtag`: one row each, by its full primary key."""

    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass

    async def prepare(self) -> AuditReads:
        p = self._cass.prepare
        self._user_post = await p(
            "SELECT post_id FROM posts_by_user WHERE author_id = ? AND bucket = ? AND post_id = ?"
        )
        self._hashtag_post = await p(
            "SELECT post_id FROM posts_by_hashtag WHERE tag = ? AND bucket = ? AND post_id = ?"
        )
        return self

    async def in_user_posts(self, author_id: int, post_id: int) -> bool:
        """Whether the author's timeline lists the post (in the month bucket of its id)."""
        return await self._cass.one(self._user_post, (author_id, month_bucket(post_id), post_id)) is not None

    async def in_hashtag_posts(self, tag: str, post_id: int) -> bool:
        """Whether the tag's timeline lists the post (in the hour bucket of its id)."""
        return await self._cass.one(self._hashtag_post, (tag, hour_bucket(post_id), post_id)) is not None
