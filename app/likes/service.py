"""Likes: like, unlike, who liked, and which posts a viewer likes.

A like or unlike request, in order:
  1. refuse with 503 if the event log is down (before changing anything);
  2. read the post (404 if missing); its `like_bucket` is where a new liker goes;
  3. change the edge in `likes` with a lightweight transaction, learning whether it changed;
  4. move the Redis count by the change (the reply's like_count), and make the liker's cached feed
     page stale in the same round trip (it shows liked_by_me);
  5. publish LikeChanged, keyed by post, even when nothing changed, so a retry after a failed
     publish still reaches the worker. If the publish fails, the request undoes its edge change
     (conditionally: only if no later request replaced it) and answers 503, having changed nothing.
If step 3 itself fails (Cassandra went away mid-transaction), the edge may or may not have changed:
the request publishes a `recheck` LikeChanged before answering 503, and the worker settles the
count from the edge as it is once Cassandra is back, so a like that landed is counted all the same.
The like worker (streams/like_counts.py) then makes `post_likers` and the counts agree with
`likes`. Redis is moved before the publish so the worker's exact count always lands after it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from app.cursors import CursorCodec
from app.errors import NotFound, Unavailable
from app.events import EventPublisher, LikeChanged, new_event_fields
from app.storage.feed_cache import FeedCache
from app.storage.like_counts import LikeCounts, Stale
from app.storage.likes import LikeRepository
from app.storage.paging import FIRST_MEMBER, LATEST_BUCKET
from app.storage.posts import PostRepository

log = logging.getLogger(__name__)



@dataclass
class LikeService:
    likes: LikeRepository
    counts: LikeCounts
    posts: PostRepository
    events: EventPublisher
    feed_cache: FeedCache
    cursors: CursorCodec

    async def like(self, user_id: int, post_id: int) -> dict:
        post = await self._post(post_id)
        liked_at = datetime.now(UTC)
        try:
            changed, bucket = await self.likes.like(user_id, post_id, liked_at, post.like_bucket or 0)
        except Exception:
            await self._recheck(user_id, post, liked=True)
            raise

        async def undo() -> None:
            await self.likes.undo_like(user_id, post_id, liked_at)

        return await self._settle(user_id, post, bucket, liked=True, change=1 if changed else 0, undo=undo)

    async def unlike(self, user_id: int, post_id: int) -> dict:
        post = await self._post(post_id)
        try:
            removed = await self.likes.unlike(user_id, post_id)
        except Exception:
            await self._recheck(user_id, post, liked=False)
            raise

        async def undo() -> None:
            await self.likes.undo_unlike(user_id, post_id, removed)

        bucket = removed.bucket if removed else None
        return await self._settle(user_id, post, bucket, liked=False, change=-1 if removed else 0, undo=undo)

    async def _post(self, post_id: int):
        if not self.events.connected:  # refuse before writing an edge no worker would hear of
            raise Unavailable("the event log (Kafka) is unavailable; retry shortly")
        post = await self.posts.like_state(post_id)
        if post is None:
            raise NotFound("no such post", code="post_not_found")
        return post

    async def _settle(
        self, user_id: int, post, bucket: int | None, *, liked: bool, change: int, undo: Callable[[], Awaitable[None]]
    ) -> dict:
        # the liker's cached feed page shows liked_by_me: when the edge changed it goes stale, in the same round trip
        stale = Stale([self.feed_cache.version_key(user_id)], self.feed_cache.version_ttl_s) if change else None
        count = await self.counts.move(post.post_id, change, post.like_count or 0, stale)
        event = LikeChanged(
            **new_event_fields(user_id), post_id=post.post_id, post_author_id=post.author_id, bucket=bucket, liked=liked
        )
        try:
            await self.events.publish("likes", post.post_id, event)
        except Unavailable:
            if change:  # this request changed the edge: put it back, so the 503 changed nothing
                await self._undo(post.post_id, change, undo)
            raise
        return {"liked": liked, "like_count": count}

    async def _recheck(self, user_id: int, post, *, liked: bool) -> None:
        """The edge change failed midway, so it may have happened: ask the worker to settle the count from
        the edge as it is. Best effort: with Kafka down too, the next like event of the post settles it."""
        event = LikeChanged(
            **new_event_fields(user_id), post_id=post.post_id, post_author_id=post.author_id, bucket=None,
            liked=liked, recheck=True,
        )
        try:
            await self.events.publish("likes", post.post_id, event)
        except Exception:
            log.warning("post %d: a like change of user %d may have landed unannounced", post.post_id, user_id)

    async def _undo(self, post_id: int, change: int, undo: Callable[[], Awaitable[None]]) -> None:
        try:
            await undo()
            await self.counts.move(post_id, -change, 0)
        except Exception:  # the next event about this post's liker repairs the count from the edge
            log.exception("post %d: a like change was neither published nor undone", post_id)

    async def likers(self, post_id: int, limit: int, cursor: str | None) -> tuple[list[int], str | None]:
        """A page of the ids of users who like the post, and the next page's cursor."""
        if await self.posts.like_state(post_id) is None:
            raise NotFound("no such post", code="post_not_found")
        bucket, after = self.cursors.decode_ints(f"likers:{post_id}", cursor, "b", "a") or (LATEST_BUCKET, FIRST_MEMBER)
        ids, last_bucket = await self.likes.likers_page(post_id, bucket, after, limit)
        next_cursor = None
        if len(ids) == limit:
            next_cursor = self.cursors.encode(f"likers:{post_id}", {"b": last_bucket, "a": ids[-1]})
        return ids, next_cursor
