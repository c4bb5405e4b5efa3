"""Likes: like, unlike, who liked, and which posts a viewer likes.

A like or unlike request, in order:
  1. refuse with 503 if the event log is down (before changing anything);
  2. read the post (404 if missing); its `like_bucket` is where a new liker goes;
  3. change the edge in `likes` with a lightweight transaction, learning whether it changed;
  4. move the Redis count by the change (the reply's like_count);
  5. publish LikeChanged, keyed by post, even when nothing changed, so a retry after a failed
     publish still reaches the worker. A failed publish answers 503; the retry repairs it.
The like worker (streams/like_counts.py) then makes `post_likers` and the counts agree with
`likes`. Redis is moved before the publish so the worker's exact count always lands after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from app.cursors import CursorCodec
from app.errors import NotFound, Unavailable
from app.events import EventPublisher, LikeChanged, new_event_fields
from app.likes.counts import LikeCounts
from app.likes.repository import LikeRepository
from app.posts.repository import PostRepository

LATEST_BUCKET = (1 << 31) - 1
FIRST_USER = -(1 << 63)


@dataclass
class LikeService:
    likes: LikeRepository
    counts: LikeCounts
    posts: PostRepository
    events: EventPublisher
    cursors: CursorCodec

    async def like(self, user_id: int, post_id: int) -> dict:
        post = await self._post(post_id)
        changed, bucket = await self.likes.like(user_id, post_id, datetime.now(UTC), post.like_bucket or 0)
        return await self._settle(user_id, post, bucket, liked=True, change=1 if changed else 0)

    async def unlike(self, user_id: int, post_id: int) -> dict:
        post = await self._post(post_id)
        bucket = await self.likes.unlike(user_id, post_id)
        return await self._settle(user_id, post, bucket, liked=False, change=-1 if bucket is not None else 0)

    async def _post(self, post_id: int):
        if not self.events.connected:  # refuse before writing an edge no worker would hear of
            raise Unavailable("the event log (Kafka) is unavailable; retry shortly")
        post = await self.posts.get(post_id)
        if post is None:
            raise NotFound("no such post", code="post_not_found")
        return post

    async def _settle(self, user_id: int, post, bucket: int | None, *, liked: bool, change: int) -> dict:
        count = await self.counts.move(post.post_id, change, post.like_count or 0)
        event = LikeChanged(
            **new_event_fields(user_id), post_id=post.post_id, post_author_id=post.author_id, bucket=bucket, liked=liked
        )
        await self.events.publish("likes", post.post_id, event)
        return {"liked": liked, "like_count": count}

    async def likers(self, post_id: int, limit: int, cursor: str | None) -> tuple[list[int], str | None]:
        """A page of the ids of users who like the post, and the next page's cursor."""
        if await self.posts.get(post_id) is None:
            raise NotFound("no such post", code="post_not_found")
        bucket, after = self.cursors.decode_ints(f"likers:{post_id}", cursor, "b", "a") or (LATEST_BUCKET, FIRST_USER)
        ids, last_bucket = await self.likes.likers_page(post_id, bucket, after, limit)
        next_cursor = None
        if len(ids) == limit:
            next_cursor = self.cursors.encode(f"likers:{post_id}", {"b": last_bucket, "a": ids[-1]})
        return ids, next_cursor
