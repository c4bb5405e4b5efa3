"""Like events -> `post_likers` in step with the `likes` edges, and exact like counts.

For each post in a batch the worker reads the edges as they are now (the truth: whatever order
the events came in, the last transaction on an edge decides), places or removes each liker in
the post's counted set (app/storage/counted_set.py), and writes the absolute total to
posts.like_count and the Redis count. Events are keyed by post, so one worker owns a post's
likes, and a hot post costs one conditional batch and one count write per stream batch however
many likes the batch holds. A replayed or duplicated event finds its liker already in place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

import faust

from app.events import LikeChanged, topic_name
from app.settings import Settings
from app.storage.counted_set import Placement
from app.storage.like_counts import LikeCounts
from app.storage.likes import LikeRepository
from app.storage.post_cache import PostCache
from app.storage.posts import PostRepository
from app.wiring import Wiring
from streams.retry import until_done, until_ready

log = logging.getLogger(__name__)

BATCH_SIZE = 2000
BATCH_SECONDS = 0.5

class LikeCounter:
    def __init__(
        self, likes: LikeRepository, posts: PostRepository, counts: LikeCounts, likes_per_bucket: int,
        posts_in_parallel: int = 32, cache: PostCache | None = None,
    ) -> None:
        self.edges = likes
        self.likers = likes.likers
        self._posts = posts
        self._counts = counts
        self._likes_per_bucket = likes_per_bucket
        self._posts_in_parallel = posts_in_parallel
        self._cache = cache  # where pages read like counts (app/storage/post_cache.py)

    async def apply(self, events: list[LikeChanged]) -> None:
        by_post: dict[int, list[LikeChanged]] = defaultdict(list)
        for event in events:
            by_post[event.post_id].append(event)
        slots = asyncio.Semaphore(self._posts_in_parallel)

        async def count(post_id: int) -> tuple[int, int | None]:
            async with slots:
                return post_id, await self.count_post(post_id, by_post[post_id])

        totals = dict(await asyncio.gather(*(count(post_id) for post_id in by_post)))
        written = {post_id: total for post_id, total in totals.items() if total is not None}
        await self._counts.settle(written)
        if self._cache is not None:  # raises while Redis is away: the batch is retried, no count left stale
            await self._cache.save_like_counts(written)
        await self._counts.note_batch(events=len(events), count_writes=len(written))

    async def count_post(self, post_id: int, events: list[LikeChanged]) -> int | None:
        """Settle one post's likers; returns its exact like count (None for a deleted post)."""
        post = await self._posts.like_state(post_id)
        if post is None:
            return None  # deleted: its likers no longer matter, and a count write would leave a stray row
        seen: dict[int, set[int]] = defaultdict(set)
        unknown: set[int] = set()
        in_doubt: set[int] = set()  # a request failed mid-transaction: its edge is read at SERIAL
        for event in events:
            if event.bucket is None:
                unknown.add(event.actor_id)
            else:
                seen[event.actor_id].add(event.bucket)
            if event.recheck:
                in_doubt.add(event.actor_id)
        users = sorted(seen.keys() | unknown)
        edges = await asyncio.gather(
            *(self.edges.edge(user_id, post_id, serial=user_id in in_doubt) for user_id in users)
        )
        for user_id in unknown:
            seen[user_id] |= await self.likers.buckets_holding(post_id, user_id)
        placements = {
            user_id: Placement(edge.bucket, seen[user_id], (edge.liked_at,)) if edge else Placement(None, seen[user_id])
            for user_id, edge in zip(users, edges, strict=True)
        }
        counts = await self.likers.apply(post_id, placements)
        open_bucket = post.like_bucket or 0
        if counts.get(open_bucket, 0) >= self._likes_per_bucket:
            await self._posts.open_like_bucket(post_id, open_bucket + 1)
            log.info("post %d: likers bucket %d is full, opening %d", post_id, open_bucket, open_bucket + 1)
        if open_bucket == 0 and counts.keys() == {0}:  # one bucket, just counted: no need to sum the index
            total, read_at = counts[0], time.time_ns() // 1000
        else:
            total, read_at = await self.likers.total(post_id)
        await self._posts.save_like_count(post_id, total, read_at)
        return total


async def make_counter(settings: Settings, wiring: Wiring) -> LikeCounter:
    storage = await wiring.storage()
    return LikeCounter(storage.likes, storage.posts, wiring.caches().like_counts, settings.likes_per_bucket,
                       settings.like_worker_posts_in_parallel, wiring.caches().posts)


def register(app: faust.App, settings: Settings, wiring: Wiring) -> None:
    topic = app.topic(topic_name(settings, "likes"), value_type=LikeChanged)

    @app.agent(topic, name="like_counts")
    async def like_counts(stream) -> None:
        counter = await until_ready("like_counts", lambda: make_counter(settings, wiring))
        async for batch in stream.take(BATCH_SIZE, within=BATCH_SECONDS):
            await until_done("like_counts", lambda: counter.apply(batch))  # noqa: B023 - awaited at once
