"""Posts: the `posts` rows and their timelines `posts_by_user` and `posts_by_hashtag`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime

from app.ids import hour_bucket, month_bucket
from app.storage.cassandra import CassandraSession
from app.storage.recount import BucketRecounter, CountedBuckets
from app.storage.timelines import BucketedTimeline, TimelineTables

POST_COLUMNS = (
    "post_id, author_id, caption, hashtags, mentions, location, filter, media, preview, created_at,"
    " like_count, comment_count, like_bucket"
)

USER_POSTS = TimelineTables(items="posts_by_user", key="author_id", item="post_id", buckets="user_post_buckets")
HASHTAG_POSTS = TimelineTables(
    items="posts_by_hashtag", key="tag", item="post_id", buckets="hashtag_buckets", extra=("author_id",)
)
# the exact counts of both timelines, recounted by the stream worker (streams/post_counts.py, hashtag_counts.py)
USER_POST_COUNTS = CountedBuckets("posts_by_user", "author_id", "user_post_buckets", "post_count", "post_count")
HASHTAG_POST_COUNTS = CountedBuckets("posts_by_hashtag", "tag", "hashtag_buckets", "post_count", "post_count",
                                     total_table="hashtags", total_key="tag")


class PostRepository:
    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass
        self.by_user = BucketedTimeline(cass, USER_POSTS)
        self.by_hashtag = BucketedTimeline(cass, HASHTAG_POSTS)
        self.user_post_counts = BucketRecounter(cass, USER_POST_COUNTS)
        self.hashtag_post_counts = BucketRecounter(cass, HASHTAG_POST_COUNTS)

    async def prepare(self) -> PostRepository:
        p = self._cass.prepare
        await self.by_user.prepare()
        await self.by_hashtag.prepare()
        await self.user_post_counts.prepare()
        await self.hashtag_post_counts.prepare()
        self._insert = await p(
            "INSERT INTO posts (post_id, author_id, caption, hashtags, mentions, location, filter, media, preview,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._get = await p(f"SELECT {POST_COLUMNS} FROM posts WHERE post_id = ?")
        self._media_from = await p("SELECT post_id, media FROM posts WHERE token(post_id) >= ? LIMIT ?")
        self._like_state = await p("SELECT post_id, author_id, like_count, like_bucket FROM posts WHERE post_id = ?")
        self._delete = await p("DELETE FROM posts WHERE post_id = ?")
        self._open_like_bucket = await p("UPDATE posts SET like_bucket = ? WHERE post_id = ?")
        # counts are stamped with the time they were read: of two concurrent recounts the later one wins
        self._save_like_count = await p("UPDATE posts USING TIMESTAMP ? SET like_count = ? WHERE post_id = ?")
        self._save_comment_count = await p("UPDATE posts USING TIMESTAMP ? SET comment_count = ? WHERE post_id = ?")
        return self

    async def insert(
        self, post_id: int, author_id: int, caption: str, hashtags: list[str], mentions: list[str],
        location: str, filter_name: str | None, media: dict[str, tuple[str, int, int]], preview: str,
        created_at: datetime,
    ) -> None:
        """The post row first, then its timelines: a timeline entry never points at a missing row."""
        await self._cass.execute(
            self._insert,
            (post_id, author_id, caption, hashtags, mentions, location, filter_name, media, preview, created_at),
        )
        await self.add_to_timelines(post_id, author_id, hashtags)

    async def add_to_timelines(self, post_id: int, author_id: int, hashtags: Iterable[str]) -> None:
        """The post's entries in its author's and its hashtags' timelines (idempotent)."""
        await asyncio.gather(
            self.by_user.add(author_id, month_bucket(post_id), post_id),
            *(self.by_hashtag.add(tag, hour_bucket(post_id), post_id, author_id) for tag in hashtags),
        )

    async def get(self, post_id: int):
        """The post's row, or None. A row without an author is what a count written after the post
        was deleted leaves behind (streams/like_counts.py): it is no post."""
        row = await self._cass.one(self._get, (post_id,))
        return row if row is not None and row.author_id is not None else None

    async def like_state(self, post_id: int):
        """What a like needs of a post (author, stored count, open likers bucket), or None: a narrow
        read, since a like is the hottest write and the full row carries media and caption."""
        row = await self._cass.one(self._like_state, (post_id,))
        return row if row is not None and row.author_id is not None else None

    async def media_from_token(self, from_token: int, limit: int) -> list:
        """(post_id, media) of up to `limit` rows from a token position on (loadtest/footprint.py's random
        samples: token order is unrelated to age or author)."""
        return await self._cass.rows(self._media_from, (from_token, limit))

    async def get_many(self, post_ids: Iterable[int]) -> dict[int, object]:
        rows = await asyncio.gather(*(self.get(pid) for pid in post_ids))
        return {row.post_id: row for row in rows if row is not None}

    async def delete(self, post) -> None:
        """Timelines first, then the row, so a half-done delete is retried from the row."""
        await asyncio.gather(
            self.by_user.remove(post.author_id, month_bucket(post.post_id), post.post_id),
            *(self.by_hashtag.remove(tag, hour_bucket(post.post_id), post.post_id) for tag in post.hashtags or ()),
        )
        await self._cass.execute(self._delete, (post.post_id,))

    async def delete_row(self, post_id: int) -> None:
        """The row alone (the post worker finishing a delete whose request failed after its event)."""
        await self._cass.execute(self._delete, (post_id,))

    # --- written by the count agents (streams/like_counts.py, comment_counts.py) ---
    async def open_like_bucket(self, post_id: int, bucket: int) -> None:
        await self._cass.execute(self._open_like_bucket, (bucket, post_id))

    async def save_like_count(self, post_id: int, count: int, read_at_us: int) -> None:
        await self._cass.execute(self._save_like_count, (read_at_us, count, post_id))

    async def save_comment_count(self, post_id: int, count: int, read_at_us: int) -> None:
        await self._cass.execute(self._save_comment_count, (read_at_us, count, post_id))
