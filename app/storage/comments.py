"""The CQL of comments: the comment rows and the two lists that page them; every statement prepared once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from app.ids import hour_bucket
from app.storage.cassandra import CassandraSession
from app.storage.counted_set import CountedSet, CountedSetTables
from app.storage.timelines import BucketedTimeline, TimelineTables

COMMENT_COLUMNS = "comment_id, post_id, parent_id, author_id, text, mentions, created_at, deleted, reply_count"

TOP_LEVEL_COMMENTS = TimelineTables(
    items="comments_by_post", key="post_id", item="comment_id", buckets="post_comment_buckets"
)
REPLIES = TimelineTables(items="replies_by_comment", key="comment_id", item="reply_id", buckets="comment_reply_buckets")
# the live (not deleted) comments of a post, replies included, and the live replies of a comment, with exact
# counts: written only by the comment_counts agent (streams/comment_counts.py)
POST_LIVE_COMMENTS = CountedSetTables(
    members="post_live_comments", owner="post_id", member="comment_id", count="comment_count",
    index="post_live_comment_buckets",
)
COMMENT_LIVE_REPLIES = CountedSetTables(
    members="comment_live_replies", owner="comment_id", member="reply_id", count="reply_count",
    index="comment_live_reply_buckets",
)


@dataclass
class CommentRow:
    """A `comments` row, as the driver returns it: built in hand while a comment is being created."""

    comment_id: int
    post_id: int
    parent_id: int | None
    author_id: int
    text: str
    mentions: list[str]
    created_at: datetime
    deleted: bool = False
    reply_count: int = 0


class CommentRepository:
    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass
        self.top_level = BucketedTimeline(cass, TOP_LEVEL_COMMENTS)
        self.replies = BucketedTimeline(cass, REPLIES)
        self.live_comments = CountedSet(cass, POST_LIVE_COMMENTS)
        self.live_replies = CountedSet(cass, COMMENT_LIVE_REPLIES)

    async def prepare(self) -> CommentRepository:
        p = self._cass.prepare
        await self.top_level.prepare()
        await self.replies.prepare()
        await self.live_comments.prepare()
        await self.live_replies.prepare()
        self._insert = await p(
            "INSERT INTO comments (comment_id, post_id, parent_id, author_id, text, mentions, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        self._get = await p(f"SELECT {COMMENT_COLUMNS} FROM comments WHERE comment_id = ?")
        self._mark_deleted = await p(
            "UPDATE comments SET deleted = true, text = null, mentions = null WHERE comment_id = ?"
        )
        self._delete_row = await p("DELETE FROM comments WHERE comment_id = ?")
        # stamped with the time the buckets were read: of two concurrent recounts the later one wins
        self._save_reply_count = await p("UPDATE comments USING TIMESTAMP ? SET reply_count = ? WHERE comment_id = ?")
        return self

    async def insert(self, row: CommentRow) -> None:
        """The row first, then its list entry: a list never points at a missing row."""
        await self._cass.execute(
            self._insert,
            (row.comment_id, row.post_id, row.parent_id, row.author_id, row.text, row.mentions, row.created_at),
        )
        await self._list_of(row.parent_id).add(self._list_key(row), hour_bucket(row.comment_id), row.comment_id)

    async def get(self, comment_id: int):
        """The comment's row, or None. A row without post_id is what a reply count written after the
        comment was removed leaves behind: it is no comment."""
        row = await self._cass.one(self._get, (comment_id,))
        return row if row is not None and row.post_id is not None else None

    async def get_many(self, comment_ids: Iterable[int]) -> dict[int, object]:
        rows = await asyncio.gather(*(self.get(cid) for cid in comment_ids))
        return {row.comment_id: row for row in rows if row is not None}

    async def mark_deleted(self, comment_id: int, parent_id: int | None) -> None:
        """Delete a comment, idempotently: the row stays as "deleted" (a top-level comment keeps its
        place in the post's list, so its replies stay reachable); a reply leaves its parent's list."""
        await self._cass.execute(self._mark_deleted, (comment_id,))
        if parent_id is not None:
            await self.replies.remove(parent_id, hour_bucket(comment_id), comment_id)

    async def remove(self, row: CommentRow) -> None:
        """Take back a comment that was never published: the list entry first, then the row."""
        await self._list_of(row.parent_id).remove(self._list_key(row), hour_bucket(row.comment_id), row.comment_id)
        await self._cass.execute(self._delete_row, (row.comment_id,))

    async def save_reply_count(self, comment_id: int, count: int, read_at_us: int) -> None:
        await self._cass.execute(self._save_reply_count, (read_at_us, count, comment_id))

    def _list_of(self, parent_id: int | None) -> BucketedTimeline:
        return self.top_level if parent_id is None else self.replies

    @staticmethod
    def _list_key(row: CommentRow) -> int:
        return row.post_id if row.parent_id is None else row.parent_id
