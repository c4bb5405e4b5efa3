"""Likes: like, unlike, who liked, and which posts a viewer likes.

A like or unlike request, in order (docs/likes.md has who holds the like at each step):
  1. refuse with 503 if the event log is down (before changing anything);
  2. read the post (404 if missing); its `like_bucket` is where a new liker goes;
  3. one Redis script (app/storage/like_counts.py): count the request against the user's rate limit,
     dedupe it against the user's last like or unlike of the post, give the edge a new write time, move
     the reply's count, and make the liker's cached feed page stale (it shows liked_by_me);
  4. publish LikeChanged, keyed by post, carrying the edge write (liked, time, bucket), also when nothing
     changed, so a retry after a failed request still reaches the worker. If Kafka refuses it, put the
     Redis claim back and answer 503: nothing was written;
  5. write the edge to `likes`: one blind write at the claimed time, no Paxos. If it fails the request
     answers 503, but the event is out, and the like worker applies the same write when it finds the
     edge older than the event, so the like lands all the same (a retry writes the same state, later).
Without Redis the request still writes the edge and publishes the event (the time from this process's
clock, no dedupe, the rate limit counted in process memory); the reply's count is then the stored
count moved by one, until the worker settles it. The like worker (streams/like_counts.py) makes
`post_likers` and the counts agree with `likes`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.cursors import CursorCodec
from app.errors import NotFound, Unavailable
from app.events import EventPublisher, LikeChanged, new_event_fields
from app.ratelimit import RateLimiter
from app.storage.feed_cache import FeedCache
from app.storage.like_counts import Claim, LikeCounts, OverLimit, RateWindow
from app.storage.likes import LikeRepository
from app.storage.paging import FIRST_MEMBER, LATEST_BUCKET
from app.storage.posts import PostRepository

log = logging.getLogger(__name__)
RATE_SCOPE = "like"  # likes and unlikes share one window per user


@dataclass
class LikeService:
    likes: LikeRepository
    counts: LikeCounts
    posts: PostRepository
    events: EventPublisher
    feed_cache: FeedCache
    cursors: CursorCodec
    limiter: RateLimiter | None = None  # None: no rate limit (tools and tests)
    rate_per_user: int = 0

    async def like(self, user_id: int, post_id: int) -> dict:
        return await self._change(user_id, post_id, liked=True)

    async def unlike(self, user_id: int, post_id: int) -> dict:
        return await self._change(user_id, post_id, liked=False)

    async def _change(self, user_id: int, post_id: int, *, liked: bool) -> dict:
        if not self.events.connected:  # refuse before anything changes
            raise Unavailable("the event log (Kafka) is unavailable; retry shortly")
        post = await self.posts.like_state(post_id)
        if post is None:
            raise NotFound("no such post", code="post_not_found")
        claim = await self._claim(user_id, post, liked)
        event = LikeChanged(
            **new_event_fields(user_id), post_id=post_id, post_author_id=post.author_id, bucket=claim.bucket,
            liked=liked, changed_us=claim.changed_us,
        )
        try:
            await self.events.publish("likes", post_id, event)
        except Unavailable:
            await self.counts.release(user_id, post_id, claim)  # nothing was written: the claim goes too
            raise
        try:
            await self.likes.write(user_id, post_id, liked, claim.changed_us, claim.bucket)
        except Exception as exc:  # the event is out: the worker writes the same edge (docs/likes.md)
            log.warning("post %d: user %d's like edge is left to the worker: %r", post_id, user_id, exc)
            raise Unavailable("the like is recorded but not yet stored; retry shortly") from exc
        return {"liked": liked, "like_count": claim.count}

    async def _claim(self, user_id: int, post, liked: bool) -> Claim:
        rate = None
        if self.limiter is not None:
            key, ttl_s = self.limiter.window(RATE_SCOPE, str(user_id))
            rate = RateWindow(key, self.rate_per_user, ttl_s)
        claim = await self.counts.claim(
            user_id, post.post_id, liked, post.like_count or 0, post.like_bucket or 0, rate,
            ([self.feed_cache.version_key(user_id)], self.feed_cache.version_ttl_s),
        )
        if isinstance(claim, OverLimit):
            self.limiter.judge(RATE_SCOPE, claim.hits, self.rate_per_user)  # raises RateLimited
            raise AssertionError("over the limit but not refused")  # pragma: no cover
        if not claim.in_redis and self.limiter is not None:
            await self.limiter.hit(RATE_SCOPE, str(user_id), self.rate_per_user)  # counted in process memory
        return claim

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
