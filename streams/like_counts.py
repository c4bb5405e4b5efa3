"""Like events -> `post_likers` in step with the `likes` edges, and exact like counts.

For each post in a batch the worker reads the edges as they are now (the truth: whatever order
the events came in, the write with the latest timestamp decides). An event carries the edge write
its request makes after publishing; when the edge is older than that, the worker makes the same
write itself (idempotent, same timestamp) and reads again, so every published like lands even if
its request died. It then places or removes each liker in the post's counted set
(app/storage/counted_set.py), in the smallest bucket its edge names, and writes the absolute total to
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

from app.events import LikeChanged
from app.settings import Settings
from app.storage.counted_set import Placement
from app.storage.like_counts import LikeCounts
from app.storage.likes import LikeRepository
from app.storage.post_cache import PostCache
from app.storage.posts import PostRepository
from app.wiring import Wiring
from streams.batches import each_batch, event_topic
from streams.retry import until_ready

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
        self.edges_written = 0  # edge writes this worker applied for requests that had not (since it started)

    async def apply(self, events: list[LikeChanged]) -> None:
        by_post: dict[int, list[LikeChanged]] = defaultdict(list)
        for event in events:
            by_post[event.post_id].append(event)
        slots = asyncio.Semaphore(self._posts_in_parallel)

        async def count(post_id: int) -> tuple[int, int | None]:
            async with slots:
                return post_id, await self.count_post(post_id, by_post[post_id])

        edges_before = self.edges_written
        totals = dict(await asyncio.gather(*(count(post_id) for post_id in by_post)))
        written = {post_id: total for post_id, total in totals.items() if total is not None}
        await self._counts.settle(written)
        if self._cache is not None:  # raises while Redis is away: the batch is retried, no count left stale
            await self._cache.save_like_counts(written)
        await self._counts.note_batch(events=len(events), count_writes=len(written),
                                      edges_written=self.edges_written - edges_before)

    async def count_post(self, post_id: int, events: list[LikeChanged]) -> int | None:
        """Settle one post's likers; returns its exact like count (None for a deleted post)."""
        post = await self._posts.like_state(post_id)
        if post is None:
            return None  # deleted: its likers no longer matter, and a count write would leave a stray row
        seen: dict[int, set[int]] = defaultdict(set)  # buckets that may hold each user
        unknown: set[int] = set()  # an older event that knew no bucket: look in every bucket
        latest: dict[int, LikeChanged] = {}  # each user's last edge write among the events
        for event in events:
            buckets = seen[event.actor_id]  # every user an event names is settled, bucket known or not
            if event.bucket is not None:
                buckets.add(event.bucket)
            elif event.changed_us is None:
                unknown.add(event.actor_id)
            if event.changed_us is not None and _later(event, latest.get(event.actor_id)):
                latest[event.actor_id] = event
        users = sorted(seen)
        states = dict(zip(users, await asyncio.gather(*(self.edges.state(u, post_id) for u in users)), strict=True))
        # an event whose write has not landed (the request is still on its way, failed, or its process died):
        # write it here, the same blind write at the same time, then read what won
        behind = [u for u, e in latest.items() if states[u] is None or states[u].older_than(e.changed_us, e.liked)]
        if behind:
            await asyncio.gather(*(self._write(post_id, latest[u]) for u in behind))
            for user_id, state in zip(behind, await asyncio.gather(*(self.edges.state(u, post_id) for u in behind)),
                                      strict=True):
                states[user_id] = state
            self.edges_written += len(behind)
        for user_id in unknown:
            if states[user_id] is None:
                seen[user_id] |= await self.likers.buckets_holding(post_id, user_id)
        placements = {}
        for user_id, state in states.items():
            if state is None:
                placements[user_id] = Placement(None, seen[user_id])
            else:  # liked: in its home bucket and no other it ever named; not liked: in none of them
                placements[user_id] = Placement(state.home, seen[user_id] | state.buckets, (state.liked_at,))
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

    async def _write(self, post_id: int, event: LikeChanged) -> None:
        await self.edges.write(event.actor_id, post_id, event.liked, event.changed_us, event.bucket)


def _later(event: LikeChanged, than: LikeChanged | None) -> bool:
    """Whether `event`'s edge write wins over `than`'s where both land (an unlike wins a tie, as in Cassandra)."""
    return than is None or (event.changed_us, not event.liked) > (than.changed_us, not than.liked)


async def make_counter(settings: Settings, wiring: Wiring) -> LikeCounter:
    storage = await wiring.storage()
    return LikeCounter(storage.likes, storage.posts, wiring.caches().like_counts, settings.likes_per_bucket,
                       settings.like_worker_posts_in_parallel, wiring.caches().posts)


def register(app: faust.App, settings: Settings, wiring: Wiring) -> None:
    topic = event_topic(app, settings, "likes")

    @app.agent(topic, name="like_counts")
    async def like_counts(stream) -> None:
        counter = await until_ready("like_counts", lambda: make_counter(settings, wiring))
        await each_batch(stream, "like_counts", counter.apply, size=BATCH_SIZE, within=BATCH_SECONDS,
                         settings=settings, value_type=LikeChanged)
